//! The event-store contract: every backend runs exactly these cases.
//!
//! Add a backend by adding one `contract_suite!` line with a function that opens a fresh,
//! empty store.

use futures::StreamExt;
use gezinsdossier_ledger::chain::verify_stream;
use gezinsdossier_ledger::envelope::{ExpectedRevision, ProposedEvent, StreamId};
use gezinsdossier_ledger::store::keys::KeyStore;
use gezinsdossier_ledger::store::{EventStore, StoreError};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

mod cases {
    use super::*;
    use gezinsdossier_ledger::sealing::{Content, Kek, KeyId, Keyring, Opener};
    use gezinsdossier_ledger::store::keys::StoredKey;

    fn stored_key(family: &str, label: &str, created_at_micros: i64) -> StoredKey {
        StoredKey {
            key_id: KeyId::random().unwrap(),
            family: family.into(),
            label: label.into(),
            kek_id: "k1".into(),
            wrapped: Some(vec![7; 60]),
            created_at_micros,
            destroyed_at_micros: None,
        }
    }

    pub async fn keys_are_kept_destroyed_and_rewrapped<S: EventStore>(Fixture { keys, .. }: Fixture<S>) {
        let a = stored_key("fam-a", "g1", 10);
        let b = stored_key("fam-a", "g1", 20);
        let c = stored_key("fam-b", "g2", 30);
        for k in [&a, &b, &c] {
            keys.insert(k).await.unwrap();
        }
        keys.insert(&a).await.expect("storing the same key again is a no-op");
        let other = StoredKey { label: "elsewhere".into(), ..a.clone() };
        assert!(matches!(keys.insert(&other).await, Err(StoreError::Corrupt(_))), "an id is never reused");
        assert_eq!(keys.get(a.key_id).await.unwrap(), Some(a.clone()));
        assert_eq!(keys.get(KeyId::random().unwrap()).await.unwrap(), None);
        assert_eq!(keys.live("fam-a", "g1").await.unwrap().map(|k| k.key_id), Some(a.key_id), "the oldest");
        assert_eq!(keys.of_family("fam-a").await.unwrap().len(), 2);
        assert_eq!(keys.all().await.unwrap().len(), 3);

        keys.rewrap(b.key_id, "k2", &[9; 60]).await.unwrap();
        let rewrapped = keys.get(b.key_id).await.unwrap().unwrap();
        assert_eq!((rewrapped.kek_id.as_str(), rewrapped.wrapped.as_deref()), ("k2", Some(&[9u8; 60][..])));

        assert_eq!(keys.destroy(&[a.key_id, KeyId::random().unwrap()], 99).await.unwrap(), 1);
        assert_eq!(keys.destroy(&[a.key_id], 100).await.unwrap(), 0, "destroying twice is a no-op");
        let gone = keys.get(a.key_id).await.unwrap().unwrap();
        assert_eq!((gone.wrapped, gone.destroyed_at_micros), (None, Some(99)));
        assert_eq!((gone.family.as_str(), gone.label.as_str()), ("fam-a", "g1"), "whose it was stays known");
        assert_eq!(keys.live("fam-a", "g1").await.unwrap().map(|k| k.key_id), Some(b.key_id));
        keys.rewrap(a.key_id, "k3", &[1; 60]).await.unwrap();
        assert!(keys.get(a.key_id).await.unwrap().unwrap().wrapped.is_none(), "a destroyed key stays destroyed");
    }

    pub async fn sealed_payloads_shred_and_the_chain_still_verifies<S: EventStore>(
        Fixture { store, keys, .. }: Fixture<S>,
    ) {
        let kek = Kek::from_hex(&Kek::generate_hex().unwrap()).unwrap();
        let keyring = Keyring::new(keys.clone(), vec![kek.clone()]).unwrap();
        let group = |subject: &str| gezinsdossier_ledger::sealing::KeyGroup {
            author: "org".into(),
            subjects: [subject.to_owned()].into(),
            categories: Default::default(),
            record: gezinsdossier_ledger::sealing::RecordKind::Case,
        };
        let s = stream("family-sealed");
        let mut proposed = Vec::new();
        for (i, subject) in ["mother", "father", "mother"].iter().enumerate() {
            let mut e = event(&format!("{subject}-{i}"));
            e.payload =
                keyring.seal("sealed", &group(subject), &e.event_id, &e.event_type, &e.payload, 1).await.unwrap();
            proposed.push(e);
        }
        store.append(&s, ExpectedRevision::NoStream, proposed.clone()).await.unwrap();
        // A retry proposes the same sealed bytes, so it is recognised.
        assert!(store.append(&s, ExpectedRevision::Any, proposed).await.unwrap().deduplicated);
        let stored = store.read_stream(&s, 0, 10).await.unwrap();
        assert!(stored.iter().all(|e| !String::from_utf8_lossy(&e.payload).contains("mother")));

        let mother = gezinsdossier_ledger::sealing::sealed_with(&stored[0].payload).unwrap().unwrap();
        keyring.destroy(&[mother], 5).await.unwrap();
        // Another process, knowing only the KEK and the key store.
        let fresh = Keyring::new(keys, vec![kek]).unwrap();
        fresh.prefetch(&stored).await.unwrap();
        let opened: Vec<_> = stored.iter().map(|e| fresh.open(e).unwrap().content).collect();
        assert!(matches!(opened[0], Content::Shredded { erased_at_micros: Some(5), .. }));
        assert!(matches!(&opened[1], Content::Plain(p) if String::from_utf8_lossy(p).contains("father-1")));
        assert!(matches!(opened[2], Content::Shredded { .. }));
        verify_stream(&stored).unwrap();
        assert_eq!(store.read_stream(&s, 0, 10).await.unwrap(), stored, "no event changed");
    }

    pub fn event(tag: &str) -> ProposedEvent {
        ProposedEvent {
            event_id: Uuid::new_v4(),
            event_type: "test.event".into(),
            recorded_at_micros: 1_700_000_000_000_000,
            payload: format!("{{\"tag\":\"{tag}\"}}").into_bytes(),
        }
    }

    pub fn stream(name: &str) -> StreamId {
        StreamId::new(name).unwrap()
    }

    async fn all_events<S: EventStore + ?Sized>(store: &S) -> Vec<gezinsdossier_ledger::envelope::RecordedEvent> {
        let mut out = Vec::new();
        loop {
            let page = store.read_all(out.len() as u64, 100).await.unwrap();
            if page.is_empty() {
                return out;
            }
            out.extend(page);
        }
    }

