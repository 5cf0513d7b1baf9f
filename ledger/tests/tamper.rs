//! The offline verifier catches tampering with a copy of the data: a flipped byte, a
//! deleted event, two events swapped, and a forged tree head. Each is named precisely.

use gezinsdossier_ledger::chain::{ChainBreak, EventHash, hash_event};
use gezinsdossier_ledger::envelope::{CanonicalFields, ExpectedRevision, ProposedEvent, StreamId};
use gezinsdossier_ledger::merkle::{CompactRange, leaf_hash};
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::sqlite::{LogFile, SqliteStore};
use gezinsdossier_ledger::treehead::{self, TreeHeadSigner};
use gezinsdossier_ledger::verify::{Tampering, VerifyReport, verify_log};
use std::path::Path;

fn event(n: usize) -> ProposedEvent {
    ProposedEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: "test.note".into(),
        recorded_at_micros: 1_790_000_000_000_000 + n as i64,
        payload: format!("{{\"n\":{n}}}").into_bytes(),
    }
}

/// Writes 30 events over three families, with a signed tree head after every 10.
async fn build(dir: &Path, signer: &TreeHeadSigner) {
    let store = SqliteStore::open(dir).unwrap();
    let mut range = CompactRange::new();
    let heads = treehead::stream();
    for n in 0..30 {
        let stream = StreamId::new(format!("family-f{}", n % 3)).unwrap();
        store.append(&stream, ExpectedRevision::Any, vec![event(n)]).await.unwrap();
        if n % 10 == 9 {
            // Catch the range up with everything stored, then sign it.
            for e in store.read_all(range.size(), 1_000).await.unwrap() {
                range.push(leaf_hash(&e.canonical_bytes()));
            }
            let head = signer.sign(range.size(), &range.root(), 1_790_000_000_000_000 + n as i64);
            let published = ProposedEvent {
                event_id: uuid::Uuid::new_v4(),
                event_type: treehead::EVENT_TYPE.into(),
                recorded_at_micros: head.timestamp_micros,
                payload: serde_json::to_vec(&head).unwrap(),
            };
            store.append(&heads, ExpectedRevision::Any, vec![published]).await.unwrap();
        }
    }
    store.shutdown().await;
}

fn verify(dir: &Path, public_key: &[u8]) -> Result<VerifyReport, Tampering> {
    let file = LogFile::open(dir).unwrap();
    let heads = file.stream(&treehead::stream()).unwrap();
    verify_log(public_key, &heads, file.events())
}

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("events.sqlite3")).unwrap()
}

async fn fixture() -> (tempfile::TempDir, TreeHeadSigner) {
    let dir = tempfile::tempdir().unwrap();
    let signer = TreeHeadSigner::load_or_create(&dir.path().join("treehead.key")).unwrap();
    build(dir.path(), &signer).await;
    (dir, signer)
}

#[tokio::test]
async fn an_untouched_log_verifies() {
    let (dir, signer) = fixture().await;
    let report = verify(dir.path(), signer.public_key()).unwrap();
    assert_eq!((report.events, report.streams, report.tree_heads), (33, 4, 3));
    // The newest head signs 32 events; it is the 33rd itself.
    assert_eq!(report.unsigned, 1);
}

#[tokio::test]
async fn a_flipped_byte_is_named_by_stream_and_revision() {
    let (dir, signer) = fixture().await;
    db(dir.path()).execute("UPDATE events SET payload = CAST('{\"n\":8}' AS BLOB) WHERE position = 5", []).unwrap();
    let err = verify(dir.path(), signer.public_key()).unwrap_err();
    assert!(
        matches!(&err, Tampering::Chain { position: 5, source: ChainBreak::HashMismatch { stream, revision: 1 } } if stream == "family-f2"),
        "{err}"
    );
}

#[tokio::test]
async fn a_deleted_event_is_named_by_its_position() {
    let (dir, signer) = fixture().await;
    db(dir.path()).execute("DELETE FROM events WHERE position = 12", []).unwrap();
    let err = verify(dir.path(), signer.public_key()).unwrap_err();
    assert_eq!(err, Tampering::PositionGap { expected: 12, found: 13 });
}

#[tokio::test]
async fn two_events_swapped_across_streams_break_the_signed_root() {
    let (dir, signer) = fixture().await;
    // Each stream's chain stays intact; only the global order changes.
    let conn = db(dir.path());
    conn.execute_batch(
        "UPDATE events SET position = -1 WHERE position = 3;
         UPDATE events SET position = 3 WHERE position = 4;
         UPDATE events SET position = 4 WHERE position = -1;",
    )
    .unwrap();
    drop(conn);
    let err = verify(dir.path(), signer.public_key()).unwrap_err();
    assert!(matches!(err, Tampering::RootMismatch { index: 0, size: 10, .. }), "{err}");
}

