//! Signed tree heads: (size, root, time) of the Merkle log, signed with Ed25519 (`ring`).
//! They are published as events of their own stream, so the log carries its own history of
//! commitments, and a verifier needs nothing but the public key.
//!
//! Each head is signed twice with the same key: over our own byte layout (with the time),
//! which every head since the first carries, and as a `c2sp.org/tlog-checkpoint` note (see
//! [`crate::checkpoint`]), which heads carry since checkpoints were added, for standard
//! tlog tools and witnesses.

use crate::checkpoint::{self, Checkpoint};
use crate::envelope::{RecordedEvent, StreamId};
use crate::merkle::TreeHash;
use crate::note::{self, Note, NoteSigner};
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Event type of a published tree head.
pub const EVENT_TYPE: &str = "log.tree_head";
/// Domain separation for what is signed.
const SIGNING_CONTEXT: &[u8] = b"gezinsdossier tree head v1\n";

/// The stream holding every published tree head, in order.
pub fn stream() -> StreamId {
    StreamId::new("log-tree-heads").unwrap_or_else(|_| unreachable!("a valid literal stream id"))
}

/// A signed commitment to the first `size` events of the global log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTreeHead {
    pub size: u64,
    /// Hex of the RFC 6962 root.
    pub root: String,
    pub timestamp_micros: i64,
    /// Hex of the signing key's SHA-256, to name the key without shipping it.
    pub key_id: String,
    /// Hex Ed25519 signature over [`SignedTreeHead::signed_bytes`].
    pub signature: String,
    /// The same head as a signed checkpoint note; absent on heads from before checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeHeadError {
    #[error("signing key file {path}: {problem}")]
    Key { path: String, problem: String },
    #[error("tree head is malformed: {0}")]
    Malformed(String),
    #[error("tree head signature does not verify with the given public key")]
    BadSignature,
    #[error("tree head's checkpoint: {0}")]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("tree head's checkpoint commits to another size or root than the head")]
    CheckpointDiffers,
}

impl SignedTreeHead {
    /// The exact bytes that are signed.
    pub fn signed_bytes(size: u64, root: &TreeHash, timestamp_micros: i64) -> Vec<u8> {
        let mut out = SIGNING_CONTEXT.to_vec();
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&root.0);
        out.extend_from_slice(&timestamp_micros.to_be_bytes());
        out
    }

    pub fn root_hash(&self) -> Result<TreeHash, TreeHeadError> {
        TreeHash::from_hex(&self.root).map_err(TreeHeadError::Malformed)
    }

    /// Checks the signature with `public_key` (32 raw Ed25519 bytes).
    ///
    /// # Errors
    /// [`TreeHeadError::BadSignature`] or [`TreeHeadError::Malformed`].
    pub fn verify(&self, public_key: &[u8]) -> Result<(), TreeHeadError> {
        let signature = hex::decode(&self.signature).map_err(|e| TreeHeadError::Malformed(e.to_string()))?;
        let message = Self::signed_bytes(self.size, &self.root_hash()?, self.timestamp_micros);
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&message, &signature)
            .map_err(|_| TreeHeadError::BadSignature)?;
        if let Some(signed) = &self.checkpoint {
            let (checkpoint, _) = checkpoint::open(signed, public_key, &[])?;
            if checkpoint.size != self.size || checkpoint.root != self.root_hash()? {
                return Err(TreeHeadError::CheckpointDiffers);
            }
        }
        Ok(())
    }

    /// Reads a published tree head.
    ///
    /// # Errors
    /// [`TreeHeadError::Malformed`] for another event type or bad JSON.
    pub fn from_event(event: &RecordedEvent) -> Result<Self, TreeHeadError> {
        if event.event_type != EVENT_TYPE {
            return Err(TreeHeadError::Malformed(format!("event type {}", event.event_type)));
        }
        serde_json::from_slice(&event.payload).map_err(|e| TreeHeadError::Malformed(e.to_string()))
    }
}

/// The Ed25519 key that signs tree heads, and the origin its checkpoints name.
pub struct TreeHeadSigner {
    note: NoteSigner,
    key_id: String,
}