    /// Positions are exactly 0..n and every stream's chain verifies.
    async fn assert_log_sound<S: EventStore>(store: &S) -> usize {
        let all = all_events(store).await;
        let mut streams: BTreeMap<StreamId, Vec<_>> = BTreeMap::new();
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.position, i as u64, "global log has a gap or reordering");
            streams.entry(e.stream.clone()).or_default().push(e.clone());
        }
        let ids: HashSet<_> = all.iter().map(|e| e.event_id).collect();
        assert_eq!(ids.len(), all.len(), "an event id is stored twice");
        for events in streams.values() {
            verify_stream(events).unwrap();
        }
        all.len()
    }

    /// The proof index keeps its tiles as events of this store: they persist, a second
    /// writer of the same tile is fine, a different one is refused, and a fresh index
    /// restores from them and proves what the events prove.
    pub async fn tiles_persist_and_a_fresh_index_restores_from_them<S: EventStore + 'static>(
        Fixture { store, _guard, .. }: Fixture<S>,
    ) {
        use gezinsdossier_ledger::merkle::tiles::FullTile;
        use gezinsdossier_ledger::merkle::{MemoryNodes, TreeHash, inclusion_proof, leaf_hash};
        use gezinsdossier_ledger::proof_index::LogIndex;
        let store: Arc<dyn EventStore> = Arc::new(store);
        for i in 0..7 {
            let batch = (0..100).map(|j| event(&format!("{i}-{j}"))).collect();
            store.append(&stream(&format!("family-t{}", i % 3)), ExpectedRevision::Any, batch).await.unwrap();
        }
        let index = LogIndex::new(store.clone());
        let mut all = MemoryNodes::new();
        // Index until the tile events it writes are indexed too.
        loop {
            let page = all_events(&*store).await.split_off(index.size() as usize);
            if page.is_empty() {
                break;
            }
            for e in page {
                let leaf = leaf_hash(&e.canonical_bytes());
                all.push(leaf);
                let full = index.push(leaf);
                index.persist(&full).await.unwrap();
                // Another replica persisting the same tile: accepted as already there.
                index.persist(&full).await.unwrap();
            }
        }
        let size = index.size();
        let fresh = LogIndex::new(store.clone()).with_tiles_at_hand(16);
        let restored = fresh.restore().await.unwrap();
        assert_eq!(restored.size, size - size % 256);
        assert!(restored.size >= 512, "two full tiles at least: {size}");
        for e in all_events(&*store).await.split_off(restored.size as usize) {
            fresh.push(leaf_hash(&e.canonical_bytes()));
        }
        for (position, tree) in [(0, size), (255, 256), (256, size), (size - 1, size), (300, 513)] {
            assert_eq!(fresh.inclusion(position, tree).await.unwrap(), inclusion_proof(&all, position, tree).unwrap());
        }
        let forged = FullTile { level: 0, index: 0, hashes: vec![TreeHash([0; 32]); 256].into() };
        assert!(matches!(fresh.persist(&[forged]).await, Err(StoreError::Corrupt(_))));
    }

    pub async fn append_and_read<S: EventStore>(Fixture { store, .. }: Fixture<S>) {
        let s = stream("family-a");
        assert_eq!(store.stream_revision(&s).await.unwrap(), None);
        let batch: Vec<_> = (0..3).map(|i| event(&i.to_string())).collect();
        let out = store.append(&s, ExpectedRevision::NoStream, batch.clone()).await.unwrap();
        assert_eq!(out.stream_revision, 2);
        assert_eq!(out.positions, vec![0, 1, 2]);
        assert!(!out.deduplicated);
        let read = store.read_stream(&s, 0, 10).await.unwrap();
        assert_eq!(read.len(), 3);
        for (i, (r, p)) in read.iter().zip(&batch).enumerate() {
            assert_eq!(r.revision, i as u64);
            assert_eq!(r.event_id, p.event_id);
            assert_eq!(r.payload, p.payload);
            assert_eq!(r.recorded_at_micros, p.recorded_at_micros);
        }
        assert_eq!(read[2].hash, out.last_hash());
        assert_eq!(out.recorded(&s, &batch), read);
        let more = vec![event("3")];
        let out2 = store.append(&s, ExpectedRevision::Exact(2), more.clone()).await.unwrap();
        assert_eq!(out2.recorded(&s, &more), store.read_stream(&s, 3, 10).await.unwrap());
        assert_eq!(store.read_stream(&s, 1, 1).await.unwrap()[0].revision, 1);
        assert!(store.read_stream(&stream("family-none"), 0, 10).await.unwrap().is_empty());
        assert_eq!(store.stream_revision(&s).await.unwrap(), Some(3));
        assert_eq!(assert_log_sound(&store).await, 4);
    }

    pub async fn expected_revision_is_enforced<S: EventStore>(Fixture { store, .. }: Fixture<S>) {
        let s = stream("family-b");
        store.append(&s, ExpectedRevision::NoStream, vec![event("a")]).await.unwrap();
        let err = store.append(&s, ExpectedRevision::NoStream, vec![event("b")]).await.unwrap_err();
        assert!(matches!(err, StoreError::WrongExpectedRevision { actual: Some(0), .. }), "got {err:?}");
        let err = store.append(&s, ExpectedRevision::Exact(5), vec![event("c")]).await.unwrap_err();
        assert!(matches!(err, StoreError::WrongExpectedRevision { actual: Some(0), .. }), "got {err:?}");
        assert!(err.to_string().contains("actual revision 0"), "{err}");
        let err = store.append(&stream("family-new"), ExpectedRevision::Exact(0), vec![event("d")]).await.unwrap_err();
        assert!(matches!(err, StoreError::WrongExpectedRevision { actual: None, .. }), "got {err:?}");
        assert_eq!(store.append(&s, ExpectedRevision::Exact(0), vec![event("e")]).await.unwrap().stream_revision, 1);
        assert_eq!(store.append(&s, ExpectedRevision::Any, vec![event("f")]).await.unwrap().stream_revision, 2);
        assert_eq!(assert_log_sound(&store).await, 3);
    }

    pub async fn retries_are_idempotent<S: EventStore>(Fixture { store, .. }: Fixture<S>) {
        let s = stream("family-c");
        let batch = vec![event("1"), event("2")];
        let first = store.append(&s, ExpectedRevision::NoStream, batch.clone()).await.unwrap();
        // Same ids, same content, even with a now-stale expected revision: the original result.
        let mut later = batch.clone();
        for e in &mut later {
            e.recorded_at_micros += 5_000_000;
        }
        for expected in [ExpectedRevision::NoStream, ExpectedRevision::Any, ExpectedRevision::Exact(7)] {
            let again = store.append(&s, expected, later.clone()).await.unwrap();
            assert!(again.deduplicated);
            assert_eq!(again.positions, first.positions);
            assert_eq!(again.stream_revision, first.stream_revision);
        }
        assert_eq!(assert_log_sound(&store).await, 2);
    }

    pub async fn reused_ids_with_other_content_conflict<S: EventStore>(Fixture { store, .. }: Fixture<S>) {
        let s = stream("family-d");
        let original = event("1");
        store.append(&s, ExpectedRevision::Any, vec![original.clone()]).await.unwrap();
        let mut changed = original.clone();
        changed.payload = b"{\"tag\":\"changed\"}".to_vec();
        let err = store.append(&s, ExpectedRevision::Any, vec![changed]).await.unwrap_err();
        assert_eq!(err, StoreError::EventIdConflict { event_id: original.event_id });
        // The same id in another stream is a conflict too.
        let err = store.append(&stream("family-e"), ExpectedRevision::Any, vec![original.clone()]).await.unwrap_err();
        assert_eq!(err, StoreError::EventIdConflict { event_id: original.event_id });
        // A batch whose later event reuses an id writes nothing at all.
        let fresh = event("fresh");
        let err = store.append(&s, ExpectedRevision::Any, vec![fresh.clone(), original.clone()]).await.unwrap_err();
        assert!(matches!(err, StoreError::EventIdConflict { .. }), "got {err:?}");
        assert_eq!(store.stream_revision(&s).await.unwrap(), Some(0));
        assert_eq!(assert_log_sound(&store).await, 1);
    }

    pub async fn malformed_batches_are_refused<S: EventStore>(Fixture { store, .. }: Fixture<S>) {
        let s = stream("family-f");
        let err = store.append(&s, ExpectedRevision::Any, vec![]).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidAppend(_)), "got {err:?}");
        let e = event("x");
        let err = store.append(&s, ExpectedRevision::Any, vec![e.clone(), e]).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidAppend(_)), "got {err:?}");
        assert_eq!(assert_log_sound(&store).await, 0);
    }

    /// Many tasks race on one stream with exact expected revisions: every append either lands
    /// on the revision it expected or is told the real one; none is lost or doubled.
    pub async fn concurrent_writers_on_one_stream<S: EventStore>(Fixture { store, .. }: Fixture<S>) {
        let store = Arc::new(store);
        let s = stream("family-hot");
        let (tasks, per_task) = (16, 20);
        let mut handles = Vec::new();
        for t in 0..tasks {
            let store = store.clone();
            let s = s.clone();
            handles.push(tokio::spawn(async move {
                let mut written = Vec::new();
                for i in 0..per_task {
                    let e = event(&format!("{t}-{i}"));
                    loop {
                        let current = store.stream_revision(&s).await.unwrap();
                        let expected = current.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
                        match store.append(&s, expected, vec![e.clone()]).await {
                            Ok(out) => {
                                assert_eq!(out.stream_revision, current.map_or(0, |r| r + 1));
                                written.push(e.event_id);
                                break;
                            }
                            Err(StoreError::WrongExpectedRevision { .. }) => continue,
                            Err(other) => panic!("unexpected {other:?}"),
                        }
                    }
                }
                written
            }));
        }
        let mut acked = HashSet::new();
        for h in handles {
            acked.extend(h.await.unwrap());
        }
        let stored = store.read_stream(&s, 0, 10_000).await.unwrap();
        assert_eq!(stored.len(), tasks * per_task);
        assert_eq!(stored.iter().map(|e| e.event_id).collect::<HashSet<_>>(), acked);
        assert_eq!(assert_log_sound(&*store).await, tasks * per_task);
    }

    /// Many tasks append to their own streams and to one shared stream with `Any`.
    pub async fn concurrent_writers_on_many_streams<S: EventStore>(Fixture { store, .. }: Fixture<S>) {
        let store = Arc::new(store);
        let (tasks, per_task) = (32, 15);
        let mut handles = Vec::new();
        for t in 0..tasks {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..per_task {
                    let own = stream(&format!("family-t{t}"));
                    store.append(&own, ExpectedRevision::Any, vec![event("own"), event("own2")]).await.unwrap();
                    let out = store
                        .append(&stream("family-shared"), ExpectedRevision::Any, vec![event(&i.to_string())])
                        .await;
                    out.unwrap();
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(assert_log_sound(&*store).await, tasks * per_task * 3);
        assert_eq!(store.stream_revision(&stream("family-shared")).await.unwrap(), Some((tasks * per_task - 1) as u64));
    }

    /// A subscriber sees every event once, in order: first the stored ones, then live ones
    /// committed while it reads.
    pub async fn subscription_catches_up_then_follows<S: EventStore>(Fixture { store, .. }: Fixture<S>) {
        let store = Arc::new(store);
        for i in 0..700 {
            store
                .append(&stream(&format!("family-s{}", i % 7)), ExpectedRevision::Any, vec![event("old")])
                .await
                .unwrap();
        }
        let mut sub = store.subscribe_all(0);
        let mut from_middle = store.subscribe_all(650);
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut handles = Vec::new();
                for t in 0..8 {
                    let store = store.clone();
                    handles.push(tokio::spawn(async move {
                        for _ in 0..50 {
                            store
                                .append(&stream(&format!("family-live{t}")), ExpectedRevision::Any, vec![event("new")])
                                .await
                                .unwrap();
                        }
                    }));
                }
                for h in handles {
                    h.await.unwrap();
                }
            })
        };
        let total = 700 + 8 * 50;
        for expected in 0..total as u64 {
            let e = tokio::time::timeout(std::time::Duration::from_secs(30), sub.next())
                .await
                .expect("subscription stalled")
                .expect("subscription ended")
                .unwrap();
            assert_eq!(e.position, expected);
        }
        for expected in 650..total as u64 {
            let e = from_middle.next().await.unwrap().unwrap();
            assert_eq!(e.position, expected);
        }
        writer.await.unwrap();
        // Nothing more arrives until something is appended.
        assert!(tokio::time::timeout(std::time::Duration::from_millis(100), sub.next()).await.is_err());
        let out = store.append(&stream("family-late"), ExpectedRevision::Any, vec![event("late")]).await.unwrap();
        assert_eq!(sub.next().await.unwrap().unwrap().position, out.positions[0]);
    }

    /// Live events reach subscribers in this process from what the writer hands over as it
    /// commits (SQLite, PostgreSQL), not read back; they must be exactly the stored events,
    /// with batch mates that were retries or refused, and a subscriber that lags past what
    /// the writer holds for it reads the rest from the store without a gap.
    pub async fn live_subscribers_see_exactly_the_stored_events<S: EventStore>(Fixture { store, .. }: Fixture<S>) {
        let store = Arc::new(store);
        store.append(&stream("family-t0"), ExpectedRevision::Any, vec![event("before")]).await.unwrap();
        let mut reading = store.subscribe_all(0);
        let mut lagging = store.subscribe_all(0);
        let first = reading.next().await.unwrap().unwrap();
        // Caught up and waiting: what follows comes live.
        assert!(tokio::time::timeout(std::time::Duration::from_millis(50), reading.next()).await.is_err());

        let retried = vec![event("r1"), event("r2")];
        store.append(&stream("family-retry"), ExpectedRevision::NoStream, retried.clone()).await.unwrap();
        // More than one commit hands over: read from the store, in its place.
        let big = (0..600).map(|_| event("big")).collect();
        store.append(&stream("family-big"), ExpectedRevision::NoStream, big).await.unwrap();
        let mut tasks = Vec::new();
        for t in 0..8 {
            let (store, retried) = (store.clone(), retried.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..60 {
                    let s = stream(&format!("family-t{t}"));
                    let events = (0..1 + i % 3).map(|_| event("live")).collect();
                    store.append(&s, ExpectedRevision::Any, events).await.unwrap();
                    // Batch mates that write nothing: a retry, and a wrong expected revision.
                    let again =
                        store.append(&stream("family-retry"), ExpectedRevision::NoStream, retried.clone()).await;
                    assert!(again.unwrap().deduplicated);
                    let refused = store.append(&s, ExpectedRevision::NoStream, vec![event("refused")]).await;
                    assert!(refused.is_err());
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let stored = store.read_all(0, 10_000).await.unwrap();
        assert_eq!(stored.len(), 1 + 2 + 600 + 8 * (20 + 40 + 60));
        for (subscription, mut seen) in [(&mut reading, vec![first]), (&mut lagging, Vec::new())] {
            while seen.len() < stored.len() {
                let next = tokio::time::timeout(std::time::Duration::from_secs(10), subscription.next());
                seen.push(next.await.expect("subscription stalled").unwrap().unwrap());
            }
            let first = seen.iter().zip(&stored).position(|(a, b)| a != b);
            assert_eq!(first, None, "the subscription differs from the store from position {first:?}");
        }
    }

    /// The shared live read: followers that start before, amid and after the writes, and one
    /// that stops reading for longer than the shared buffer holds, each see every event
    /// from their start exactly once, in order.
    pub async fn fanout_followers_see_every_event_once_in_order<S: EventStore>(Fixture { store, .. }: Fixture<S>) {
        use gezinsdossier_ledger::store::fanout::Fanout;
        let store: Arc<dyn EventStore> = Arc::new(store);
        let fanout = Arc::new(Fanout::new(store.clone()));
        for i in 0..10 {
            store.append(&stream(&format!("family-f{i}")), ExpectedRevision::Any, vec![event("old")]).await.unwrap();
        }
        let mut early = fanout.follow(0);
        let mut idle = fanout.follow(5);
        let write = async |n: usize| {
            for _ in 0..n / 100 {
                let batch = (0..100).map(|_| event("new")).collect();
                store.append(&stream("family-live"), ExpectedRevision::Any, batch).await.unwrap();
            }
        };
        write(500).await;
        let mut late = fanout.follow(300);
        // More than the shared buffer and the follower's own queue hold while `idle` reads
        // nothing.
        write(6000).await;
        let total = 10 + 6500u64;
        for (follower, from) in [(&mut early, 0), (&mut late, 300), (&mut idle, 5)] {
            for expected in from..total {
                let e = tokio::time::timeout(std::time::Duration::from_secs(30), follower.next())
                    .await
                    .expect("follower stalled")
                    .expect("follower ended")
                    .unwrap();
                assert_eq!(e.position, expected);
            }
        }
        assert!(tokio::time::timeout(std::time::Duration::from_millis(100), early.next()).await.is_err());
    }

    /// A write probe on a working store succeeds, between and among appends, and writes no
    /// event: positions go on without a gap.
    pub async fn write_probes_succeed_and_write_no_event<S: EventStore>(Fixture { store, .. }: Fixture<S>) {
        let store = Arc::new(store);
        store.append(&stream("family-p"), ExpectedRevision::NoStream, vec![event("a")]).await.unwrap();
        let probes: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.probe_writes().await })
            })
            .collect();
        let next = store.append(&stream("family-p"), ExpectedRevision::Exact(0), vec![event("b")]).await.unwrap();
        for probe in probes {
            probe.await.unwrap().unwrap();
        }
        store.probe_writes().await.unwrap();
        let last = store.append(&stream("family-p"), ExpectedRevision::Exact(1), vec![event("c")]).await.unwrap();
        assert_eq!(last.positions[0], next.positions[0] + 1);
        assert_eq!(assert_log_sound(&*store).await, 3);
    }
}