#[tokio::test]
async fn a_forged_tree_head_is_caught_by_its_signature() {
    let (dir, signer) = fixture().await;
    // The forger re-signs the first head with their own key and rewrites the tree-head
    // stream's chain so that every hash is consistent again.
    let forger = TreeHeadSigner::from_pkcs8(
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap().as_ref(),
    )
    .unwrap();
    let file = LogFile::open(dir.path()).unwrap();
    let heads = file.stream(&treehead::stream()).unwrap();
    drop(file);
    let original = treehead::SignedTreeHead::from_event(&heads[0]).unwrap();
    let forged = forger.sign(original.size, &original.root_hash().unwrap(), original.timestamp_micros);
    let conn = db(dir.path());
    let mut prev = EventHash::GENESIS;
    for (i, e) in heads.iter().enumerate() {
        let payload = if i == 0 { serde_json::to_vec(&forged).unwrap() } else { e.payload.clone() };
        let hash = hash_event(&CanonicalFields {
            stream: &e.stream,
            revision: e.revision,
            event_id: &e.event_id,
            event_type: &e.event_type,
            recorded_at_micros: e.recorded_at_micros,
            payload: &payload,
            prev_hash: &prev,
        });
        conn.execute(
            "UPDATE events SET payload = ?1, prev_hash = ?2, hash = ?3 WHERE position = ?4",
            rusqlite::params![payload, prev.as_bytes().as_slice(), hash.as_bytes().as_slice(), e.position as i64],
        )
        .unwrap();
        prev = hash;
    }
    drop(conn);
    let err = verify(dir.path(), signer.public_key()).unwrap_err();
    assert_eq!(err, Tampering::BadSignature { index: 0, size: 10 });
    // Nor does handing the verifier the forger's key help: the other heads carry the real
    // key's signatures.
    assert_eq!(verify(dir.path(), forger.public_key()).unwrap_err(), Tampering::BadSignature { index: 1, size: 21 });
}

/// The weakness a pinned checkpoint closes: a copy cut back to an earlier signed head, with
/// the newest head and every event after it deleted, is a consistent log on its own. Checked
/// against the checkpoint an auditor kept last time, it is named a rollback.
#[tokio::test]
async fn a_copy_cut_back_to_an_earlier_head_fails_against_the_pinned_checkpoint() {
    use gezinsdossier_ledger::checkpoint;
    use gezinsdossier_ledger::verify::verify_log_against;
    let (dir, signer) = fixture().await;
    let kept = verify(dir.path(), signer.public_key()).unwrap().latest_checkpoint.expect("heads carry checkpoints");
    let (pinned, _) = checkpoint::open(&kept, signer.public_key(), &[]).unwrap();
    assert_eq!((pinned.origin.as_str(), pinned.size), (checkpoint::DEFAULT_ORIGIN, 32));

    // Heads signed sizes 10, 21 and 32, at positions 10, 21 and 32: keep up to the second.
    db(dir.path()).execute("DELETE FROM events WHERE position >= 22", []).unwrap();
    let alone = verify(dir.path(), signer.public_key()).expect("a cut-back log is consistent on its own");
    assert_eq!((alone.events, alone.tree_heads), (22, 2));

    let file = LogFile::open(dir.path()).unwrap();
    let heads = file.stream(&treehead::stream()).unwrap();
    let err = verify_log_against(signer.public_key(), &heads, file.events(), Some(&pinned)).unwrap_err();
    assert_eq!(err, Tampering::RolledBack { pinned: 32, events: 22 });
    assert!(err.to_string().contains("rolled back"), "{err}");
}

/// A checkpoint the log signed for a size, with another root than the log has there: the
/// auditor was shown one history and the copy holds another.
#[tokio::test]
async fn a_log_whose_root_differs_at_the_pinned_size_is_a_fork() {
    use gezinsdossier_ledger::checkpoint;
    use gezinsdossier_ledger::merkle::TreeHash;
    use gezinsdossier_ledger::verify::verify_log_against;
    let (dir, signer) = fixture().await;
    let forged = signer.sign(21, &TreeHash([9; 32]), 0).checkpoint.unwrap();
    let (pinned, _) = checkpoint::open(&forged, signer.public_key(), &[]).unwrap();
    let file = LogFile::open(dir.path()).unwrap();
    let heads = file.stream(&treehead::stream()).unwrap();
    let err = verify_log_against(signer.public_key(), &heads, file.events(), Some(&pinned)).unwrap_err();
    assert!(matches!(&err, Tampering::Forked { size: 21, .. }), "{err}");

    // The checkpoint itself must be the log's: another key's is refused before any data is read.
    let other = TreeHeadSigner::load_or_create(&dir.path().join("other.key")).unwrap();
    assert!(matches!(
        checkpoint::open(&forged, other.public_key(), &[]),
        Err(checkpoint::CheckpointError::NotSignedByLog { .. })
    ));
    // A cosignature that is required but absent is named.
    let witness = gezinsdossier_ledger::note::VerifierKey::new(
        "witness.example/w1",
        gezinsdossier_ledger::note::TYPE_COSIGNATURE_V1,
        [3; 32],
    )
    .unwrap();
    assert_eq!(
        checkpoint::open(&forged, signer.public_key(), std::slice::from_ref(&witness)).unwrap_err(),
        checkpoint::CheckpointError::MissingCosignature { witness: "witness.example/w1".into() }
    );
}

