//! A compact range over leaves 0..n: the roots of the perfect subtrees that tile it, at most
//! one per height. Appending a leaf merges equal-height neighbours; the root of the whole
//! range folds them right to left. Memory is O(log n), so a verifier can stream millions of
//! events and still know the root of every prefix it passes.

use super::hashing::{TreeHash, empty_root, node_hash};

#[derive(Debug, Clone, Default)]
pub struct CompactRange {
    size: u64,
    /// Perfect-subtree roots from the left, largest first; heights strictly decrease.
    peaks: Vec<(u32, TreeHash)>,
}

impl CompactRange {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the next leaf (by its leaf hash).
    pub fn push(&mut self, leaf: TreeHash) {
        let mut carry = (0u32, leaf);
        while let Some(&(height, left)) = self.peaks.last() {
            if height != carry.0 {
                break;
            }
            self.peaks.pop();
            carry = (height + 1, node_hash(&left, &carry.1));
        }
        self.peaks.push(carry);
        self.size += 1;
    }

    /// The RFC 6962 root of the leaves pushed so far.
    pub fn root(&self) -> TreeHash {
        let mut peaks = self.peaks.iter().rev();
        let Some(&(_, mut acc)) = peaks.next() else { return empty_root() };
        for (_, left) in peaks {
            acc = node_hash(left, &acc);
        }
        acc
    }
}