macro_rules! contract_suite {
    ($backend:ident, $open:expr $(, #[$attr:meta])?) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    $(#[$attr])?
                    async fn $name() {
                        #[allow(clippy::redundant_closure_call)]
                        let Some(fixture) = ($open)().await else {
                            return;
                        };
                        cases::$name(fixture).await;
                    }
                };
            }

            case!(append_and_read);
            case!(expected_revision_is_enforced);
            case!(retries_are_idempotent);
            case!(reused_ids_with_other_content_conflict);
            case!(malformed_batches_are_refused);
            case!(concurrent_writers_on_one_stream);
            case!(concurrent_writers_on_many_streams);
            case!(subscription_catches_up_then_follows);
            case!(live_subscribers_see_exactly_the_stored_events);
            case!(write_probes_succeed_and_write_no_event);
            case!(fanout_followers_see_every_event_once_in_order);
            case!(keys_are_kept_destroyed_and_rewrapped);
            case!(sealed_payloads_shred_and_the_chain_still_verifies);
            case!(tiles_persist_and_a_fresh_index_restores_from_them);
        }
    };
}

/// A store plus whatever must live as long as it (a temporary directory, a schema).
struct Fixture<S> {
    store: S,
    /// The key store beside it.
    keys: Arc<dyn KeyStore>,
    /// Dropped after the case has finished with the store.
    _guard: Box<dyn std::any::Any + Send>,
}

