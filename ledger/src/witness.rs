//! A witness (`c2sp.org/tlog-witness`): for each log it follows it keeps the latest size and
//! root it cosigned, refuses a checkpoint that is not consistent with them, and cosigns the
//! ones that are (`cosignature/v1`). Another organisation runs it (`gezinsdossier witness`),
//! so that a log operator who forks or rolls back its log is caught by someone it does not
//! control.
//!
//! This module is the protocol without HTTP: [`Witness::add_checkpoint`] takes the request
//! body and answers with the response body or a [`Refusal`] that carries its HTTP status.
//! State is a small SQLite file; the check of the old size and the update are one
//! transaction under one lock, as the spec requires (a late, smaller request must never roll
//! the witness back).

use crate::checkpoint::Checkpoint;
use crate::merkle::TreeHash;
use crate::merkle::hashing::empty_root;
use crate::merkle::verify::verify_consistency;
use crate::note::{Note, NoteError, NoteSigner, VerifierKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rusqlite::OptionalExtension;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// Most consistency proof lines a client may send.
pub const MAX_PROOF_LINES: usize = 63;
/// Largest request body accepted.
pub const MAX_REQUEST_BYTES: usize = crate::note::MAX_NOTE_BYTES + MAX_PROOF_LINES * 46 + 32;

/// Why a checkpoint is not cosigned, with the HTTP status the protocol gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("400 bad request: {0}")]
    BadRequest(String),
    #[error("403 forbidden: {0}")]
    Forbidden(String),
    #[error("404 not found: this witness does not follow log {0:?}")]
    UnknownLog(String),
    #[error("409 conflict: the latest checkpoint cosigned for this log has size {0}")]
    Conflict(u64),
    #[error("422 unprocessable: {0}")]
    Inconsistent(String),
    #[error("500 internal: {0}")]
    Internal(String),
}

impl Refusal {
    pub fn http_status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Forbidden(_) => 403,
            Self::UnknownLog(_) => 404,
            Self::Conflict(_) => 409,
            Self::Inconsistent(_) => 422,
            Self::Internal(_) => 500,
        }
    }
}

/// An `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old_size: u64,
    pub proof: Vec<TreeHash>,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

