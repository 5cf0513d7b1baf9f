//! Durable append throughput and latency of one store alone: the embedded SQLite store by
//! default, KurrentDB at `--kurrentdb URL`, or the in-process KurrentDB fake with
//! `--kurrentdb-fake` (which measures our client-side cost and round trips, not KurrentDB).
//!
//! `cargo bench -p gezinsdossier-ledger --bench store_append [-- --seconds 3 --repeats 3]`
//!
//! `--prefill N` first writes N events (in appends of 64, over 50,000 streams), so that the
//! rate is measured at a log of that size rather than at an empty one. `--appenders 64` and
//! `--streams distinct|hot` run one configuration only.

mod harness;

use gezinsdossier_ledger::envelope::{ExpectedRevision, ProposedEvent, StreamId};
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::kurrent::{KurrentOptions, KurrentStore};
use gezinsdossier_ledger::store::sqlite::SqliteStore;
use harness::{Settings, measure, median, print_header, print_row};
use std::sync::Arc;

/// A fresh, empty store and what must outlive it.
async fn open_store() -> (Arc<dyn EventStore>, Box<dyn std::any::Any>) {
    let (url, guard): (String, Box<dyn std::any::Any>) = if std::env::args().any(|a| a == "--kurrentdb-fake") {
        let fake = gezinsdossier_kurrentdb_fake::FakeKurrentDb::start().await;
        (fake.url(), Box::new(fake))
    } else {
        (harness::arg("--kurrentdb", String::new()), Box::new(()))
    };
    if url.is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        return (Arc::new(SqliteStore::open(dir.path()).expect("open")), Box::new(dir));
    }
    let namespace = format!("bench_{}", uuid::Uuid::new_v4().simple());
    (Arc::new(KurrentStore::open(KurrentOptions { url, namespace }).await.expect("open")), guard)
}

/// A ~500-byte note's payload, as every append here writes.
fn note() -> Vec<u8> {
    format!("{{\"note\":\"{}\"}}", harness::payload(490)).into_bytes()
}

/// Writes `events` events in appends of 64, from 64 concurrent tasks, round 50,000 streams.
async fn fill(store: &Arc<dyn EventStore>, events: u64) {
    const PER_APPEND: u64 = 64;
    const TASKS: u64 = 64;
    let appends = events.div_ceil(PER_APPEND);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let body = note();
            for a in (t..appends).step_by(TASKS as usize) {
                let batch = (0..PER_APPEND)
                    .map(|_| ProposedEvent {
                        event_id: uuid::Uuid::new_v4(),
                        event_type: "bench.note".into(),
                        recorded_at_micros: 0,
                        payload: body.clone(),
                    })
                    .collect();
                let stream = StreamId::new(format!("prefill-{}", a % 50_000)).expect("stream");
                store.append(&stream, ExpectedRevision::Any, batch).await.expect("prefill append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("prefill task");
    }
}

fn main() {
    let settings = Settings::from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let prefill: u64 = harness::arg("--prefill", 0);
        let only_appenders: usize = harness::arg("--appenders", 0);
        let only_streams: String = harness::arg("--streams", String::new());
        if prefill > 0 {
            println!("each run first writes {prefill} events");
        }
        print_header("store alone: one ~500-byte event per append (SQLite: synchronous=FULL)", &settings);
        for hot in [false, true] {
            if !only_streams.is_empty() && only_streams != if hot { "hot" } else { "distinct" } {
                continue;
            }
            for appenders in [1, 8, 64, 256] {
                if only_appenders != 0 && only_appenders != appenders {
                    continue;
                }
                let mut samples = Vec::new();
                for _ in 0..settings.repeats {
                    let (store, _guard) = open_store().await;
                    fill(&store, prefill).await;
                    let body = Arc::new(note());
                    let s = store.clone();
                    let sample = measure(&settings, appenders, 1, move |a, i| {
                        let store = s.clone();
                        let body = body.clone();
                        async move {
                            let stream = if hot { "family-hot".to_string() } else { format!("family-{a}-{}", i % 16) };
                            let event = ProposedEvent {
                                event_id: uuid::Uuid::new_v4(),
                                event_type: "bench.note".into(),
                                recorded_at_micros: 0,
                                payload: body.to_vec(),
                            };
                            store
                                .append(&StreamId::new(stream).expect("stream"), ExpectedRevision::Any, vec![event])
                                .await
                                .expect("append");
                        }
                    })
                    .await;
                    store.shutdown().await;
                    samples.push(sample);
                }
                print_row(if hot { "one hot stream" } else { "distinct" }, appenders, &median(&samples));
            }
        }
    });
}
