//! The embedded store's WAL stays within its bound under sustained writes while readers
//! never pause (which keeps passive checkpoints from ever starting the WAL again).

use gezinsdossier_ledger::envelope::{ExpectedRevision, ProposedEvent, StreamId};
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::sqlite::{SqliteOptions, SqliteStore};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const LIMIT: u64 = 2 << 20;

fn event(i: usize) -> ProposedEvent {
    ProposedEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: "test.note".into(),
        recorded_at_micros: 1_790_000_000_000_000 + i as i64,
        payload: format!("{{\"n\":{i},\"text\":\"{}\"}}", "x".repeat(2_000)).into_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_wal_stays_within_its_bound_while_readers_never_pause() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions { wal_limit_bytes: LIMIT, ..SqliteOptions::default() };
    let store = Arc::new(SqliteStore::open_with(dir.path(), options).unwrap());
    let wal = dir.path().join(
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .find(|n| n.to_string_lossy().ends_with("-wal"))
            .expect("a WAL file beside the database"),
    );

    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, done) = (store.clone(), done.clone());
            tokio::spawn(async move {
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) {
                    store.read_all(0, 200).await.unwrap();
                    reads += 1;
                }
                reads
            })
        })
        .collect();

    // About 8 times the bound in events, from 16 writers on their own streams.
    let mut largest = 0;
    let mut written = 0usize;
    for round in 0..40 {
        let appends: Vec<_> = (0..16)
            .map(|w| {
                let store = store.clone();
                let stream = StreamId::new(format!("wal-{w}")).unwrap();
                let events = (0..4).map(|i| event(round * 64 + w * 4 + i)).collect();
                tokio::spawn(async move { store.append(&stream, ExpectedRevision::Any, events).await.unwrap() })
            })
            .collect();
        for a in appends {
            a.await.unwrap();
        }
        written += 64 * 2_100;
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 0, "the readers read throughout");
    }
    assert!(written as u64 > 2 * LIMIT, "enough was written to pass the bound twice over");
    assert!(largest <= LIMIT, "the WAL reached {largest} bytes against a bound of {LIMIT}");
    assert_eq!(store.read_all(0, 10_000).await.unwrap().len(), 40 * 64, "every event is readable");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_that_holds_its_snapshot_never_makes_a_commit_fail() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions { wal_limit_bytes: LIMIT, ..SqliteOptions::default() };
    let store = Arc::new(SqliteStore::open_with(dir.path(), options).unwrap());
    let stream = StreamId::new("wal-held").unwrap();
    store.append(&stream, ExpectedRevision::Any, vec![event(0)]).await.unwrap();

    // Another process's reader (a backup, an operator's sqlite3) keeps one snapshot open
    // for longer than the writer's 5 s busy timeout, while the WAL passes its bound.
    let db = dir.path().join("events.sqlite3");
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute_batch("BEGIN; SELECT count(*) FROM events;").unwrap();
        held_tx.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_secs(6));
        conn.execute_batch("COMMIT;").unwrap();
    });
    held_rx.recv().unwrap();
    let started = std::time::Instant::now();
    let mut i = 1;
    while started.elapsed() < std::time::Duration::from_secs(7) {
        let events = (0..8).map(|k| event(i * 8 + k)).collect();
        store.append(&stream, ExpectedRevision::Any, events).await.expect("a commit waits at most briefly");
        i += 1;
    }
    reader.join().unwrap();
    assert!(i as u64 * 8 * 2_100 > LIMIT, "the WAL passed its bound while the reader held on");
    store.shutdown().await;
}