impl AddCheckpoint {
    /// The body: `old N`, the proof lines, an empty line, the signed checkpoint.
    pub fn body(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            out.push_str(&BASE64.encode(hash.0));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// # Errors
    /// [`Refusal::BadRequest`] naming the problem.
    pub fn parse(body: &str) -> Result<Self, Refusal> {
        let bad = |why: &str| Refusal::BadRequest(why.to_owned());
        if body.len() > MAX_REQUEST_BYTES {
            return Err(bad("the request is too large"));
        }
        let (head, checkpoint) = body.split_once("\n\n").ok_or_else(|| bad("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines.next().unwrap_or_default();
        let old_size = old
            .strip_prefix("old ")
            .filter(|n| !n.is_empty() && (n == &"0" || !n.starts_with('0')) && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("the first line is not `old <size>`"))?;
        let proof = lines
            .map(|line| {
                BASE64
                    .decode(line)
                    .ok()
                    .and_then(|b| TreeHash::try_from_slice(&b).ok())
                    .ok_or_else(|| bad("a proof line is not a base64 SHA-256 hash"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(bad("more than 63 proof lines"));
        }
        Ok(Self { old_size, proof, checkpoint: checkpoint.to_owned() })
    }
}

/// A witness over a state file.
pub struct Witness {
    signer: NoteSigner,
    logs: HashMap<String, Vec<VerifierKey>>,
    state: Mutex<rusqlite::Connection>,
}

impl Witness {
    /// Opens (or creates) the state at `state_file`. `logs` are the vkeys of the logs this
    /// witness follows; each is known by its key name, which is its origin.
    ///
    /// # Errors
    /// The state file cannot be opened.
    pub fn open(state_file: &Path, signer: NoteSigner, logs: Vec<VerifierKey>) -> Result<Self, rusqlite::Error> {
        let conn = rusqlite::Connection::open(state_file)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS logs (origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL);",
        )?;
        let mut by_origin: HashMap<String, Vec<VerifierKey>> = HashMap::new();
        for key in logs {
            by_origin.entry(key.name.clone()).or_default().push(key);
        }
        Ok(Self { signer, logs: by_origin, state: Mutex::new(conn) })
    }

    /// This witness's cosigning key, for logs and auditors to configure.
    pub fn verifier_key(&self) -> &VerifierKey {
        self.signer.verifier_key()
    }

    /// The latest size and root cosigned for `origin`.
    ///
    /// # Errors
    /// The state cannot be read.
    pub fn latest(&self, origin: &str) -> Result<Option<(u64, TreeHash)>, Refusal> {
        let conn = self.state.lock().unwrap_or_else(|e| e.into_inner());
        read_latest(&conn, origin)
    }

    /// Handles an `add-checkpoint` body at `now` (seconds since the epoch): the cosignature
    /// lines to answer with, or why not.
    ///
    /// # Errors
    /// A [`Refusal`] with the protocol's status.
    pub fn add_checkpoint(&self, body: &str, now: u64) -> Result<String, Refusal> {
        let request = AddCheckpoint::parse(body)?;
        let note = Note::parse(&request.checkpoint).map_err(|e| Refusal::BadRequest(e.to_string()))?;
        let checkpoint = Checkpoint::parse_text(note.text()).map_err(|e| Refusal::BadRequest(e.to_string()))?;
        let keys = self.logs.get(&checkpoint.origin).ok_or_else(|| Refusal::UnknownLog(checkpoint.origin.clone()))?;
        match note.verify(keys) {
            Ok(_) => {}
            Err(NoteError::NoKnownSignature) => {
                return Err(Refusal::Forbidden("no signature from the log's key".into()));
            }
            Err(e) => return Err(Refusal::Forbidden(e.to_string())),
        }
        if request.old_size > checkpoint.size {
            return Err(Refusal::BadRequest(format!(
                "old size {} is larger than the checkpoint's {}",
                request.old_size, checkpoint.size
            )));
        }
        if checkpoint.size == 0 && checkpoint.root != empty_root() {
            return Err(Refusal::Inconsistent("a checkpoint of size 0 must have the empty tree's root".into()));
        }

        let mut conn = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction().map_err(internal)?;
        let latest = read_latest(&tx, &checkpoint.origin)?;
        let (known_size, known_root) = latest.unwrap_or((0, empty_root()));
        if request.old_size != known_size {
            return Err(Refusal::Conflict(known_size));
        }
        if known_size == 0 {
            if !request.proof.is_empty() {
                return Err(Refusal::Inconsistent("a proof from size 0 must be empty".into()));
            }
        } else {
            verify_consistency(known_size, &known_root, checkpoint.size, &checkpoint.root, &request.proof).map_err(
                |e| {
                    tracing::warn!(origin = %checkpoint.origin, size = checkpoint.size, "checkpoint not consistent with the one cosigned before");
                    Refusal::Inconsistent(format!("not consistent with size {known_size} cosigned before: {e}"))
                },
            )?;
        }
        tx.execute(
            "INSERT INTO logs (origin, size, root) VALUES (?1, ?2, ?3)
             ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root",
            rusqlite::params![checkpoint.origin, checkpoint.size as i64, checkpoint.root.0.to_vec()],
        )
        .map_err(internal)?;
        tx.commit().map_err(internal)?;
        Ok(self.signer.sign(note.text(), now).line())
    }
}

fn internal(e: rusqlite::Error) -> Refusal {
    Refusal::Internal(e.to_string())
}

fn read_latest(conn: &rusqlite::Connection, origin: &str) -> Result<Option<(u64, TreeHash)>, Refusal> {
    conn.query_row("SELECT size, root FROM logs WHERE origin = ?1", [origin], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })
    .optional()
    .map_err(internal)?
    .map(|(size, root)| {
        let root =
            TreeHash::try_from_slice(&root).map_err(|_| Refusal::Internal("a stored root is not 32 bytes".into()))?;
        Ok((size as u64, root))
    })
    .transpose()
}
