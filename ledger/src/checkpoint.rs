//! Checkpoints (`c2sp.org/tlog-checkpoint`): the log's origin, size and RFC 6962 root as the
//! text of a signed note (see [`crate::note`]), so that any tlog client, witness or monitor
//! can read our tree heads.
//!
//! ```text
//! gezinsdossier.example/local
//! 20852163
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//!
//! — gezinsdossier.example/local Az3grlgt…
//! ```
//!
//! The log signs as its origin with a plain Ed25519 note signature (type 0x01), using the
//! tree-head key. Witnesses add `cosignature/v1` lines (type 0x04).

use crate::merkle::TreeHash;
use crate::note::{self, Note, NoteError, VerifierKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The origin a deployment that names none signs as.
pub const DEFAULT_ORIGIN: &str = "gezinsdossier.example/local";
/// Longest origin accepted.
pub const MAX_ORIGIN_BYTES: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint is malformed: {0}")]
    Malformed(String),
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("checkpoint of {origin} is not signed by the log's key")]
    NotSignedByLog { origin: String },
    #[error("checkpoint lacks a valid cosignature from witness {witness}")]
    MissingCosignature { witness: String },
}

/// A tree head as a checkpoint's three lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: TreeHash,
}

/// Checks an origin line: non-empty, printable, no spaces or '+' (so it can be a key name).
///
/// # Errors
/// A sentence naming the problem.
pub fn check_origin(origin: &str) -> Result<(), String> {
    if origin.is_empty() || origin.len() > MAX_ORIGIN_BYTES {
        return Err(format!("origin must be 1 to {MAX_ORIGIN_BYTES} bytes"));
    }
    if origin.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+') {
        let shown: String = origin.chars().take(32).collect();
        return Err(format!("origin {shown:?} holds a space, a control character or '+'"));
    }
    Ok(())
}

impl Checkpoint {
    /// The note text: origin, size, base64 root, each ending in a newline.
    pub fn text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(self.root.0))
    }

    /// Reads the text of a checkpoint; extension lines are allowed and ignored.
    ///
    /// # Errors
    /// [`CheckpointError::Malformed`] naming the line.
    pub fn parse_text(text: &str) -> Result<Self, CheckpointError> {
        let bad = |why: String| CheckpointError::Malformed(why);
        let mut lines = text.split_terminator('\n');
        let origin = lines.next().unwrap_or_default();
        check_origin(origin).map_err(bad)?;
        let size = lines.next().unwrap_or_default();
        if size.is_empty() || (size.len() > 1 && size.starts_with('0')) || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("second line is not a tree size without leading zeroes".into()));
        }
        let size = size.parse().map_err(|_| bad("tree size is out of range".into()))?;
        let root = BASE64
            .decode(lines.next().unwrap_or_default())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| bad("third line is not a base64 SHA-256 root".into()))?;
        if lines.any(str::is_empty) {
            return Err(bad("an extension line is empty".into()));
        }
        Ok(Self { origin: origin.to_owned(), size, root: TreeHash(root) })
    }

    /// The key that verifies this log's own signature: the tree-head key under the origin.
    ///
    /// # Errors
    /// [`CheckpointError::Note`] for an origin that cannot be a key name.
    pub fn log_key(origin: &str, public_key: &[u8]) -> Result<VerifierKey, CheckpointError> {
        let public_key: [u8; 32] =
            public_key.try_into().map_err(|_| NoteError::BadKey("the log's key is not 32 bytes".into()))?;
        Ok(VerifierKey::new(origin, note::TYPE_ED25519, public_key)?)
    }
}

/// Opens a signed checkpoint: it must be signed by the log (`public_key` under its origin)
/// and cosigned by every one of `witnesses`.
///
/// # Errors
/// [`CheckpointError`] naming the first failure.
pub fn open(signed: &str, public_key: &[u8], witnesses: &[VerifierKey]) -> Result<(Checkpoint, Note), CheckpointError> {
    let note = Note::parse(signed)?;
    let checkpoint = Checkpoint::parse_text(note.text())?;
    let log_key = Checkpoint::log_key(&checkpoint.origin, public_key)?;
    let mut keys = witnesses.to_vec();
    keys.push(log_key.clone());
    let verified = match note.verify(&keys) {
        Err(NoteError::NoKnownSignature) => Vec::new(),
        other => other?,
    };
    if !verified.contains(&&log_key) {
        return Err(CheckpointError::NotSignedByLog { origin: checkpoint.origin });
    }
    if let Some(missing) = witnesses.iter().find(|w| !verified.contains(w)) {
        return Err(CheckpointError::MissingCosignature { witness: missing.name.clone() });
    }
    Ok((checkpoint, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_c2sp_example_text_parses_and_prints_the_same() {
        let text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let checkpoint = Checkpoint::parse_text(text).unwrap();
        assert_eq!(checkpoint.origin, "example.com/behind-the-sofa");
        assert_eq!(checkpoint.size, 20_852_163);
        assert_eq!(checkpoint.text(), text);
    }

    /// The worked example in log.proto (TreeHead.checkpoint), so that it cannot rot.
    #[test]
    fn the_worked_example_in_the_proto_verifies() {
        use crate::merkle::{leaf_hash, node_hash};
        let seed: Vec<u8> = (0..32).collect();
        let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        let public_key = ring::signature::KeyPair::public_key(&key).as_ref().to_vec();
        assert_eq!(hex::encode(&public_key), "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8");
        let root = node_hash(&leaf_hash(b"a"), &leaf_hash(b"b"));
        let text = Checkpoint { origin: DEFAULT_ORIGIN.into(), size: 2, root }.text();
        assert_eq!(text, "gezinsdossier.example/local\n2\nsTeYX/SE+2ANuTEHx3sDZcgNePW0Kd7Q/Zc2HQd5mes=\n");
        let note = format!(
            "{text}\n\u{2014} gezinsdossier.example/local wo7PrWEE4HlKWIgW2MWN0k5wTHUJoiFhXcXZxrLZRRO0+yUXCxzDIiAISZzxwLQ18VLlNVuYRM3xpSth8Xj0QPw3EAA=\n"
        );
        let (opened, _) = open(&note, &public_key, &[]).unwrap();
        assert_eq!((opened.size, opened.root), (2, root));
        assert_eq!(
            Checkpoint::log_key(DEFAULT_ORIGIN, &public_key).unwrap().to_string(),
            "gezinsdossier.example/local+c28ecfad+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
        );
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, why) in [
            ("\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "origin"),
            ("a b\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "origin"),
            ("o\n01\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "leading zeroes"),
            ("o\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "tree size"),
            ("o\n99999999999999999999\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "out of range"),
            ("o\n1\nAAAA\n", "root"),
            ("o\n1\n", "root"),
        ] {
            let err = Checkpoint::parse_text(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