mod sqlite_backend {
    use super::Fixture;
    use gezinsdossier_ledger::store::sqlite::SqliteStore;

    use gezinsdossier_ledger::store::sqlite::SqliteOptions;

    pub async fn open() -> Option<Fixture<SqliteStore>> {
        open_with(SqliteOptions::default())
    }

    /// An index run every two events, so that each case reads through runs, the tail and
    /// the moves between them.
    pub async fn open_with_tiny_runs() -> Option<Fixture<SqliteStore>> {
        open_with(SqliteOptions { run_events: 2, ..SqliteOptions::default() })
    }

    fn open_with(options: SqliteOptions) -> Option<Fixture<SqliteStore>> {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_with(dir.path(), options).unwrap();
        let keys =
            std::sync::Arc::new(gezinsdossier_ledger::store::keys::sqlite::SqliteKeyStore::open(dir.path()).unwrap());
        Some(Fixture { store, keys, _guard: Box::new(dir) })
    }
}

contract_suite!(sqlite, sqlite_backend::open);
contract_suite!(sqlite_tiny_runs, sqlite_backend::open_with_tiny_runs);

/// PostgreSQL at `GZD_TEST_POSTGRES_URL` (default: this machine's), each case in a
/// schema of its own that is dropped afterwards. Unreachable: the case says SKIPPED, unless
/// `GZD_TEST_REQUIRE_POSTGRES=1` (as in CI), when it fails.
mod postgres_backend {
    use super::Fixture;
    use gezinsdossier_ledger::store::postgres::{PostgresOptions, PostgresStore};

