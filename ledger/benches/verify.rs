//! Offline verification throughput: a store of N events (~300-byte payloads over 1,000
//! streams, a signed tree head every 10,000 events), verified from the file on one thread.
//!
//! Then the same checks over a flat export of the log's canonical bytes.
//!
//! `cargo bench -p gezinsdossier-ledger --bench verify [-- --events 1000000 --repeats 3]`

use gezinsdossier_ledger::envelope::{ExpectedRevision, ProposedEvent, StreamId};
use gezinsdossier_ledger::merkle::{CompactRange, leaf_hash};
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::sqlite::{LogFile, SqliteStore};
use gezinsdossier_ledger::treehead::{self, TreeHeadSigner};
use gezinsdossier_ledger::verify::{verify_export, verify_log, write_export};
use std::time::Instant;

mod harness;

fn main() {
    let (events, repeats): (usize, usize) = (harness::arg("--events", 1_000_000), harness::arg("--repeats", 3));
    let dir = tempfile::tempdir().expect("tempdir");
    let signer = TreeHeadSigner::load_or_create(&dir.path().join("treehead.key")).expect("key");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let build_started = Instant::now();
    runtime.block_on(async {
        let store = SqliteStore::open(dir.path()).expect("open");
        let payload = format!("{{\"text\":\"{}\"}}", "x".repeat(290)).into_bytes();
        let mut range = CompactRange::new();
        let mut written = 0;
        while written < events {
            let batch: Vec<_> = (0..1000)
                .map(|i| ProposedEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: "bench.note".into(),
                    recorded_at_micros: (written + i) as i64,
                    payload: payload.clone(),
                })
                .collect();
            let stream = StreamId::new(format!("family-{}", (written / 1000) % 1000)).expect("stream");
            store.append(&stream, ExpectedRevision::Any, batch).await.expect("append");
            written += 1000;
            if written % 10_000 == 0 {
                for e in store.read_all(range.size(), 20_000).await.expect("read") {
                    range.push(leaf_hash(&e.canonical_bytes()));
                }
                let head = signer.sign(range.size(), &range.root(), written as i64);
                let event = ProposedEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: treehead::EVENT_TYPE.into(),
                    recorded_at_micros: written as i64,
                    payload: serde_json::to_vec(&head).expect("json"),
                };
                store.append(&treehead::stream(), ExpectedRevision::Any, vec![event]).await.expect("head");
            }
        }
        store.shutdown().await;
    });
    println!(
        "\n### Offline verify: {events} events plus tree heads (built in {:.0} s)\n",
        build_started.elapsed().as_secs_f64()
    );
    let mut rates = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let file = LogFile::open(dir.path()).expect("log file");
        let heads = file.stream(&treehead::stream()).expect("heads");
        let report = verify_log(signer.public_key(), &heads, file.events()).expect("verifies");
        let secs = started.elapsed().as_secs_f64();
        rates.push(report.events as f64 / secs);
        println!(
            "run: {} events, {} tree heads, {:.2} s, {:.0} events/s",
            report.events,
            report.tree_heads,
            secs,
            report.events as f64 / secs
        );
    }
    // The same read without any checking: what the file alone costs.
    let started = Instant::now();
    let file = LogFile::open(dir.path()).expect("log file");
    let mut read = 0usize;
    for event in file.events() {
        std::hint::black_box(event.expect("read"));
        read += 1;
    }
    println!("reading alone: {:.0} events/s", read as f64 / started.elapsed().as_secs_f64());
    rates.sort_by(f64::total_cmp);
    println!("median: {:.0} events/s (one thread)", rates[rates.len() / 2]);

    // The same checks over a flat export of canonical bytes (`export-log`, `verify --export`).
    let export = dir.path().join("log.export");
    let started = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&export).expect("export file"));
    let file = LogFile::open(dir.path()).expect("log file");
    let heads = file.stream(&treehead::stream()).expect("heads");
    write_export(&heads, file.events(), &mut out).expect("export");
    std::io::Write::flush(&mut out).expect("flush");
    println!("export written in {:.2} s", started.elapsed().as_secs_f64());
    let mut rates = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let open = || std::fs::File::open(&export).map(|f| std::io::BufReader::with_capacity(1 << 20, f));
        let report = verify_export(signer.public_key(), open, None).expect("verifies");
        let secs = started.elapsed().as_secs_f64();
        rates.push(report.events as f64 / secs);
        println!("export run: {} events, {:.2} s, {:.0} events/s", report.events, secs, report.events as f64 / secs);
    }
    rates.sort_by(f64::total_cmp);
    println!("export median: {:.0} events/s (one thread)", rates[rates.len() / 2]);
}
