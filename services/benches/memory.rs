//! Resident memory of the real binary (what a container's memory limit must hold) against
//! the size of its log: N events over F families written through gRPC, then the RSS after
//! writing, after a restart once the proof index is loaded, and after every family's
//! dossier has been read again; and the dossier's latency, first for families not cached
//! (every family once, right after the restart), then for the 1,000 read last (cached).
//!
//! `cargo bench -p gezinsdossier-services --bench memory [-- --events 1000000 --families 10000]`

#[path = "../../ledger/benches/harness.rs"]
mod harness;
#[path = "common/support.rs"]
mod support;

use gezinsdossier_proto::v1 as pb;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

const ORG: &str = "ggz-delfland";
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
        let (mut server, endpoint) = start(&data);
        let channel = connect(&endpoint).await;
        let started = Instant::now();
        write(&channel, events, families).await;
        println!("written in {:.1} s", started.elapsed().as_secs_f64());
        report("after writing", rss_mib(server.id()), events);
        stop(&mut server);

        let (mut server, endpoint) = start(&data);
        let channel = connect(&endpoint).await;
        let started = Instant::now();
        wait_for_log_service(&channel).await;
        println!("proof index rebuilt in {:.1} s", started.elapsed().as_secs_f64());
        report("after restart, proof index loaded", rss_mib(server.id()), events);
        // Right after the restart no family is cached: each first read loads its family.
        let uncached = read_dossiers(&channel, (0..families).collect()).await;
        latencies("dossier, family not cached", uncached);
        report("after reading every family's dossier", rss_mib(server.id()), events);
        // The families read last are still in the cache (it keeps the most recently used).
        let recent = (families.saturating_sub(RECENT_FAMILIES)..families).collect();
        latencies("dossier, family cached", read_dossiers(&channel, recent).await);
        report("after reading them again", rss_mib(server.id()), events);
        stop(&mut server);
    });
}

fn report(label: &str, rss_mib: f64, events: usize) {
    let per_event = rss_mib * 1024.0 * 1024.0 / events as f64;
    println!("{label:<40} RSS {rss_mib:>8.1} MiB  ({per_event:.0} bytes per event)");
}

fn start(data: &std::path::Path) -> (std::process::Child, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gezinsdossier"))
        .args(["serve", "--insecure-dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the binary");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("address");
    let addr = line.trim().rsplit(' ').next().expect("address").to_owned();
    (child, format!("http://{addr}"))
}

fn stop(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}

async fn connect(endpoint: &str) -> Channel {
    let endpoint = Endpoint::from_shared(endpoint.to_owned()).expect("endpoint");
    for _ in 0..200 {
        if let Ok(channel) = endpoint.connect().await {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not start");
}

// tonic's interceptor signature fixes the error type.
#[allow(clippy::result_large_err)]
fn professional(mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    req.metadata_mut().insert("x-organisation-id", ORG.parse().expect("ascii"));
    req.metadata_mut().insert("x-professional-id", "bench".parse().expect("ascii"));
    req.metadata_mut().insert("x-professional-role", "regiebehandelaar".parse().expect("ascii"));
    Ok(req)
}

async fn write(channel: &Channel, events: usize, families: usize) {
    let requests = events.div_ceil(EVENTS_PER_REQUEST);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut client = pb::case_service_client::CaseServiceClient::with_interceptor(channel.clone(), professional);
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

async fn wait_for_log_service(channel: &Channel) {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let mut health = HealthClient::new(channel.clone());
    loop {
        let request = HealthCheckRequest { service: "gezinsdossier.v1.LogService".into() };
        if health.check(request).await.is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads each family's dossier once, 8 at a time; the latency of each call, in ms.
async fn read_dossiers(channel: &Channel, families: Vec<usize>) -> Vec<f64> {
    let families = std::sync::Arc::new(families);
    let mut readers = Vec::new();
    for w in 0..WRITERS {
        let mut client =
            pb::dossier_service_client::DossierServiceClient::with_interceptor(channel.clone(), professional)
                .max_decoding_message_size(usize::MAX);
        let families = families.clone();
        readers.push(tokio::spawn(async move {
            let mut took = Vec::new();
            for f in families.iter().skip(w).step_by(WRITERS) {
                let request = pb::GetDossierRequest {
                    family_id: format!("fam-{f}"),
                    purpose: pb::Purpose::Care as i32,
                    break_the_glass: None,
                };
                let started = Instant::now();
                client.get_dossier(request).await.expect("dossier");
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

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}