    pub fn url() -> String {
        std::env::var("GZD_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into())
    }

    /// Drops the case's schema when the case is over.
    pub struct Schema {
        url: String,
        name: String,
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let (url, name) = (self.url.clone(), self.name.clone());
            // Drop runs inside the test's runtime; a plain thread may block on its own one.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(async {
                    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.ok()?;
                    tokio::spawn(conn);
                    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await.ok()
                })
            })
            .join();
        }
    }

    impl Schema {
        pub fn fresh() -> Self {
            Self { url: url(), name: format!("contract_{}", uuid::Uuid::new_v4().simple()) }
        }
    }

    /// A store on `schema`; `None` (having said SKIPPED) when PostgreSQL is unreachable.
    pub async fn connect(schema: &Schema) -> Option<PostgresStore> {
        let options = PostgresOptions { schema: Some(schema.name.clone()), ..PostgresOptions::new(schema.url.clone()) };
        match PostgresStore::open(options).await {
            Ok(store) => Some(store),
            Err(e) if std::env::var("GZD_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
                panic!("PostgreSQL is required (GZD_TEST_REQUIRE_POSTGRES=1) but {} failed: {e}", schema.url)
            }
            Err(e) => {
                eprintln!("SKIPPED postgres test: {} is not reachable ({e}); set GZD_TEST_POSTGRES_URL", schema.url);
                None
            }
        }
    }

    pub async fn open() -> Option<Fixture<PostgresStore>> {
        let schema = Schema::fresh();
        let store = connect(&schema).await?;
        let keys = std::sync::Arc::new(store.key_store());
        Some(Fixture { store, keys, _guard: Box::new(schema) })
    }
}

contract_suite!(postgres, postgres_backend::open);

/// KurrentDB at `KURRENTDB_URL` (e.g. `kurrentdb://127.0.0.1:2113?tls=false`), each case in
/// a namespace of its own. Without the variable the cases are compiled as ignored, so the
/// test run lists each one as not run. No KurrentDB can run on this project's CI machines.
mod kurrentdb_backend {
    use super::Fixture;
    use gezinsdossier_ledger::store::kurrent::{KurrentOptions, KurrentStore};

    pub async fn open() -> Option<Fixture<KurrentStore>> {
        let url = std::env::var("KURRENTDB_URL").expect("the suite is compiled in only when KURRENTDB_URL is set");
        let namespace = format!("contract_{}", uuid::Uuid::new_v4().simple());
        let store = KurrentStore::open(KurrentOptions { url, namespace }).await.expect("KurrentDB at KURRENTDB_URL");
        let keys = std::sync::Arc::new(store.key_store());
        Some(Fixture { store, keys, _guard: Box::new(()) })
    }
}

/// The same backend against the in-process KurrentDB stand-in (see its crate doc for what
/// it models and what it does not), so the mapping runs through the official client on
/// every test run.
mod kurrentdb_fake_backend {
    use super::Fixture;
    use gezinsdossier_kurrentdb_fake::FakeKurrentDb;
    use gezinsdossier_ledger::store::kurrent::{KurrentOptions, KurrentStore};

    pub async fn open() -> Option<Fixture<KurrentStore>> {
        let fake = FakeKurrentDb::start().await;
        let store = KurrentStore::open(KurrentOptions::new(fake.url())).await.expect("the fake KurrentDB");
        let keys = std::sync::Arc::new(store.key_store());
        Some(Fixture { store, keys, _guard: Box::new(fake) })
    }
}

contract_suite!(kurrentdb_fake, kurrentdb_fake_backend::open);

contract_suite!(
    kurrentdb,
    kurrentdb_backend::open,
    #[cfg_attr(not(kurrentdb_live), ignore = "KURRENTDB_URL is not set: the KurrentDB contract suite did not run")]
);

/// The KurrentDB backend beyond the contract: replicas on the fake, bad settings refused,
/// and an unreachable cluster reported as a named backend error instead of a hang.
mod kurrentdb_specific {
    use gezinsdossier_ledger::store::StoreError;
    use gezinsdossier_ledger::store::kurrent::{KurrentOptions, KurrentStore};

    async fn open_error(url: &str, namespace: &str) -> StoreError {
        let options = KurrentOptions { url: url.into(), namespace: namespace.into() };
        match tokio::time::timeout(std::time::Duration::from_secs(60), KurrentStore::open(options)).await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => panic!("{url} opened"),
            Err(_) => panic!("opening {url} hung for 60 s"),
        }
    }

    /// Every KurrentDB connection string in deploy/ is one the client accepts, with TLS on
    /// and the CA named; the compose one names all three cluster nodes.
    #[test]
    fn the_connection_strings_in_deploy_parse_as_secure_cluster_settings() {
        let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let mut found = 0;
        for file in ["compose/compose.kurrentdb.yaml", "gezinsdossier.example.toml", "k8s/gezinsdossier.yaml"] {
            let text = std::fs::read_to_string(deploy.join(file)).unwrap();
            for (at, _) in text.match_indices("kurrentdb://").chain(text.match_indices("kurrentdb+discover://")) {
                let url: String = text[at..].chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
                if url.ends_with('…') {
                    continue; // an elided example in a comment
                }
                let settings: kurrentdb::ClientSettings =
                    url.parse().unwrap_or_else(|e| panic!("{file}: {url} does not parse: {e}"));
                assert!(settings.is_secure_mode_enabled(), "{file}: {url} is not TLS");
                assert!(settings.tls_ca_file().is_some(), "{file}: {url} names no CA");
                if file.starts_with("compose") {
                    assert_eq!(settings.hosts().len(), 3, "{file}: {url} must name the three nodes");
                }
                found += 1;
            }
        }
        assert!(found >= 2, "expected the compose and example connection strings, found {found}");
    }

    #[tokio::test]
    async fn bad_settings_are_refused_before_connecting() {
        let err = open_error("postgres://127.0.0.1:2113", "gzd").await;
        assert!(matches!(&err, StoreError::Backend(m) if m.contains("connection string")), "{err}");
        let err = open_error("kurrentdb://127.0.0.1:2113?tls=false", "Gzd-Prod").await;
        assert!(matches!(&err, StoreError::Backend(m) if m.contains("namespace")), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replicas_racing_never_make_a_follower_skip_an_event() {
        let fake = gezinsdossier_kurrentdb_fake::FakeKurrentDb::start().await;
        super::replicas::racing_writers_never_make_a_follower_skip_an_event(|| async {
            KurrentStore::open(KurrentOptions::new(fake.url())).await.expect("replica")
        })
        .await;
    }

    #[tokio::test]
    async fn an_unreachable_cluster_is_a_named_backend_error() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        for tls in ["false", "true"] {
            let err = open_error(&format!("kurrentdb://127.0.0.1:{port}?tls={tls}"), "gzd").await;
            assert!(matches!(&err, StoreError::Backend(m) if m.contains("kurrentdb")), "tls={tls}: {err}");
        }
    }
}

