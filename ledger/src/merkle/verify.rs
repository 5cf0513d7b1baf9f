//! Proof verification through `ct-merkle`, independent of our prover. A verifier needs only
//! a signed root and size, the proof, and (for inclusion) the leaf's canonical bytes.

use super::hashing::TreeHash;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("inclusion proof does not verify: {0}")]
    Inclusion(String),
    #[error("consistency proof does not verify: {0}")]
    Consistency(String),
    #[error("roots of equal sizes differ")]
    RootsDiffer,
}

fn root_hash(root: &TreeHash, size: u64) -> RootHash<Sha256> {
    RootHash::new(root.0.into(), size)
}

fn flatten(proof: &[TreeHash]) -> Vec<u8> {
    proof.iter().flat_map(|h| h.0).collect()
}

/// Checks that `leaf` (canonical bytes) is leaf `index` of the tree with `root` and `size`.
///
/// # Errors
/// [`VerifyError::Inclusion`] naming why.
pub fn verify_inclusion(
    leaf: &[u8],
    index: u64,
    size: u64,
    proof: &[TreeHash],
    root: &TreeHash,
) -> Result<(), VerifyError> {
    let proof = InclusionProof::<Sha256>::try_from_bytes(flatten(proof))
        .map_err(|e| VerifyError::Inclusion(format!("{e:?}")))?;
    root_hash(root, size).verify_inclusion(&leaf, index, &proof).map_err(|e| VerifyError::Inclusion(format!("{e:?}")))
}

/// Checks that the tree (`old_root`, `old_size`) is a prefix of (`new_root`, `new_size`).
///
/// # Errors
/// [`VerifyError`] naming why.
pub fn verify_consistency(
    old_size: u64,
    old_root: &TreeHash,
    new_size: u64,
    new_root: &TreeHash,
    proof: &[TreeHash],
) -> Result<(), VerifyError> {
    if old_size == new_size {
        // ct-merkle wants at least one addition; equal sizes are consistent iff equal roots.
        return if proof.is_empty() && old_root == new_root { Ok(()) } else { Err(VerifyError::RootsDiffer) };
    }
    let proof = ConsistencyProof::<Sha256>::try_from_bytes(flatten(proof))
        .map_err(|e| VerifyError::Consistency(format!("{e:?}")))?;
    root_hash(new_root, new_size)
        .verify_consistency(&root_hash(old_root, old_size), &proof)
        .map_err(|e| VerifyError::Consistency(format!("{e:?}")))
}
