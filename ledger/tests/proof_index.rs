//! The proof index keeps the Merkle tree as persisted tiles: the publisher writes full tiles
//! as the log grows, a new index starts from the newest tiles with bounded work, and its
//! proofs (loading tiles on demand, few at hand) equal those computed from every event.

use gezinsdossier_ledger::clock::SystemClock;
use gezinsdossier_ledger::envelope::{ExpectedRevision, ProposedEvent, StreamId};
use gezinsdossier_ledger::merkle::{MemoryNodes, consistency_proof, inclusion_proof, leaf_hash, root};
use gezinsdossier_ledger::proof_index::{LogIndex, tile_stream};
use gezinsdossier_ledger::publisher::{self, PublishPolicy, PublisherStatus};
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::sqlite::SqliteStore;
use gezinsdossier_ledger::treehead::TreeHeadSigner;
use std::sync::Arc;
use std::time::Duration;

const EVENTS: u64 = 100_000;

fn events(from: u64, n: u64) -> Vec<ProposedEvent> {
    (from..from + n)
        .map(|i| ProposedEvent {
            event_id: uuid::Uuid::new_v4(),
            event_type: "test.note".into(),
            recorded_at_micros: 1_790_000_000_000_000 + i as i64,
            payload: format!("{{\"n\":{i}}}").into_bytes(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_persist_a_start_reads_only_the_newest_and_proofs_match_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let signer = Arc::new(TreeHeadSigner::load_or_create(&dir.path().join("treehead.key")).unwrap());
    let index = LogIndex::new(store.clone());
    let (status, _watch) = tokio::sync::watch::channel(PublisherStatus::default());
    let policy = PublishPolicy { every_events: u64::MAX, every: Duration::from_secs(3600) };
    let publisher =
        tokio::spawn(publisher::run(store.clone(), signer, Arc::new(SystemClock), policy, index.clone(), status));
    for batch in 0..EVENTS / 1000 {
        let stream = StreamId::new(format!("family-f{}", batch % 7)).unwrap();
        store.append(&stream, ExpectedRevision::Any, events(batch * 1000, 1000)).await.unwrap();
    }
    // The publisher also appends the tiles it completes; wait (bounded) until it has read all.
    let mut total = 0;
    for _ in 0..2400 {
        total = everything(&*store, 0).await.len() as u64;
        if index.size() == total && total > EVENTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(index.size(), total, "the publisher indexed the whole log");
    publisher.abort();
    let tiles = store.stream_revision(&tile_stream(0)).await.unwrap().map_or(0, |r| r + 1);
    assert!(tiles * 256 > total - 256 - 2, "full level-0 tiles are persisted as the log grows: {tiles} for {total}");
    assert_eq!(store.stream_revision(&tile_stream(1)).await.unwrap(), Some(0), "one full level-1 tile");

    // A new start: bounded work, whatever the log's size.
    let fresh = LogIndex::new(store.clone()).with_tiles_at_hand(16);
    let restored = fresh.restore().await.unwrap();
    assert_eq!(restored.size, tiles * 256);
    assert!(restored.tiles_read <= 2 * 255, "restore read {} tiles", restored.tiles_read);
    assert!(total - restored.size < 256 + 2, "it catches up at most a tile of events");
    for event in everything(&*store, restored.size).await {
        fresh.push(leaf_hash(&event.canonical_bytes()));
    }
    assert_eq!(fresh.size(), total);

    let mut all = MemoryNodes::new();
    for event in everything(&*store, 0).await {
        all.push(leaf_hash(&event.canonical_bytes()));
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    for _ in 0..200 {
        let size = 1 + next(total);
        let position = next(size);
        let old = 1 + next(size);
        assert_eq!(fresh.inclusion(position, size).await.unwrap(), inclusion_proof(&all, position, size).unwrap());
        assert_eq!(fresh.consistency(old, size).await.unwrap(), consistency_proof(&all, old, size).unwrap());
        assert_eq!(fresh.root(size).await.unwrap(), root(&all, size).unwrap());
        assert!(fresh.tiles_at_hand() <= 16 + 8, "tiles at hand stay bounded: {}", fresh.tiles_at_hand());
    }
    // Tiles are served as the spec lays them out: full ones, and prefixes of the partial.
    let first = fresh.tile(0, 0, None).await.unwrap().unwrap();
    assert_eq!(first.len(), 8192);
    assert_eq!(&first[..32], &all_leaf(&*store, 0).await);
    let partial_width = (total % 256) as usize;
    let partial = fresh.tile(0, tiles, Some(partial_width)).await.unwrap().unwrap();
    assert_eq!(partial.len(), 32 * partial_width);
    assert_eq!(fresh.tile(0, tiles + 1, None).await.unwrap(), None);
}

async fn everything(store: &dyn EventStore, from: u64) -> Vec<gezinsdossier_ledger::envelope::RecordedEvent> {
    let mut out = Vec::new();
    loop {
        let page = store.read_all(from + out.len() as u64, 10_000).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

async fn all_leaf(store: &dyn EventStore, position: u64) -> [u8; 32] {
    leaf_hash(&store.read_all(position, 1).await.unwrap()[0].canonical_bytes()).0
}

/// Past its bound, the index lets go of old level-0 tiles first: the upper levels, which
/// most proofs share, and the newest level-0 tiles, where most proofs are asked, stay.
#[tokio::test]
async fn past_its_bound_the_index_keeps_upper_and_recent_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let index = LogIndex::new(store.clone()).with_tiles_at_hand(16);
    // One full level-1 tile (256 × 256 leaves), then 20 level-0 tiles more.
    let leaves: u64 = 256 * 256 + 20 * 256;
    for n in 0..leaves {
        let done = index.push(leaf_hash(&n.to_be_bytes()));
        index.persist(&done).await.unwrap();
    }
    assert!(index.tiles_at_hand() <= 16, "{} tiles at hand", index.tiles_at_hand());
    assert!(index.holds_tile(1, 0), "the level-1 tile stays");
    assert!(index.holds_tile(0, 255 + 20), "the newest level-0 tile stays");
    assert!(!index.holds_tile(0, 0), "the oldest level-0 tile went");
    // What went is read back when a proof needs it.
    let mut all = MemoryNodes::new();
    for n in 0..leaves {
        all.push(leaf_hash(&n.to_be_bytes()));
    }
    assert_eq!(index.inclusion(3, leaves).await.unwrap(), inclusion_proof(&all, 3, leaves).unwrap());
    store.shutdown().await;
}
