//! The change feed under load: many organisations subscribe to every family while appenders
//! write as fast as the store takes it. Measures delivery latency twice: from the item's
//! `recorded_at` (stamped when the append request comes in, before it waits for its commit)
//! to the subscriber's receipt, an upper bound on "commit to client"; and from the moment the
//! appender received its acknowledgement (after the commit) to the receipt, counted as zero
//! when the delivery came first, a lower bound. Also the appenders' throughput against the same run without subscribers, and the
//! process's RSS over the run. Client and server share this 2-core machine.
//!
//! `cargo bench -p gezinsdossier-services --bench feed [-- --orgs 100 --families 1000
//! --appenders 64 --seconds 20 --repeats 3]`; `--fed-only` skips the runs without
//! subscribers (no loss figure), for long runs that watch RSS (printed every 30 s).

#[path = "../../ledger/benches/harness.rs"]
mod harness;
#[path = "common/support.rs"]
mod support;

use gezinsdossier_ledger::actor::OrganisationType;
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::case_service_client::CaseServiceClient;
use gezinsdossier_proto::v1::consent_service_client::ConsentServiceClient;
use gezinsdossier_proto::v1::feed_service_client::FeedServiceClient;
use gezinsdossier_services::identity::dev_ca::{DevOrganisation, DevPki};
use harness::{Settings, arg};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use support::{member_added, note, professional, request, start_server};
use tonic::transport::{Channel, Endpoint};

/// Each family's author consents to disclosure to this many other organisations.
const RECIPIENTS_PER_FAMILY: usize = 2;

struct Shape {
    orgs: usize,
    families: usize,
    appenders: usize,
}

fn main() {
    let settings = Settings::from_args();
    let shape =
        Shape { orgs: arg("--orgs", 100), families: arg("--families", 1000), appenders: arg("--appenders", 64) };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        println!(
            "\n### Feed: {} organisations subscribed to every family, {} families, {} appenders\n",
            shape.orgs, shape.families, shape.appenders
        );
        println!(
            "{} runs of {:.0} s measured after {:.1} s warm-up; each note is visible to its author and {} others\n",
            settings.repeats,
            settings.measure.as_secs_f64(),
            settings.warmup.as_secs_f64(),
            RECIPIENTS_PER_FAMILY
        );
        println!("| run | appends/s alone | appends/s with feeds | loss | deliveries/s | p50 ms | p99 ms | max ms | from ack p50 ms | from ack p99 ms | RSS start MiB | RSS end MiB |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let fed_only = std::env::args().any(|a| a == "--fed-only");
        for run in 1..=settings.repeats {
            let alone = if fed_only { None } else { Some(once(&settings, &shape, false).await) };
            let fed = once(&settings, &shape, true).await;
            let alone = alone.map_or(f64::NAN, |a| a.appends_per_sec);
            let loss = 100.0 * (1.0 - fed.appends_per_sec / alone);
            println!(
                "| {run} | {:.0} | {:.0} | {loss:.1}% | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} |",
                alone,
                fed.appends_per_sec,
                fed.deliveries_per_sec,
                fed.p50_ms,
                fed.p99_ms,
                fed.max_ms,
                fed.from_ack_p50_ms,
                fed.from_ack_p99_ms,
                fed.rss_start_mib,
                fed.rss_end_mib
            );
            if fed_only {
                let trace: Vec<String> = fed.rss.iter().step_by(30).map(|m| format!("{m:.0}")).collect();
                println!("\nRSS MiB every 30 s from the start of the run: {}\n", trace.join(", "));
            }
        }
    });
}

struct Outcome {
    appends_per_sec: f64,
    deliveries_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    from_ack_p50_ms: f64,
    from_ack_p99_ms: f64,
    rss_start_mib: f64,
    rss_end_mib: f64,
    /// RSS sampled every second.
    rss: Vec<f64>,
}

fn org_id(i: usize) -> String {
    format!("bench-org-{i}")
}

