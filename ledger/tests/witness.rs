//! The witness protocol (c2sp.org/tlog-witness) without HTTP: it cosigns checkpoints that
//! extend what it saw, and refuses forks, rollbacks, strangers and bad proofs with the
//! protocol's statuses. Its state survives a restart.

use gezinsdossier_ledger::checkpoint::Checkpoint;
use gezinsdossier_ledger::merkle::{MemoryNodes, TreeHash, consistency_proof, leaf_hash, root};
use gezinsdossier_ledger::note::{Note, NoteSigner, TYPE_COSIGNATURE_V1, VerifierKey};
use gezinsdossier_ledger::treehead::TreeHeadSigner;
use gezinsdossier_ledger::witness::{AddCheckpoint, Refusal, Witness};
use ring::signature::Ed25519KeyPair;
use std::path::Path;

const ORIGIN: &str = "gezinsdossier.example/test";
const NOW: u64 = 1_796_000_000;

fn log_signer(dir: &Path, file: &str) -> TreeHeadSigner {
    TreeHeadSigner::load_or_create(&dir.join(file)).unwrap().with_origin(ORIGIN).unwrap()
}

fn cosigner(seed: u8) -> NoteSigner {
    let key = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
    NoteSigner::new("witness.example/w1", TYPE_COSIGNATURE_V1, key).unwrap()
}

fn leaves(prefix: &str, n: usize) -> MemoryNodes {
    let mut nodes = MemoryNodes::new();
    for i in 0..n {
        nodes.push(leaf_hash(format!("{prefix}{i}").as_bytes()));
    }
    nodes
}

/// The signed checkpoint of the first `size` leaves, and the request to add it after `old`.
fn request(signer: &TreeHeadSigner, nodes: &MemoryNodes, old: u64, size: u64) -> String {
    let head = signer.sign(size, &root(nodes, size).unwrap(), 0);
    let proof = if old == 0 || old >= size { Vec::new() } else { consistency_proof(nodes, old, size).unwrap() };
    AddCheckpoint { old_size: old, proof, checkpoint: head.checkpoint.unwrap() }.body()
}

fn log_vkey(signer: &TreeHeadSigner) -> VerifierKey {
    Checkpoint::log_key(ORIGIN, signer.public_key()).unwrap()
}

#[test]
fn a_consistent_checkpoint_is_cosigned_and_the_cosignature_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_signer(dir.path(), "log.key");
    let witness = Witness::open(&dir.path().join("w.sqlite3"), cosigner(1), vec![log_vkey(&log)]).unwrap();
    let nodes = leaves("e", 20);

    let body = request(&log, &nodes, 0, 5);
    let lines = witness.add_checkpoint(&body, NOW).unwrap();
    assert!(lines.starts_with("\u{2014} witness.example/w1 ") && lines.ends_with('\n'), "{lines}");
    // The response appended to the checkpoint is a note the witness key verifies.
    let checkpoint = AddCheckpoint::parse(&body).unwrap().checkpoint;
    let cosigned = Note::parse(&format!("{checkpoint}{lines}")).unwrap();
    let wkey = VerifierKey::parse(&witness.verifier_key().to_string()).unwrap();
    assert_eq!(cosigned.verify(std::slice::from_ref(&wkey)).unwrap(), vec![&wkey]);
    assert_eq!(cosigned.signatures.last().unwrap().cosignature_time(), Some(NOW));

    // The next one carries a consistency proof from 5.
    witness.add_checkpoint(&request(&log, &nodes, 5, 13), NOW + 1).unwrap();
    assert_eq!(witness.latest(ORIGIN).unwrap().unwrap(), (13, root(&nodes, 13).unwrap()));
    // The same size again is fine (same root, no proof).
    witness.add_checkpoint(&request(&log, &nodes, 13, 13), NOW + 2).unwrap();
}

#[test]
fn a_fork_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_signer(dir.path(), "log.key");
    let witness = Witness::open(&dir.path().join("w.sqlite3"), cosigner(1), vec![log_vkey(&log)]).unwrap();
    let honest = leaves("e", 20);
    witness.add_checkpoint(&request(&log, &honest, 0, 8), NOW).unwrap();

    // Two different checkpoints at one size: the second is refused.
    let forked = leaves("x", 20);
    let err = witness.add_checkpoint(&request(&log, &forked, 8, 8), NOW).unwrap_err();
    assert_eq!(err.http_status(), 422, "{err}");
    // A larger tree of another history, with that history's own proof: refused too.
    let err = witness.add_checkpoint(&request(&log, &forked, 8, 15), NOW).unwrap_err();
    assert_eq!(err.http_status(), 422, "{err}");
    assert!(err.to_string().contains("not consistent with size 8"), "{err}");
    // Nothing was recorded by the refusals.
    assert_eq!(witness.latest(ORIGIN).unwrap().unwrap(), (8, root(&honest, 8).unwrap()));
}

#[test]
fn stale_rolled_back_unknown_and_unsigned_checkpoints_get_their_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_signer(dir.path(), "log.key");
    let state = dir.path().join("w.sqlite3");
    let nodes = leaves("e", 20);
    {
        let witness = Witness::open(&state, cosigner(1), vec![log_vkey(&log)]).unwrap();
        witness.add_checkpoint(&request(&log, &nodes, 0, 10), NOW).unwrap();
    }
    // After a restart the witness still knows size 10.
    let witness = Witness::open(&state, cosigner(1), vec![log_vkey(&log)]).unwrap();
    assert_eq!(witness.add_checkpoint(&request(&log, &nodes, 0, 12), NOW).unwrap_err(), Refusal::Conflict(10));
    // A checkpoint smaller than the old size it names is a bad request.
    assert_eq!(witness.add_checkpoint(&request(&log, &nodes, 10, 6), NOW).unwrap_err().http_status(), 400);
    // A rolled-back log can only claim the old size it really has: a conflict.
    assert_eq!(witness.add_checkpoint(&request(&log, &nodes, 6, 8), NOW).unwrap_err(), Refusal::Conflict(10));
    // Another log's key: forbidden. Another origin: not found.
    let impostor = log_signer(dir.path(), "impostor.key");
    assert_eq!(witness.add_checkpoint(&request(&impostor, &nodes, 10, 12), NOW).unwrap_err().http_status(), 403);
    let stranger = TreeHeadSigner::load_or_create(&dir.path().join("log.key")).unwrap();
    assert!(matches!(
        witness.add_checkpoint(&request(&stranger, &nodes, 0, 3), NOW).unwrap_err(),
        Refusal::UnknownLog(origin) if origin == "gezinsdossier.example/local"
    ));
    // A proof that does not verify.
    let mut bad = AddCheckpoint::parse(&request(&log, &nodes, 10, 12)).unwrap();
    bad.proof[0] = TreeHash([0; 32]);
    assert_eq!(witness.add_checkpoint(&bad.body(), NOW).unwrap_err().http_status(), 422);
    // Malformed bodies name the problem.
    for (body, why) in [("old x\n\nc", "old <size>"), ("old 1\nnot-base64\n\nc", "proof line"), ("old 1", "empty line")]
    {
        let err = witness.add_checkpoint(body, NOW).unwrap_err();
        assert!(err.http_status() == 400 && err.to_string().contains(why), "{body:?}: {err}");
    }
}