/// The same checks over an export of canonical bytes (`export-log`, `verify --export`):
/// an untouched export gives the same report as the data; a flipped byte, a dropped record
/// and a cut-back export are each caught; so is a header whose tree heads are not the
/// log's. An export of the first format (no header) still verifies.
#[tokio::test]
async fn an_export_verifies_like_the_data_and_catches_the_same_tampering() {
    use gezinsdossier_ledger::checkpoint;
    use gezinsdossier_ledger::verify::{verify_export, write_export};
    let (dir, signer) = fixture().await;
    let file = LogFile::open(dir.path()).unwrap();
    let heads = file.stream(&treehead::stream()).unwrap();
    let events: Vec<_> = file.events().map(Result::unwrap).collect();
    // An export of the first `n` events, listing `listed` of the tree heads among them.
    let export_of = |n: usize, listed: usize| {
        let mut out = Vec::new();
        let written = write_export(&heads[..listed], events[..n].iter().cloned().map(Ok::<_, String>), &mut out);
        assert_eq!(written.unwrap(), n as u64);
        out
    };
    let export = export_of(33, 3);
    let check = |bytes: &[u8], pinned: Option<&checkpoint::Checkpoint>| {
        let bytes = bytes.to_vec();
        verify_export(signer.public_key(), move || Ok::<_, std::io::Error>(std::io::Cursor::new(bytes.clone())), pinned)
    };
    let from_data = verify(dir.path(), signer.public_key()).unwrap();
    assert_eq!(check(&export, None).unwrap(), from_data);

    // Where each record starts: the magic, the head count and the three heads come first.
    let mut starts = Vec::new();
    let mut at = 0;
    while at < export.len() {
        starts.push(at);
        at += 4 + u32::from_be_bytes(export[at..at + 4].try_into().unwrap()) as usize;
    }
    let header = starts.drain(..5).count();
    assert_eq!((header, starts.len()), (5, 33));
    // The same records without the header are the first format, read twice.
    assert_eq!(check(&export[starts[0]..], None).unwrap(), from_data);

    // The last payload byte of position 5 (stream family-f2, revision 1): its hash changes,
    // so the stream's next event (position 8) no longer links to it.
    let mut flipped = export.clone();
    flipped[starts[6] - 33] ^= 1;
    let err = check(&flipped, None).unwrap_err();
    assert!(
        matches!(&err, Tampering::Chain { position: 8, source: ChainBreak::BrokenLink { stream, revision: 2 } } if stream == "family-f2"),
        "{err}"
    );
    // Position 3 dropped: its stream skips a revision.
    let dropped = [&export[..starts[3]], &export[starts[4]..]].concat();
    assert!(matches!(
        check(&dropped, None).unwrap_err(),
        Tampering::Chain { source: ChainBreak::RevisionGap { .. }, .. }
    ));
    // Cut back to the second head: consistent alone, a rollback against the newest checkpoint.
    let (pinned, _) =
        checkpoint::open(from_data.latest_checkpoint.as_deref().unwrap(), signer.public_key(), &[]).unwrap();
    let cut = export_of(22, 2);
    assert_eq!(check(&cut, None).unwrap().events, 22);
    assert_eq!(check(&cut, Some(&pinned)).unwrap_err(), Tampering::RolledBack { pinned: 32, events: 22 });
    // The header must list exactly the log's tree heads: one left out, one too many.
    assert_eq!(check(&export_of(33, 2), None).unwrap_err(), Tampering::HeadListDiffers { position: Some(32) });
    assert_eq!(check(&export_of(22, 3), None).unwrap_err(), Tampering::HeadListDiffers { position: None });
    // A record cut short is named, not read past.
    let short = &export[..export.len() - 1];
    assert!(matches!(check(short, None).unwrap_err(), Tampering::Source(m) if m.contains("ends inside a record")));
}
