//! RFC 6962 §2.1 hashing with domain separation between leaves and interior nodes.

use ring::digest::{Context, SHA256};
use std::fmt;

/// A SHA-256 hash of a leaf, a node or a whole tree.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TreeHash(pub [u8; 32]);

impl TreeHash {
    /// # Errors
    /// The length found when it is not 32 bytes.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, usize> {
        <[u8; 32]>::try_from(bytes).map(Self).map_err(|_| bytes.len())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// # Errors
    /// When the text is not 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text).map_err(|e| e.to_string())?;
        Self::try_from_slice(&bytes).map_err(|len| format!("{len} bytes, expected 32"))
    }
}

impl fmt::Debug for TreeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TreeHash({})", self.to_hex())
    }
}

/// SHA-256(0x00 ‖ data): the hash of one leaf.
pub fn leaf_hash(data: &[u8]) -> TreeHash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x00]);
    ctx.update(data);
    finish(ctx)
}

/// SHA-256(0x01 ‖ left ‖ right): the hash of an interior node.
pub fn node_hash(left: &TreeHash, right: &TreeHash) -> TreeHash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x01]);
    ctx.update(&left.0);
    ctx.update(&right.0);
    finish(ctx)
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> TreeHash {
    finish(Context::new(&SHA256))
}

fn finish(ctx: Context) -> TreeHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    TreeHash(out)
}
