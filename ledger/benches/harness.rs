//! A small closed-loop load harness shared by the append benchmarks (included by path, so
//! the store bench and the gRPC bench measure the same way).
//!
//! N appenders each run "start an append, wait for its acknowledgement, repeat". Only
//! appends that finish inside the measured window count; a warm-up comes first. Each
//! configuration runs several times and the medians are reported.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Settings {
    pub warmup: Duration,
    pub measure: Duration,
    pub repeats: usize,
}

/// The value after `--name` on the command line, or `default` (other arguments, such as
/// cargo's `--bench`, are ignored).
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Settings {
    /// `--warmup S`, `--seconds S` and `--repeats R` from the command line.
    pub fn from_args() -> Self {
        Self {
            warmup: Duration::from_secs_f64(arg("--warmup", 0.5)),
            measure: Duration::from_secs_f64(arg("--seconds", 3.0)),
            repeats: arg("--repeats", 3),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub events_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs `appenders` concurrent loops of `op(appender, iteration)` and measures them.
pub async fn measure<F, Fut>(settings: &Settings, appenders: usize, events_per_op: usize, op: F) -> Sample
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let window_start = start + settings.warmup;
    let window_end = window_start + settings.measure;
    let mut tasks = Vec::with_capacity(appenders);
    for a in 0..appenders {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= window_end {
                    return latencies;
                }
                op(a, i).await;
                let t1 = Instant::now();
                if t0 >= window_start && t1 <= window_end {
                    latencies.push((t1 - t0).as_secs_f64() * 1e3);
                }
                i += 1;
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("appender task"));
    }
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| percentile(&all, p);
    Sample {
        events_per_sec: (all.len() * events_per_op) as f64 / settings.measure.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

/// The `p` quantile of `sorted` latencies, by nearest rank; NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted.get((sorted.len().saturating_sub(1) as f64 * p).round() as usize).copied().unwrap_or(f64::NAN)
}

/// Median of each figure over several samples.
pub fn median(samples: &[Sample]) -> Sample {
    let med = |f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = samples.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Sample { events_per_sec: med(|s| s.events_per_sec), p50_ms: med(|s| s.p50_ms), p99_ms: med(|s| s.p99_ms) }
}

pub fn print_header(title: &str, settings: &Settings) {
    println!("\n### {title}\n");
    println!(
        "medians of {} runs, {:.1} s measured after {:.1} s warm-up each\n",
        settings.repeats,
        settings.measure.as_secs_f64(),
        settings.warmup.as_secs_f64()
    );
    println!("| streams | appenders | events/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
}

pub fn print_row(streams: &str, appenders: usize, s: &Sample) {
    println!("| {streams} | {appenders} | {:.0} | {:.2} | {:.2} |", s.events_per_sec, s.p50_ms, s.p99_ms);
}

/// A payload of about `size` bytes.
pub fn payload(size: usize) -> String {
    "x".repeat(size)
}
