//! Sustained load as an operator runs it (performance issue, target 7): appenders, one
//! event per call, plus dossier readers, against the real binary for ten minutes. Every 10 s
//! it prints the rates, the resident memory and the WAL's size. Then, with the load still
//! on, it sends SIGTERM and times the exit; restarts; runs the load again and kills the
//! process with SIGKILL mid-load; and times the restart until the log service serves and
//! the first append is durable.
//!
//! Each appender works on one family at a time, `--events-per-family` events, then moves to
//! a family of its own it has not used: at any moment the working set is one family per
//! appender, and what the cache holds beyond that is history it may drop. Readers read a
//! family one of the appenders finished lately, or is on.
//!
//! `cargo bench -p gezinsdossier-services --bench sustained [-- --seconds 600 --appenders 64
//! --readers 4 --events-per-family 200]`

#[path = "../../ledger/benches/harness.rs"]
mod harness;
#[path = "common/process.rs"]
mod process;
#[path = "common/support.rs"]
mod support;

use gezinsdossier_proto::v1 as pb;
use process::ServerProcess;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The load before the SIGKILL, so that the WAL has frames to recover.
const LOAD_BEFORE_KILL: Duration = Duration::from_secs(20);

fn main() {
    let seconds: u64 = harness::arg("--seconds", 600);
    let shape = Shape {
        appenders: harness::arg("--appenders", 64),
        readers: harness::arg("--readers", 4),
        events_per_family: harness::arg("--events-per-family", 200),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    runtime.block_on(async {
        println!(
            "sustained: {} appenders (one ~300-byte note per call, {} per family), {} dossier readers, {seconds} s",
            shape.appenders, shape.events_per_family, shape.readers
        );
        let server = ServerProcess::start(&data);
        let load = Load::start(&server.connect().await, &shape, 0);
        let samples = sample(&server, &data, &load, Duration::from_secs(seconds)).await;
        summarise(&samples);
        let took = server.terminate();
        let tally = load.stop().await;
        println!("SIGTERM under load: exited in {:.3} s", took.as_secs_f64());
        println!(
            "load: {} appends, {} dossier reads; refused: {} appends, {} reads (the shutdown, and reads of a \
             family whose first event was not written yet)",
            tally.appended, tally.reads, tally.refused_appends, tally.refused_reads
        );

        let (server, (serving, appended)) = restart(&data, 0).await;
        println!("restart after SIGTERM: serving in {serving:.3} s, first append in {appended:.3} s");
        let load = Load::start(&server.connect().await, &shape, 1);
        tokio::time::sleep(LOAD_BEFORE_KILL).await;
        let wal = wal_mib(&data);
        server.kill();
        load.stop().await;
        let (server, (serving, appended)) = restart(&data, 1).await;
        println!(
            "restart after SIGKILL under load (WAL {wal:.1} MiB): serving in {serving:.3} s, first append in {appended:.3} s"
        );
        server.terminate();
    });
}

struct Shape {
    appenders: usize,
    readers: usize,
    events_per_family: u64,
}

/// The appenders and readers, running until `stop`.
struct Load {
    stopping: Arc<AtomicBool>,
    appended: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
    appenders: Vec<tokio::task::JoinHandle<u64>>,
    readers: Vec<tokio::task::JoinHandle<u64>>,
}

/// What the load did, and how many of its calls were refused.
struct Tally {
    appended: u64,
    reads: u64,
    refused_appends: u64,
    refused_reads: u64,
}

impl Load {
    /// `round` keeps each start's families apart from the last one's.
    fn start(channel: &Channel, shape: &Shape, round: usize) -> Self {
        let stopping = Arc::new(AtomicBool::new(false));
        let appended = Arc::new(AtomicU64::new(0));
        let reads = Arc::new(AtomicU64::new(0));
        // The family each appender is on, by its count of families so far.
        let on: Arc<Vec<AtomicU64>> = Arc::new((0..shape.appenders).map(|_| AtomicU64::new(0)).collect());
        let (mut appenders, mut readers) = (Vec::new(), Vec::new());
        for a in 0..shape.appenders {
            let mut client = pb::case_service_client::CaseServiceClient::with_interceptor(
                channel.clone(),
                process::dev_professional,
            );
            let (stopping, appended, on, per_family) =
                (stopping.clone(), appended.clone(), on.clone(), shape.events_per_family);
            appenders.push(tokio::spawn(async move {
                let mut refused = 0;
                let mut n: u64 = 0;
                while !stopping.load(Ordering::Relaxed) {
                    let family = n / per_family;
                    on[a].store(family, Ordering::Relaxed);
                    let event = if n.is_multiple_of(per_family) {
                        support::member_added()
                    } else {
                        support::note(&format!("Gesprek {n}: afspraken over school en slaap. {}", "x".repeat(240)))
                    };
                    match client.append_events(support::request(&family_name(round, a, family), event)).await {
                        Ok(_) => {
                            appended.fetch_add(1, Ordering::Relaxed);
                            n += 1;
                        }
                        Err(_) => refused += back_off().await,
                    }
                }
                refused
            }));
        }
        for r in 0..shape.readers {
            let mut client = pb::dossier_service_client::DossierServiceClient::with_interceptor(
                channel.clone(),
                process::dev_professional,
            )
            .max_decoding_message_size(usize::MAX);
            let (stopping, reads, on, appenders) = (stopping.clone(), reads.clone(), on.clone(), shape.appenders);
            readers.push(tokio::spawn(async move {
                let mut refused = 0;
                let mut i = r;
                while !stopping.load(Ordering::Relaxed) {
                    // Spread over the appenders and the last few families each finished.
                    let a = i % appenders;
                    let family = on[a].load(Ordering::Relaxed).saturating_sub((i / appenders % 4) as u64);
                    i += 7;
                    match client.get_dossier(process::dossier_request(family_name(round, a, family))).await {
                        Ok(_) => {
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => refused += back_off().await,
                    }
                }
                refused
            }));
        }
        Self { stopping, appended, reads, appenders, readers }
    }

    /// Stops the load.
    async fn stop(self) -> Tally {
        self.stopping.store(true, Ordering::Relaxed);
        let (refused_appends, refused_reads) = (refused(self.appenders).await, refused(self.readers).await);
        Tally {
            appended: self.appended.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            refused_appends,
            refused_reads,
        }
    }
}

/// The refusals the tasks counted, once they have ended.
async fn refused(tasks: Vec<tokio::task::JoinHandle<u64>>) -> u64 {
    let mut refused = 0;
    for task in tasks {
        refused += task.await.expect("load task");
    }
    refused
}

/// After a refused call (the server going down), a pause before the next; counts one.
async fn back_off() -> u64 {
    tokio::time::sleep(Duration::from_millis(10)).await;
    1
}

fn family_name(round: usize, appender: usize, family: u64) -> String {
    format!("fam-{round}-{appender}-{family}")
}

struct Sample {
    at: f64,
    rss_mib: f64,
    wal_mib: f64,
}

/// Prints a row every 10 s for `length`; the rows.
async fn sample(server: &ServerProcess, data: &std::path::Path, load: &Load, length: Duration) -> Vec<Sample> {
    println!("{:>6} {:>12} {:>10} {:>9} {:>9} {:>8}", "s", "appends/s", "reads/s", "RSS MiB", "WAL MiB", "threads");
    let started = Instant::now();
    let (mut appended, mut reads) = (0, 0);
    let mut samples = Vec::new();
    while started.elapsed() < length {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let (a, r) = (load.appended.load(Ordering::Relaxed), load.reads.load(Ordering::Relaxed));
        let secs = SAMPLE_EVERY.as_secs_f64();
        let s = Sample { at: started.elapsed().as_secs_f64(), rss_mib: server.rss_mib(), wal_mib: wal_mib(data) };
        let (append_rate, read_rate) = ((a - appended) as f64 / secs, (r - reads) as f64 / secs);
        println!(
            "{:>6.0} {append_rate:>12.0} {read_rate:>10.1} {:>9.1} {:>9.1} {:>8}",
            s.at,
            s.rss_mib,
            s.wal_mib,
            server.threads()
        );
        (appended, reads) = (a, r);
        samples.push(s);
    }
    samples
}

/// RSS at the end of each quarter, its growth over the second half, and the WAL's peak.
fn summarise(samples: &[Sample]) {
    let Some(last) = samples.last() else { return };
    let at = |fraction: f64| samples.iter().find(|s| s.at >= last.at * fraction).map_or(f64::NAN, |s| s.rss_mib);
    let half = samples.iter().find(|s| s.at >= last.at / 2.0).unwrap_or(last);
    let growth = (last.rss_mib - half.rss_mib) / ((last.at - half.at) / 60.0).max(f64::MIN_POSITIVE);
    let wal_peak = samples.iter().map(|s| s.wal_mib).fold(0.0, f64::max);
    println!(
        "RSS MiB at 1/4, 1/2, 3/4, end: {:.1}, {:.1}, {:.1}, {:.1}; over the second half {growth:+.1} MiB/min",
        at(0.25),
        at(0.5),
        at(0.75),
        last.rss_mib
    );
    println!("WAL: peak {wal_peak:.1} MiB (sampled every {} s)", SAMPLE_EVERY.as_secs());
}

fn wal_mib(data: &std::path::Path) -> f64 {
    std::fs::metadata(data.join("events.sqlite3-wal")).map_or(0.0, |m| m.len() as f64 / (1 << 20) as f64)
}

/// Starts the server again on `data`; it and the seconds until the log service served and
/// until the first append was acknowledged.
async fn restart(data: &std::path::Path, nth: usize) -> (ServerProcess, (f64, f64)) {
    let started = Instant::now();
    let server = ServerProcess::start(data);
    let channel = server.connect().await;
    process::wait_for_log_service(&channel).await;
    let serving = started.elapsed().as_secs_f64();
    let mut client = pb::case_service_client::CaseServiceClient::with_interceptor(channel, process::dev_professional);
    client
        .append_events(support::request(&format!("fam-restart-{nth}"), support::member_added()))
        .await
        .expect("append after restart");
    (server, (serving, started.elapsed().as_secs_f64()))
}