mod sqlite_specific {
    use super::cases::{event, stream};
    use gezinsdossier_ledger::envelope::ExpectedRevision;
    use gezinsdossier_ledger::store::sqlite::SqliteStore;
    use gezinsdossier_ledger::store::{EventStore, StoreError};

    #[tokio::test]
    async fn data_survives_reopen_and_positions_continue() {
        let dir = tempfile::tempdir().unwrap();
        let s = stream("family-r");
        {
            let store = SqliteStore::open(dir.path()).unwrap();
            store.append(&s, ExpectedRevision::NoStream, vec![event("1"), event("2")]).await.unwrap();
            store.shutdown().await;
            assert_eq!(store.append(&s, ExpectedRevision::Any, vec![event("3")]).await, Err(StoreError::Closed));
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let out = store.append(&s, ExpectedRevision::Exact(1), vec![event("3")]).await.unwrap();
        assert_eq!(out.positions, vec![2]);
        gezinsdossier_ledger::chain::verify_stream(&store.read_stream(&s, 0, 10).await.unwrap()).unwrap();
    }

    #[tokio::test]
    async fn a_second_open_of_the_same_directory_is_refused_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let first = SqliteStore::open(dir.path()).unwrap();
        let err = SqliteStore::open(dir.path()).err().expect("second open must fail");
        assert!(err.to_string().contains("in use"), "{err}");
        // A live subscription keeps a handle, but shutdown releases the directory anyway.
        let _subscription = first.subscribe_all(0);
        first.shutdown().await;
        assert!(SqliteStore::open(dir.path()).is_ok());
    }

