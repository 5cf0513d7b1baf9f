//! Inclusion and consistency proofs (RFC 6962 §2.1.1 and §2.1.2) for any tree size, built
//! from the hashes of complete, aligned subtrees. Every left half in the RFC's recursion is
//! such a subtree, so a proof costs O(log n) lookups and holds O(log n) hashes.
//!
//! We generate proofs ourselves because they must come from a node store that serves any
//! past tree size; `ct-merkle`'s builders work on its own in-memory tree. Verification is
//! `ct-merkle`'s ([`super::verify`]).

use super::hashing::{TreeHash, empty_root, node_hash};

/// Hashes of complete, aligned subtrees: level `l`, index `i` covers leaves
/// `i·2^l .. (i+1)·2^l`. Level 0 holds the leaf hashes.
pub trait NodeSource {
    /// # Errors
    /// [`ProofError::MissingNode`] when the store does not hold that subtree.
    fn subtree(&self, level: u32, index: u64) -> Result<TreeHash, ProofError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf {index} is not in a tree of {size} leaves")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("a consistency proof needs 0 < old size ({old}) <= new size ({new})")]
    BadSizes { old: u64, new: u64 },
    #[error("no hash for the subtree at level {level}, index {index}")]
    MissingNode { level: u32, index: u64 },
}

/// The root of the first `size` leaves.
///
/// # Errors
/// A missing subtree in `source`.
pub fn root(source: &impl NodeSource, size: u64) -> Result<TreeHash, ProofError> {
    if size == 0 { Ok(empty_root()) } else { mth(source, 0, size) }
}

/// The audit path of leaf `index` in the tree of the first `size` leaves, leaf side first.
///
/// # Errors
/// [`ProofError::IndexOutOfRange`], or a missing subtree.
pub fn inclusion_proof(source: &impl NodeSource, index: u64, size: u64) -> Result<Vec<TreeHash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::new();
    path(source, index, 0, size, &mut out)?;
    Ok(out)
}

/// The proof that the tree of the first `old` leaves is a prefix of the first `new`.
///
/// # Errors
/// [`ProofError::BadSizes`], or a missing subtree.
pub fn consistency_proof(source: &impl NodeSource, old: u64, new: u64) -> Result<Vec<TreeHash>, ProofError> {
    if old == 0 || old > new {
        return Err(ProofError::BadSizes { old, new });
    }
    let mut out = Vec::new();
    if old < new {
        subproof(source, old, 0, new, true, &mut out)?;
    }
    Ok(out)
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH(D[lo..hi]); `lo` is always aligned to the largest power of two ≤ hi - lo.
fn mth(source: &impl NodeSource, lo: u64, hi: u64) -> Result<TreeHash, ProofError> {
    let n = hi - lo;
    if n.is_power_of_two() {
        let level = n.trailing_zeros();
        return source.subtree(level, lo >> level);
    }
    let k = split(n);
    Ok(node_hash(&mth(source, lo, lo + k)?, &mth(source, lo + k, hi)?))
}

/// PATH(m, D[lo..hi]), appending to `out` from the leaf upwards.
fn path(source: &impl NodeSource, m: u64, lo: u64, hi: u64, out: &mut Vec<TreeHash>) -> Result<(), ProofError> {
    let n = hi - lo;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(source, m, lo, lo + k, out)?;
        out.push(mth(source, lo + k, hi)?);
    } else {
        path(source, m - k, lo + k, hi, out)?;
        out.push(mth(source, lo, lo + k)?);
    }
    Ok(())
}

/// SUBPROOF(m, D[lo..hi], b), appending to `out`.
fn subproof(
    source: &impl NodeSource,
    m: u64,
    lo: u64,
    hi: u64,
    whole_old_tree: bool,
    out: &mut Vec<TreeHash>,
) -> Result<(), ProofError> {
    let n = hi - lo;
    if m == n {
        if !whole_old_tree {
            out.push(mth(source, lo, hi)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(source, m, lo, lo + k, whole_old_tree, out)?;
        out.push(mth(source, lo + k, hi)?);
    } else {
        subproof(source, m - k, lo + k, hi, false, out)?;
        out.push(mth(source, lo, lo + k)?);
    }
    Ok(())
}

/// Every complete subtree hash, in memory (2n hashes for n leaves). For tests, the
/// verifier, and logs that fit in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryNodes {
    levels: Vec<Vec<TreeHash>>,
}

impl MemoryNodes {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hashes, in order.
    pub fn leaves(&self) -> &[TreeHash] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// Appends a leaf (by its leaf hash) and every subtree it completes.
    pub fn push(&mut self, leaf: TreeHash) {
        let mut hash = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
            let row = &self.levels[level];
            if row.len() % 2 == 1 {
                return;
            }
            hash = node_hash(&row[row.len() - 2], &row[row.len() - 1]);
            level += 1;
        }
    }
}

impl NodeSource for MemoryNodes {
    fn subtree(&self, level: u32, index: u64) -> Result<TreeHash, ProofError> {
        self.levels
            .get(level as usize)
            .and_then(|row| row.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(ProofError::MissingNode { level, index })
    }
}