async fn once(settings: &Settings, shape: &Shape, subscribe: bool) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let orgs: Vec<DevOrganisation> =
        (0..shape.orgs).map(|i| DevOrganisation::new(&org_id(i), "Bench", OrganisationType::VGgz)).collect();
    let support::BenchServer { pki, port, stop, task: server } = start_server(dir.path(), &orgs).await;
    let mut channels = Vec::new();
    for i in 0..shape.orgs {
        channels.push(connect(&pki, port, &org_id(i)).await);
    }
    // Family f is written by organisation f % orgs, which consents for its member to the
    // next organisations.
    let author = |f: usize| f % shape.orgs;
    for f in 0..shape.families {
        let a = author(f);
        let mut case = CaseServiceClient::with_interceptor(channels[a].clone(), professional as Interceptor);
        case.append_events(request(&family(f), member_added())).await.expect("create family");
        let mut consent = ConsentServiceClient::with_interceptor(channels[a].clone(), professional as Interceptor);
        let recipients = (1..=RECIPIENTS_PER_FAMILY)
            .map(|k| pb::Recipient {
                recipient: Some(pb::recipient::Recipient::OrganisationId(org_id((a + k) % shape.orgs))),
            })
            .collect();
        consent.grant_consent(grant(f, recipients)).await.expect("consent");
    }

    let measuring = Arc::new(AtomicBool::new(false));
    // Latency from `recorded_at`, and from the acknowledgement (bounded, so that a long run
    // does not count the bench's own memory as the server's).
    let latencies = Arc::new(std::sync::Mutex::new((Histogram::new(), Histogram::new())));
    let deliveries = Arc::new(AtomicU64::new(0));
    // Per event id, when its appender was acknowledged; kept for `ACKS_KEPT`.
    let acked = Arc::new(std::sync::Mutex::new(HashMap::<String, SystemTime>::new()));
    let mut subscribers = Vec::new();
    if subscribe {
        for channel in &channels {
            let mut feed = FeedServiceClient::with_interceptor(channel.clone(), professional as Interceptor)
                .max_decoding_message_size(usize::MAX);
            let request = pb::SubscribeRequest {
                family_id: String::new(),
                purpose: pb::Purpose::Care as i32,
                resume_token: String::new(),
            };
            let mut stream = feed.subscribe(request).await.expect("subscribe").into_inner();
            let (measuring, latencies, deliveries) = (measuring.clone(), latencies.clone(), deliveries.clone());
            let acked = acked.clone();
            subscribers.push(tokio::spawn(async move {
                let (mut from_recorded, mut from_ack) = (Histogram::new(), Histogram::new());
                while let Ok(Some(message)) = stream.message().await {
                    let now = SystemTime::now();
                    if !measuring.load(Ordering::Relaxed) {
                        continue;
                    }
                    for item in &message.items {
                        let Some(at) = item.recorded_at else { continue };
                        let at = SystemTime::UNIX_EPOCH + Duration::new(at.seconds as u64, at.nanos as u32);
                        from_recorded.record(now.duration_since(at).unwrap_or_default());
                        // Not acknowledged yet: the delivery came first.
                        let ack = acked.lock().expect("acked").get(&item.event_id).copied();
                        from_ack.record(ack.and_then(|a| now.duration_since(a).ok()).unwrap_or_default());
                    }
                    deliveries.fetch_add(message.items.len() as u64, Ordering::Relaxed);
                }
                let mut all = latencies.lock().expect("latencies");
                all.0.merge(&from_recorded);
                all.1.merge(&from_ack);
            }));
        }
    }

    let pruner = {
        let acked = acked.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let oldest = SystemTime::now() - ACKS_KEPT;
                acked.lock().expect("acked").retain(|_, at| *at > oldest);
            }
        })
    };
    let rss_samples = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let sampler = {
        let rss_samples = rss_samples.clone();
        tokio::spawn(async move {
            loop {
                rss_samples.lock().expect("rss").push(rss_mib());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let appended = Arc::new(AtomicU64::new(0));
    let deadline_warm = Instant::now() + settings.warmup;
    let deadline_end = deadline_warm + settings.measure;
    let text = harness::payload(450);
    let mut appenders = Vec::new();
    for a in 0..shape.appenders {
        let (channels, appended, text, acked) = (channels.clone(), appended.clone(), text.clone(), acked.clone());
        let families = shape.families;
        let orgs = shape.orgs;
        appenders.push(tokio::spawn(async move {
            let mut f = a % families;
            loop {
                let now = Instant::now();
                if now >= deadline_end {
                    return;
                }
                let mut case =
                    CaseServiceClient::with_interceptor(channels[f % orgs].clone(), professional as Interceptor);
                let event = note(&text);
                let id = event.event_id.clone();
                case.append_events(request(&family(f), event)).await.expect("append");
                let at = SystemTime::now();
                acked.lock().expect("acked").insert(id, at);
                if Instant::now() >= deadline_warm && now >= deadline_warm {
                    appended.fetch_add(1, Ordering::Relaxed);
                }
                f = (f + shape_stride(families)) % families;
            }
        }));
    }
    tokio::time::sleep_until(deadline_warm.into()).await;
    measuring.store(true, Ordering::Relaxed);
    let delivered_before = deliveries.load(Ordering::Relaxed);
    for a in appenders {
        a.await.expect("appender");
    }
    let delivered = deliveries.load(Ordering::Relaxed) - delivered_before;
    // Let deliveries of the last appends arrive before the streams close.
    tokio::time::sleep(Duration::from_millis(500)).await;
    measuring.store(false, Ordering::Relaxed);
    sampler.abort();
    pruner.abort();
    let _ = stop.send(());
    for s in subscribers {
        let _ = s.await;
    }
    server.await.expect("server task").expect("server");
    let (from_recorded, from_ack) = std::mem::take(&mut *latencies.lock().expect("latencies"));
    let rss = rss_samples.lock().expect("rss").clone();
    let secs = settings.measure.as_secs_f64();
    Outcome {
        appends_per_sec: appended.load(Ordering::Relaxed) as f64 / secs,
        deliveries_per_sec: delivered as f64 / secs,
        p50_ms: from_recorded.percentile(0.50),
        p99_ms: from_recorded.percentile(0.99),
        max_ms: from_recorded.max_ms,
        from_ack_p50_ms: from_ack.percentile(0.50),
        from_ack_p99_ms: from_ack.percentile(0.99),
        rss_start_mib: rss.get(rss.len() / 10).copied().unwrap_or(f64::NAN),
        rss_end_mib: rss.last().copied().unwrap_or(f64::NAN),
        rss,
    }
}

/// A delivery acknowledged longer ago than this counts as delivered before its
/// acknowledgement (the bench's latencies stay far below it).
const ACKS_KEPT: Duration = Duration::from_secs(20);

/// Latencies in buckets 1% wide from 10 µs up (hand-written: a bench-only need, ~20 lines).
struct Histogram {
    counts: Vec<u64>,
    max_ms: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    const FLOOR_MS: f64 = 0.01;
    const GROWTH: f64 = 1.01;

    fn new() -> Self {
        Self { counts: vec![0; 2000], max_ms: 0.0 }
    }

    fn record(&mut self, latency: Duration) {
        let ms = latency.as_secs_f64() * 1000.0;
        let bucket =
            if ms <= Self::FLOOR_MS { 0 } else { ((ms / Self::FLOOR_MS).ln() / Self::GROWTH.ln()).ceil() as usize };
        let last = self.counts.len() - 1;
        self.counts[bucket.min(last)] += 1;
        self.max_ms = self.max_ms.max(ms);
    }

    fn merge(&mut self, other: &Self) {
        self.counts.resize(other.counts.len().max(self.counts.len()), 0);
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.max_ms = self.max_ms.max(other.max_ms);
    }

    /// The upper edge of the bucket that holds the `p` quantile.
    fn percentile(&self, p: f64) -> f64 {
        let total: u64 = self.counts.iter().sum();
        let rank = (total as f64 * p).ceil() as u64;
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if total > 0 && seen >= rank.max(1) {
                return Self::FLOOR_MS * Self::GROWTH.powi(bucket as i32);
            }
        }
        f64::NAN
    }
}

/// Appenders walk the families with a stride coprime to their number, so that consecutive
/// appends hit different families.
fn shape_stride(families: usize) -> usize {
    (1..families).rev().find(|s| gcd(*s, families) == 1 && *s < families / 2 + 1).unwrap_or(1)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(f64::NAN);
    pages * 4096.0 / (1024.0 * 1024.0)
}

async fn connect(pki: &DevPki, port: u16, org: &str) -> Channel {
    let tls = pki.client_tls(Some(org)).expect("client tls");
    let endpoint =
        Endpoint::from_shared(format!("https://localhost:{port}")).expect("endpoint").tls_config(tls).expect("tls");
    for _ in 0..100 {
        if let Ok(c) = endpoint.connect().await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server did not come up");
}

type Interceptor = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

fn family(f: usize) -> String {
    format!("bench-fam-{f}")
}

fn grant(f: usize, recipients: Vec<pb::Recipient>) -> pb::GrantConsentRequest {
    pb::GrantConsentRequest {
        family_id: family(f),
        event_id: uuid::Uuid::new_v4().to_string(),
        consent_id: "c".into(),
        subject_member_id: "m".into(),
        categories: vec![pb::InformationCategory::TreatmentNotes as i32],
        recipients,
        purpose: pb::Purpose::Care as i32,
        given_by_member_ids: vec!["m".into()],
        method: Some(pb::ConsentMethod { method: Some(pb::consent_method::Method::SignedFormReference("f".into())) }),
        requested_reason: "afstemming".into(),
        ..Default::default()
    }
}