    #[tokio::test]
    async fn a_foreign_or_newer_file_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SqliteStore::open(dir.path()).unwrap();
            store.shutdown().await;
        }
        let conn = rusqlite_conn(dir.path());
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        let err = SqliteStore::open(dir.path()).err().expect("newer schema must be refused");
        assert!(matches!(&err, StoreError::Corrupt(m) if m.contains("schema version 99")), "{err}");

        let other = tempfile::tempdir().unwrap();
        let conn = rusqlite_conn(other.path());
        conn.execute_batch("CREATE TABLE t(x)").unwrap();
        drop(conn);
        let err = SqliteStore::open(other.path()).err().expect("foreign file must be refused");
        assert!(err.to_string().contains("not a gezinsdossier store"), "{err}");
    }

    /// Opens with an index run every three events.
    fn open_tiny_runs(dir: &std::path::Path) -> SqliteStore {
        let options = gezinsdossier_ledger::store::sqlite::SqliteOptions { run_events: 3, ..Default::default() };
        SqliteStore::open_with(dir, options).unwrap()
    }

    /// Seven events over two streams, appended in batches of one and two.
    async fn seven_events(store: &SqliteStore) -> Vec<gezinsdossier_ledger::envelope::ProposedEvent> {
        let mut written = Vec::new();
        for i in 0..5 {
            let batch = if i % 2 == 0 {
                vec![event(&format!("{i}a"))]
            } else {
                vec![event(&format!("{i}a")), event(&format!("{i}b"))]
            };
            let s = stream(if i % 2 == 0 { "family-even" } else { "family-odd" });
            store.append(&s, ExpectedRevision::Any, batch.clone()).await.unwrap();
            written.extend(batch);
        }
        written
    }

    /// What must hold of a store after `seven_events`, wherever its lookups now live.
    async fn assert_seven_events(store: &SqliteStore, written: &[gezinsdossier_ledger::envelope::ProposedEvent]) {
        let even = store.read_stream(&stream("family-even"), 0, 100).await.unwrap();
        let odd = store.read_stream(&stream("family-odd"), 0, 100).await.unwrap();
        assert_eq!((even.len(), odd.len()), (3, 4));
        gezinsdossier_ledger::chain::verify_stream(&even).unwrap();
        gezinsdossier_ledger::chain::verify_stream(&odd).unwrap();
        assert_eq!(store.read_stream(&stream("family-odd"), 2, 1).await.unwrap()[0].revision, 2, "from and limit");
        assert_eq!(store.stream_revision(&stream("family-odd")).await.unwrap(), Some(3));
        assert_eq!(store.stream_revision(&stream("family-none")).await.unwrap(), None);
        // The oldest id, long in a run: a retry is recognised, a reuse elsewhere refused.
        let first = written[0].clone();
        let again = store.append(&stream("family-even"), ExpectedRevision::Any, vec![first.clone()]).await.unwrap();
        assert!(again.deduplicated);
        assert_eq!(again.positions, vec![0]);
        let err = store.append(&stream("family-other"), ExpectedRevision::Any, vec![first.clone()]).await.unwrap_err();
        assert_eq!(err, StoreError::EventIdConflict { event_id: first.event_id });
        // Every id, wherever it is, conflicts when reused with other content.
        for e in written {
            let mut changed = e.clone();
            changed.payload = b"{}".to_vec();
            let err = store.append(&stream("family-other"), ExpectedRevision::Any, vec![changed]).await.unwrap_err();
            assert_eq!(err, StoreError::EventIdConflict { event_id: e.event_id });
        }
        let next = store.append(&stream("family-odd"), ExpectedRevision::Exact(3), vec![event("next")]).await.unwrap();
        assert_eq!((next.stream_revision, next.positions.clone()), (4, vec![7]));
    }

    #[tokio::test]
    async fn index_runs_and_the_tail_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let written = {
            let store = open_tiny_runs(dir.path());
            let written = seven_events(&store).await;
            store.shutdown().await;
            written
        };
        let runs: i64 =
            rusqlite_conn(dir.path()).query_row("SELECT COUNT(*) FROM index_runs", [], |r| r.get(0)).unwrap();
        assert_eq!(runs, 2, "seven events in runs of three or more: two runs, and a tail");
        let store = open_tiny_runs(dir.path());
        assert_seven_events(&store, &written).await;
        // The offline reader finds a stream across runs and tail too.
        let file = gezinsdossier_ledger::store::sqlite::LogFile::open(dir.path()).unwrap();
        assert_eq!(file.stream(&stream("family-odd")).unwrap().len(), 5);
    }

    /// A run large enough for many blocks: a stream spans several stream blocks, the ids
    /// several id blocks, and reads start and stop inside a block.
    #[tokio::test]
    async fn lookups_cross_the_blocks_of_a_large_run() {
        let dir = tempfile::tempdir().unwrap();
        let options = gezinsdossier_ledger::store::sqlite::SqliteOptions { run_events: 1000, ..Default::default() };
        let store = SqliteStore::open_with(dir.path(), options).unwrap();
        let mut written = Vec::new();
        for i in 0..20 {
            let batch: Vec<_> = (0..50).map(|j| event(&format!("{i}-{j}"))).collect();
            let s = stream(if i % 10 < 7 { "family-big" } else { "family-small" });
            store.append(&s, ExpectedRevision::Any, batch.clone()).await.unwrap();
            written.extend(batch);
        }
        // The run is written after the last append is answered; a probe queues behind it.
        store.probe_writes().await.unwrap();
        let runs: i64 =
            rusqlite_conn(dir.path()).query_row("SELECT COUNT(*) FROM index_runs", [], |r| r.get(0)).unwrap();
        assert_eq!(runs, 1, "the thousand events are one run; the tail is empty");
        let big = store.read_stream(&stream("family-big"), 0, 10_000).await.unwrap();
        assert_eq!(big.len(), 700);
        gezinsdossier_ledger::chain::verify_stream(&big).unwrap();
        for (from, limit) in [(255, 3), (256, 1), (300, 10), (698, 10), (700, 5)] {
            let part = store.read_stream(&stream("family-big"), from, limit).await.unwrap();
            let revisions: Vec<u64> = part.iter().map(|e| e.revision).collect();
            let expected: Vec<u64> = (from..700).take(limit).collect();
            assert_eq!(revisions, expected, "from {from}, limit {limit}");
        }
        assert_eq!(store.stream_revision(&stream("family-big")).await.unwrap(), Some(699));
        assert_eq!(store.stream_revision(&stream("family-small")).await.unwrap(), Some(299));
        for e in &written {
            let mut changed = e.clone();
            changed.payload = b"{}".to_vec();
            let err = store.append(&stream("family-other"), ExpectedRevision::Any, vec![changed]).await.unwrap_err();
            assert_eq!(err, StoreError::EventIdConflict { event_id: e.event_id });
        }
        let next =
            store.append(&stream("family-big"), ExpectedRevision::Exact(699), vec![event("next")]).await.unwrap();
        assert_eq!(next.positions, vec![1000]);
    }

    /// A stream with one event in each of many runs: a short read from a later revision must
    /// not be used up by the earlier runs' blocks.
    #[tokio::test]
    async fn a_short_read_finds_its_revision_behind_many_small_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let options = gezinsdossier_ledger::store::sqlite::SqliteOptions { run_events: 2, ..Default::default() };
        let store = SqliteStore::open_with(dir.path(), options).unwrap();
        for i in 0..8 {
            for s in ["family-sparse", "family-busy"] {
                store.append(&stream(s), ExpectedRevision::Any, vec![event(&format!("{s}-{i}"))]).await.unwrap();
            }
        }
        store.probe_writes().await.unwrap();
        for from in 0..8 {
            for limit in [1, 2, 3] {
                let part = store.read_stream(&stream("family-sparse"), from, limit).await.unwrap();
                let revisions: Vec<u64> = part.iter().map(|e| e.revision).collect();
                let expected: Vec<u64> = (from..8).take(limit).collect();
                assert_eq!(revisions, expected, "from {from}, limit {limit}");
            }
        }
    }

    #[tokio::test]
    async fn a_version_1_file_is_migrated_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let written = {
            let store = SqliteStore::open(dir.path()).unwrap();
            let written = seven_events(&store).await;
            store.shutdown().await;
            written
        };
        // Back to version 1's layout: the unique indexes in the events table, no runs.
        rusqlite_conn(dir.path())
            .execute_batch(
                "BEGIN; DROP TABLE index_runs; DROP TABLE stream_blocks; DROP TABLE id_blocks;
                 ALTER TABLE events RENAME TO e2;
                 CREATE TABLE events (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, revision INTEGER NOT NULL,
                     event_id BLOB NOT NULL UNIQUE, event_type TEXT NOT NULL, recorded_at INTEGER NOT NULL,
                     payload BLOB NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL, UNIQUE (stream, revision));
                 INSERT INTO events SELECT * FROM e2; DROP TABLE e2; PRAGMA user_version = 1; COMMIT;",
            )
            .unwrap();
        let file = gezinsdossier_ledger::store::sqlite::LogFile::open(dir.path()).unwrap();
        assert_eq!(file.stream(&stream("family-odd")).unwrap().len(), 4, "a version-1 file reads offline");
        drop(file);
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_seven_events(&store, &written).await;
        store.shutdown().await;
        let conn = rusqlite_conn(dir.path());
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        let unique: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!((version, unique), (2, 0));
        // The migrated run is an id group of its own, so that no open rebuilds it.
        let groups: (i64, i64) = conn
            .query_row("SELECT first_run, end_run FROM index_id_groups", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(groups, (0, 1));
        drop(conn);
        // Groups of runs go on after it: runs 1 to 8 are the next.
        let store = open_tiny_runs(dir.path());
        let mut all = written.clone();
        for i in 0..60 {
            let e = event(&format!("after-{i}"));
            store.append(&stream("family-after"), ExpectedRevision::Any, vec![e.clone()]).await.unwrap();
            all.push(e);
        }
        store.shutdown().await;
        let store = open_tiny_runs(dir.path());
        let groups: Vec<(i64, i64)> = rusqlite_conn(dir.path())
            .prepare("SELECT first_run, end_run FROM index_id_groups ORDER BY first_run")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(groups, vec![(0, 1), (1, 9), (9, 17)]);
        for e in all {
            let mut changed = e.clone();
            changed.payload = b"{}".to_vec();
            let err = store.append(&stream("family-other"), ExpectedRevision::Any, vec![changed]).await.unwrap_err();
            assert_eq!(err, StoreError::EventIdConflict { event_id: e.event_id });
        }
    }

    /// Runs of two events, 45 of them: five id groups complete (8 runs each) and one open.
    /// Every id is found wherever its run is, and every stream read whole, through the
    /// filters; after a reopen (the open group built again from its runs); and after the
    /// filters are taken away, as a build from before them leaves a file.
    #[tokio::test]
    async fn lookups_find_every_run_through_the_filters() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let options = gezinsdossier_ledger::store::sqlite::SqliteOptions { run_events: 2, ..Default::default() };
            SqliteStore::open_with(dir.path(), options).unwrap()
        };
        let store = open();
        let mut written = Vec::new();
        for i in 0..90 {
            let e = event(&format!("{i}"));
            let family = format!("family-{}", i % 7);
            store.append(&stream(&family), ExpectedRevision::Any, vec![e.clone()]).await.unwrap();
            written.push((family, e));
        }
        store.probe_writes().await.unwrap();
        let count = |table: &str| -> i64 {
            rusqlite_conn(dir.path()).query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).unwrap()
        };
        assert_eq!((count("index_runs"), count("index_id_groups"), count("index_run_streams")), (45, 5, 45));
        assert_found_through_runs(&store, &written).await;
        store.shutdown().await;

        let store = open();
        assert_found_through_runs(&store, &written).await;
        store.shutdown().await;

        rusqlite_conn(dir.path()).execute_batch("DELETE FROM index_id_groups; DELETE FROM index_run_streams;").unwrap();
        let store = open();
        assert_eq!(count("index_id_groups"), 5, "the complete groups' filters are built again at open");
        assert_found_through_runs(&store, &written).await;
        store.shutdown().await;
    }

    /// The writer keeps the heads of 16,384 streams at most: past that it forgets them and
    /// reads each again, so a stream written before must go on exactly where it stopped.
    #[tokio::test]
    async fn a_stream_goes_on_after_the_writer_forgot_its_head() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let first = stream("family-first");
        store.append(&first, ExpectedRevision::NoStream, vec![event("1"), event("2")]).await.unwrap();
        let mut tasks = Vec::new();
        for task in 0..64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..260 {
                    let s = stream(&format!("family-{task}-{i}"));
                    store.append(&s, ExpectedRevision::NoStream, vec![event("x")]).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let err = store.append(&first, ExpectedRevision::Exact(0), vec![event("stale")]).await.unwrap_err();
        assert!(matches!(err, StoreError::WrongExpectedRevision { actual: Some(1), .. }), "{err:?}");
        let next = store.append(&first, ExpectedRevision::Exact(1), vec![event("3")]).await.unwrap();
        assert_eq!(next.stream_revision, 2);
        gezinsdossier_ledger::chain::verify_stream(&store.read_stream(&first, 0, 10).await.unwrap()).unwrap();
    }

    async fn assert_found_through_runs(
        store: &SqliteStore,
        written: &[(String, gezinsdossier_ledger::envelope::ProposedEvent)],
    ) {
        for family in (0..7).map(|f| format!("family-{f}")) {
            let ids: Vec<_> = written.iter().filter(|(s, _)| *s == family).map(|(_, e)| e.event_id).collect();
            let read = store.read_stream(&stream(&family), 0, 1000).await.unwrap();
            assert_eq!(read.iter().map(|e| e.event_id).collect::<Vec<_>>(), ids, "{family}");
            let last = ids.len() as u64 - 1;
            assert_eq!(store.stream_revision(&stream(&family)).await.unwrap(), Some(last), "{family}");
            for from in [1, last / 2, last] {
                let part = store.read_stream(&stream(&family), from, 3).await.unwrap();
                let revisions: Vec<u64> = part.iter().map(|e| e.revision).collect();
                assert_eq!(revisions, (from..=last).take(3).collect::<Vec<_>>(), "{family} from {from}");
            }
        }
        assert_eq!(store.stream_revision(&stream("family-none")).await.unwrap(), None);
        assert!(store.read_stream(&stream("family-none"), 0, 10).await.unwrap().is_empty());
        for (family, e) in written {
            let again = store.append(&stream(family), ExpectedRevision::Any, vec![e.clone()]).await.unwrap();
            assert!(again.deduplicated, "a retry of {} is recognised", e.event_id);
            let mut changed = e.clone();
            changed.payload = b"{}".to_vec();
            let err = store.append(&stream("family-other"), ExpectedRevision::Any, vec![changed]).await.unwrap_err();
            assert_eq!(err, StoreError::EventIdConflict { event_id: e.event_id });
        }
    }

    fn rusqlite_conn(dir: &std::path::Path) -> rusqlite::Connection {
        rusqlite::Connection::open(dir.join("events.sqlite3")).unwrap()
    }
}

