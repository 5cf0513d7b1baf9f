//! Durable append throughput and latency of one store alone: the embedded SQLite store by
//! default, KurrentDB at `--kurrentdb URL`, or the in-process KurrentDB fake with
//! `--kurrentdb-fake` (which measures our client-side cost and round trips, not KurrentDB).
//!
//! `cargo bench -p gezinsdossier-ledger --bench store_append [-- --seconds 3 --repeats 3]`

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

fn main() {
    let settings = Settings::from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        print_header("store alone: one ~500-byte event per append (SQLite: synchronous=FULL)", &settings);
        for hot in [false, true] {
            for appenders in [1, 8, 64, 256] {
                let mut samples = Vec::new();
                for _ in 0..settings.repeats {
                    let (store, _guard) = open_store().await;
                    let body = Arc::new(format!("{{\"note\":\"{}\"}}", harness::payload(490)).into_bytes());
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
