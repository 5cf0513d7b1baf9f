//! The proof index at 10 million events, as a restarted server has it: full tiles persisted
//! in a SQLite store, nothing in memory. Measures the start (restore from the newest tiles,
//! in a fresh process for its peak RSS), then inclusion and consistency proofs that load
//! the tiles they touch.
//!
//! `cargo bench -p gezinsdossier-ledger --bench proofs [-- --events 10000000 --proofs 100000]`
//!
//! The store holds the tiles of the events' leaf hashes, not the events themselves: a start
//! reads only tiles, so its work is the same as on the full log.

use gezinsdossier_ledger::envelope::{ExpectedRevision, ProposedEvent};
use gezinsdossier_ledger::merkle::leaf_hash;
use gezinsdossier_ledger::merkle::tiles::{Tiles, tile_bytes};
use gezinsdossier_ledger::proof_index::{LogIndex, TILE_EVENT_TYPE, tile_stream};
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::sqlite::SqliteStore;
use std::sync::Arc;
use std::time::Instant;

mod harness;

/// Peak resident memory of this process, in MiB (Linux).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Child mode: restore from `dir` once, print seconds, tiles read and peak RSS.
async fn restore_once(dir: &str) {
    let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(std::path::Path::new(dir)).expect("store"));
    let started = Instant::now();
    let restored = LogIndex::new(store).restore().await.expect("restore");
    println!("{} {} {} {}", started.elapsed().as_secs_f64(), restored.tiles_read, restored.size, peak_rss_mib());
}

async fn build(dir: &std::path::Path, events: u64) {
    let store = SqliteStore::open(dir).expect("store");
    let mut tiles = Tiles::default();
    let mut pending: Vec<Vec<ProposedEvent>> = Vec::new();
    let mut written: Vec<u64> = Vec::new();
    for i in 0..events {
        for tile in tiles.push(leaf_hash(&i.to_be_bytes())) {
            let level = tile.level as usize;
            if pending.len() <= level {
                pending.resize_with(level + 1, Vec::new);
                written.resize(level + 1, 0);
            }
            pending[level].push(ProposedEvent {
                event_id: uuid::Uuid::new_v4(),
                event_type: TILE_EVENT_TYPE.into(),
                recorded_at_micros: 0,
                payload: tile_bytes(&tile.hashes),
            });
        }
        if i % 250_000 == 249_999 || i == events - 1 {
            tiles.forget(|_, _| false);
            for (level, batch) in pending.iter_mut().enumerate() {
                if batch.is_empty() {
                    continue;
                }
                let expected =
                    written[level].checked_sub(1).map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
                written[level] += batch.len() as u64;
                store.append(&tile_stream(level as u32), expected, std::mem::take(batch)).await.expect("append tiles");
            }
        }
    }
    store.shutdown().await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--restore-only") {
        return restore_once(&args[i + 1]).await;
    }
    let (events, proofs): (u64, u64) = (harness::arg("--events", 10_000_000), harness::arg("--proofs", 100_000));
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    build(dir.path(), events).await;
    println!("\n### Proof index at {events} events (tiles written in {:.1} s)\n", started.elapsed().as_secs_f64());

    // The start, five times, each in a fresh process.
    let mut runs: Vec<(f64, u64, u64, f64)> = (0..5)
        .map(|_| {
            let out = std::process::Command::new(std::env::current_exe().expect("exe"))
                .args(["--restore-only", dir.path().to_str().expect("utf-8 path")])
                .output()
                .expect("child");
            let text = String::from_utf8_lossy(&out.stdout);
            let f: Vec<&str> = text.split_whitespace().collect();
            (
                f[0].parse().unwrap_or(f64::NAN),
                f[1].parse().unwrap_or(0),
                f[2].parse().unwrap_or(0),
                f[3].parse().unwrap_or(f64::NAN),
            )
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (seconds, tiles_read, size, rss) = runs[2];
    println!(
        "start: median {:.1} ms of 5 (tiles read {tiles_read}, restored size {size}), peak RSS {rss:.0} MiB",
        seconds * 1000.0
    );

    let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir.path()).expect("store"));
    let index = LogIndex::new(store);
    let restored = index.restore().await.expect("restore");
    // Leaves past the last full tile come from the log after a start; here, recompute them.
    for i in restored.size..events {
        index.push(leaf_hash(&i.to_be_bytes()));
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut lat = Vec::with_capacity(proofs as usize);
    let mut hashes = 0;
    for _ in 0..proofs {
        let t = Instant::now();
        hashes += index.inclusion(next() % events, events).await.expect("proof").len();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    report("inclusion", &mut lat, hashes, proofs);
    let mut lat = Vec::with_capacity(proofs as usize);
    let mut hashes = 0;
    for _ in 0..proofs {
        let a = 1 + next() % events;
        let b = a + next() % (events - a + 1);
        let t = Instant::now();
        hashes += index.consistency(a, b).await.expect("proof").len();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    report("consistency", &mut lat, hashes, proofs);
    // Warm: positions within the newest tiles that stay at hand (half the bound; as one
    // family's audit rows or report lines often are), after one pass has brought them.
    let window = (gezinsdossier_ledger::proof_index::DEFAULT_TILES_AT_HAND as u64 / 2 * 256).min(events);
    let warm_size = events;
    for p in (events - window..events).step_by(256) {
        index.inclusion(p, warm_size).await.expect("proof");
    }
    let mut lat = Vec::with_capacity(proofs as usize);
    let mut hashes = 0;
    for _ in 0..proofs {
        let t = Instant::now();
        hashes += index.inclusion(events - window + next() % window, warm_size).await.expect("proof").len();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    report("inclusion, tiles at hand", &mut lat, hashes, proofs);
    println!(
        "tiles at hand at the end: {} (bound {})",
        index.tiles_at_hand(),
        gezinsdossier_ledger::proof_index::DEFAULT_TILES_AT_HAND
    );
}

fn report(what: &str, lat: &mut [f64], hashes: usize, proofs: u64) {
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| harness::percentile(lat, p);
    println!(
        "{what}: p50 {:.1} µs, p99 {:.1} µs, {:.1} hashes per proof",
        pct(0.5),
        pct(0.99),
        hashes as f64 / proofs as f64
    );
}
