//! What the open log reads from strangers: signed notes and checkpoints, witness requests
//! (`add-checkpoint` bodies), vkeys and tile paths. Parsing never panics, what parses prints
//! back the same, and a witness never cosigns what its log did not sign.
#![no_main]

use gezinsdossier_ledger::checkpoint::Checkpoint;
use gezinsdossier_ledger::merkle::tiles::{parse_tile_path, tile_path};
use gezinsdossier_ledger::note::{Note, NoteSigner, TYPE_COSIGNATURE_V1, VerifierKey};
use gezinsdossier_ledger::witness::{AddCheckpoint, Witness};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// One witness for the run, following a log whose key nobody else holds.
fn witness() -> &'static Witness {
    static WITNESS: OnceLock<(tempfile::TempDir, Witness)> = OnceLock::new();
    let (_, witness) = WITNESS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[1; 32]).expect("key");
        let log_key = Checkpoint::log_key("fuzz.example/log", ring::signature::KeyPair::public_key(&log).as_ref())
            .expect("log key");
        let cosigner = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[2; 32]).expect("key");
        let signer = NoteSigner::new("fuzz.example/w", TYPE_COSIGNATURE_V1, cosigner).expect("signer");
        let witness = Witness::open(&dir.path().join("w.sqlite3"), signer, vec![log_key]).expect("witness");
        (dir, witness)
    });
    witness
}

fuzz_target!(|text: &str| {
    if let Ok(note) = Note::parse(text) {
        assert_eq!(Note::parse(&note.to_string()).as_ref(), Ok(&note), "a parsed note prints back the same");
        if let Ok(checkpoint) = Checkpoint::parse_text(note.text()) {
            assert!(Checkpoint::parse_text(&checkpoint.text()).is_ok());
        }
    }
    if let Ok(key) = VerifierKey::parse(text) {
        assert_eq!(VerifierKey::parse(&key.to_string()), Ok(key));
    }
    if let Some((level, index, width)) = parse_tile_path(text) {
        assert_eq!(tile_path(level, index, width), text);
    }
    if let Ok(request) = AddCheckpoint::parse(text) {
        assert_eq!(AddCheckpoint::parse(&request.body()).as_ref(), Ok(&request));
    }
    // Nobody but the test holds the log's key, so nothing a fuzzer writes is cosigned.
    assert!(witness().add_checkpoint(text, 1).is_err(), "cosigned a checkpoint the log never signed");
});
