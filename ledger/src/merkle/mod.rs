//! The global Merkle log over every event, in global order, with RFC 6962 / 9162 hashing:
//! leaf = SHA-256(0x00 ‖ canonical event bytes), node = SHA-256(0x01 ‖ left ‖ right).
//!
//! - [`hashing`]: the two hash functions and the [`TreeHash`] type.
//! - [`range`]: a compact range (at most log₂ n hashes) that yields the root of any prefix
//!   while leaves stream past; what a verifier needs.
//! - [`proof`]: inclusion and consistency proofs for any tree size, from a [`NodeSource`] of
//!   complete-subtree hashes. Pure maths: no I/O, no async.
//! - [`tiles`]: the tree as `c2sp.org/tlog-tiles` tiles: full tiles persisted, the right
//!   edge in memory; proofs from any tile set.
//! - [`verify`]: proof verification through the `ct-merkle` crate, an implementation that
//!   shares no code with our prover, so each checks the other.
//!
//! Hashes are taken over the canonical bytes (which, with per-subject encryption, will be
//! over ciphertext), so proofs stay valid after crypto-shredding.

pub mod hashing;
pub mod proof;
pub mod range;
pub mod tiles;
pub mod verify;

pub use hashing::{TreeHash, leaf_hash, node_hash};
pub use proof::{MemoryNodes, NodeSource, ProofError, consistency_proof, inclusion_proof, root};
pub use range::CompactRange;
