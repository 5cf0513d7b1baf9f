//! Resident memory of the real binary (what a container's memory limit must hold) against
//! the size of its log: N events over F families written through gRPC, then the RSS after
//! writing, after a restart once the proof index is loaded, and after every family's
//! dossier has been read again; and the dossier's latency, first for families not cached
//! (every family once, right after the restart), then for the 1,000 read last (cached).
//!
//! `cargo bench -p gezinsdossier-services --bench memory [-- --events 1000000 --families 10000]`

#[path = "../../ledger/benches/harness.rs"]
mod harness;
#[path = "common/process.rs"]
mod process;
#[path = "common/support.rs"]
mod support;

use gezinsdossier_proto::v1 as pb;
use process::ServerProcess;
use std::time::Instant;
use tonic::transport::Channel;

const EVENTS_PER_REQUEST: usize = 100;
const WRITERS: usize = 8;
/// Families read again to time dossiers whose family is cached.
const RECENT_FAMILIES: usize = 1_000;

fn main() {
    let events: usize = harness::arg("--events", 1_000_000);
    let families: usize = harness::arg("--families", 10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    runtime.block_on(async {
        println!("memory: {events} events of ~300 bytes over {families} families (embedded store)");
        let server = ServerProcess::start(&data);
        let channel = server.connect().await;
        let started = Instant::now();
        write(&channel, events, families).await;
        println!("written in {:.1} s", started.elapsed().as_secs_f64());
        report("after writing", server.rss_mib(), events);
        server.terminate();

        let server = ServerProcess::start(&data);
        let channel = server.connect().await;
        let started = Instant::now();
        process::wait_for_log_service(&channel).await;
        println!("proof index rebuilt in {:.1} s", started.elapsed().as_secs_f64());
        report("after restart, proof index loaded", server.rss_mib(), events);
        // Right after the restart no family is cached: each first read loads its family.
        let uncached = read_dossiers(&channel, (0..families).collect()).await;
        latencies("dossier, family not cached", uncached);
        report("after reading every family's dossier", server.rss_mib(), events);
        // The families read last are still in the cache (it keeps the most recently used).
        let recent = (families.saturating_sub(RECENT_FAMILIES)..families).collect();
        latencies("dossier, family cached", read_dossiers(&channel, recent).await);
        report("after reading them again", server.rss_mib(), events);
        server.terminate();
    });
}

fn report(label: &str, rss_mib: f64, events: usize) {
    let per_event = rss_mib * 1024.0 * 1024.0 / events as f64;
    println!("{label:<40} RSS {rss_mib:>8.1} MiB  ({per_event:.0} bytes per event)");
}

async fn write(channel: &Channel, events: usize, families: usize) {
    let requests = events.div_ceil(EVENTS_PER_REQUEST);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut client =
            pb::case_service_client::CaseServiceClient::with_interceptor(channel.clone(), process::dev_professional);
        writers.push(tokio::spawn(async move {
            for r in (w..requests).step_by(WRITERS) {
                let family = format!("fam-{}", r % families);
                let mut batch = Vec::with_capacity(EVENTS_PER_REQUEST);
                if r < families {
                    batch.push(support::member_added());
                }
                while batch.len() < EVENTS_PER_REQUEST {
                    let text =
                        format!("Gesprek {r}: afspraken over school, slaap en de week erna. {}", "x".repeat(200));
                    batch.push(support::note(&text));
                }
                let request = pb::AppendEventsRequest {
                    family_id: family,
                    expected_revision: Some(pb::ExpectedRevision {
                        expectation: Some(pb::expected_revision::Expectation::Any(())),
                    }),
                    events: batch,
                };
                client.append_events(request).await.expect("append");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
}

/// Reads each family's dossier once, 8 at a time; the latency of each call, in ms.
async fn read_dossiers(channel: &Channel, families: Vec<usize>) -> Vec<f64> {
    let families = std::sync::Arc::new(families);
    let mut readers = Vec::new();
    for w in 0..WRITERS {
        let mut client = pb::dossier_service_client::DossierServiceClient::with_interceptor(
            channel.clone(),
            process::dev_professional,
        )
        .max_decoding_message_size(usize::MAX);
        let families = families.clone();
        readers.push(tokio::spawn(async move {
            let mut took = Vec::new();
            for f in families.iter().skip(w).step_by(WRITERS) {
                let started = Instant::now();
                client.get_dossier(process::dossier_request(format!("fam-{f}"))).await.expect("dossier");
                took.push(started.elapsed().as_secs_f64() * 1e3);
            }
            took
        }));
    }
    let mut all = Vec::new();
    for r in readers {
        all.extend(r.await.expect("reader"));
    }
    all
}

fn latencies(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let (p50, p99) = (harness::percentile(&ms, 0.50), harness::percentile(&ms, 0.99));
    println!("{label:<40} p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  ({} reads, 8 at a time)", ms.len());
}