/// Several store instances on one backend stand in for replicas: each has its own
/// connections (and, where the backend has one, its own group commit). While they race, a
/// follower on a further instance reads the global log live; it must see every position
/// once, in order, with nothing skipped by a commit that finished late.
mod replicas {
    use super::cases::{event, stream};
    use futures::StreamExt;
    use gezinsdossier_ledger::envelope::ExpectedRevision;
    use gezinsdossier_ledger::store::EventStore;
    use std::collections::HashSet;
    use std::time::Duration;

    pub async fn racing_writers_never_make_a_follower_skip_an_event<S, Fut>(connect: impl Fn() -> Fut)
    where
        S: EventStore + Clone,
        Fut: std::future::Future<Output = S>,
    {
        let follower_store = connect().await;
        let mut follower = follower_store.subscribe_all(0);
        let mut writers = Vec::new();
        for replica in 0..3 {
            let store = connect().await;
            for task in 0..8 {
                let store = store.clone();
                writers.push(tokio::spawn(async move {
                    let mut acked = Vec::new();
                    for i in 0..40 {
                        let name =
                            if i % 3 == 0 { "family-hot".to_string() } else { format!("family-r{replica}t{task}") };
                        let batch: Vec<_> = (0..1 + i % 3).map(|_| event("race")).collect();
                        let ids: Vec<_> = batch.iter().map(|e| e.event_id).collect();
                        store.append(&stream(&name), ExpectedRevision::Any, batch).await.expect("append");
                        acked.extend(ids);
                    }
                    acked
                }));
            }
        }
        let mut acked = HashSet::new();
        for w in writers {
            acked.extend(w.await.expect("writer"));
        }
        let mut seen = HashSet::new();
        for position in 0..acked.len() as u64 {
            let e = tokio::time::timeout(Duration::from_secs(30), follower.next())
                .await
                .expect("follower stalled")
                .expect("follower ended")
                .expect("follower read");
            assert_eq!(e.position, position, "the follower skipped or reordered an event");
            assert!(seen.insert(e.event_id), "event {} delivered twice", e.event_id);
        }
        assert_eq!(seen, acked);
    }
}

mod postgres_specific {
    use super::postgres_backend::{Schema, connect};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replicas_racing_never_make_a_follower_skip_an_event() {
        let schema = Schema::fresh();
        if connect(&schema).await.is_none() {
            return;
        }
        super::replicas::racing_writers_never_make_a_follower_skip_an_event(|| async {
            connect(&schema).await.expect("replica")
        })
        .await;
    }
}