impl TreeHeadSigner {
    /// Loads the PKCS#8 key at `path`, creating it (readable by the owner only) on first start.
    ///
    /// # Errors
    /// [`TreeHeadError::Key`] when it cannot be read, created or parsed.
    pub fn load_or_create(path: &Path) -> Result<Self, TreeHeadError> {
        let pkcs8 = load_or_create_pkcs8(path)?;
        Self::from_pkcs8(&pkcs8)
            .map_err(|e| TreeHeadError::Key { path: path.display().to_string(), problem: e.to_string() })
    }

    /// # Errors
    /// When the bytes are not an Ed25519 PKCS#8 document.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, TreeHeadError> {
        let key = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| TreeHeadError::Malformed(e.to_string()))?;
        let key_id = hex::encode(ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref()));
        let note = NoteSigner::new(checkpoint::DEFAULT_ORIGIN, note::TYPE_ED25519, key)
            .map_err(|e| TreeHeadError::Malformed(e.to_string()))?;
        Ok(Self { note, key_id })
    }

    /// The same key, signing checkpoints as `origin` (config `log_origin`).
    ///
    /// # Errors
    /// [`TreeHeadError::Malformed`] for an origin a checkpoint cannot carry.
    pub fn with_origin(self, origin: &str) -> Result<Self, TreeHeadError> {
        checkpoint::check_origin(origin).map_err(TreeHeadError::Malformed)?;
        let note = self.note.renamed(origin).map_err(|e| TreeHeadError::Malformed(e.to_string()))?;
        Ok(Self { note, key_id: self.key_id })
    }

    /// The origin line of this log's checkpoints.
    pub fn origin(&self) -> &str {
        &self.note.verifier_key().name
    }

    /// The 32-byte Ed25519 public key a verifier needs.
    pub fn public_key(&self) -> &[u8] {
        self.note.key_pair().public_key().as_ref()
    }

    pub fn sign(&self, size: u64, root: &TreeHash, timestamp_micros: i64) -> SignedTreeHead {
        let signature = self.note.key_pair().sign(&SignedTreeHead::signed_bytes(size, root, timestamp_micros));
        let text = Checkpoint { origin: self.origin().to_owned(), size, root: *root }.text();
        let mut checkpoint = Note::new(text).unwrap_or_else(|_| unreachable!("a checkpoint's text is a valid note"));
        checkpoint.add_signature(self.note.sign(checkpoint.text(), 0));
        SignedTreeHead {
            size,
            root: root.to_hex(),
            timestamp_micros,
            key_id: self.key_id.clone(),
            signature: hex::encode(signature.as_ref()),
            checkpoint: Some(checkpoint.to_string()),
        }
    }
}

/// The Ed25519 PKCS#8 key at `path`, created (readable by the owner only) when missing.
/// Also the witness's key.
///
/// # Errors
/// [`TreeHeadError::Key`] when it cannot be read or created.
pub fn load_or_create_pkcs8(path: &Path) -> Result<Vec<u8>, TreeHeadError> {
    let problem = |p: String| TreeHeadError::Key { path: path.display().to_string(), problem: p };
    if !path.exists() {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|e| problem(e.to_string()))?;
        publish_new_key(path, doc.as_ref()).map_err(|e| problem(e.to_string()))?;
    }
    // Read back even after creating it: a replica starting at the same moment may have
    // published its key first, and every replica must sign with the one that won.
    std::fs::read(path).map_err(|e| problem(e.to_string()))
}

/// Writes a new key to `path` unless a key is already there, never exposing a half-written
/// file: the key is written and synced under a private temporary name, then hard-linked into
/// place, which fails atomically if another process got there first (replicas starting
/// together on a shared volume).
fn publish_new_key(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let linked = written.and_then(|()| match std::fs::hard_link(&tmp, path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    });
    let _ = std::fs::remove_file(&tmp);
    linked
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replicas sharing a key volume start together: all must end up with one key, and
    /// none may read a half-written file.
    #[test]
    fn replicas_creating_the_key_at_once_agree_on_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("treehead.key");
        let barrier = std::sync::Barrier::new(8);
        let keys: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        TreeHeadSigner::load_or_create(&path).unwrap().public_key().to_vec()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.windows(2).all(|w| w[0] == w[1]), "replicas signed with different keys");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("treehead.key")], "temporary files left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
