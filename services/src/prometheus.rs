//! The Prometheus endpoint (`metrics_listen`): installs the process-wide recorder that the
//! `metrics::` calls in the ledger and the services report to, and describes each metric.
//! Only the binary installs it; a server started in-process (tests, the demo) records
//! into the no-op default.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::PrometheusBuilder;
use std::net::SocketAddr;

/// Latency buckets (seconds): a group commit is a few ms, a dossier tens, a slow call seconds.
const SECONDS: &[f64] = &[0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Serves `/metrics` on `addr` from the current tokio runtime.
///
/// # Errors
/// The address cannot be bound, or a recorder is already installed.
pub fn install(addr: SocketAddr) -> anyhow::Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()), SECONDS)?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("gezinsdossier_commit_batch_appends".into()),
            BATCH,
        )?
        .install()
        .map_err(|e| anyhow::anyhow!("metrics on {addr}: {e}"))?;
    describe();
    tracing::info!(%addr, "metrics served at /metrics");
    Ok(())
}

fn describe() {
    describe_counter!("gezinsdossier_rpc_requests_total", "RPCs by method and gRPC status");
    describe_histogram!(
        "gezinsdossier_rpc_duration_seconds",
        Unit::Seconds,
        "RPC latency by method, to the end of the response"
    );
    describe_counter!("gezinsdossier_appends_total", "Appends committed (one caller's request to one stream)");
    describe_counter!("gezinsdossier_events_total", "Events committed");
    describe_histogram!("gezinsdossier_commit_batch_appends", "Appends per group commit");
    describe_histogram!(
        "gezinsdossier_commit_seconds",
        Unit::Seconds,
        "Group commit latency, including the sync (fsync on SQLite, the WAL flush on PostgreSQL)"
    );
    describe_gauge!("gezinsdossier_write_queue_depth", "Appends waiting for the writer after its last drain");
    describe_gauge!("gezinsdossier_tree_head_lag_events", "Events not yet covered by a signed tree head");
    describe_gauge!("gezinsdossier_tree_head_size", "Size of the latest signed tree head");
    describe_counter!(
        "gezinsdossier_access_log_events_total",
        "Access-log events committed, by type (access.disclosed, access.refused, …)"
    );
    describe_counter!("gezinsdossier_break_the_glass_total", "Disclosures under break-the-glass");
    describe_gauge!("gezinsdossier_feed_subscribers", "Open feed subscriptions");
    describe_histogram!(
        "gezinsdossier_feed_lag_seconds",
        Unit::Seconds,
        "Feed subscribers to every family: from an event's commit to its delivery round"
    );
    describe_gauge!("gezinsdossier_family_cache_families", "Families held in the cache");
    describe_gauge!("gezinsdossier_family_cache_bytes", Unit::Bytes, "The family cache's estimated size");
    describe_counter!(
        "gezinsdossier_family_cache_evictions_total",
        "Families dropped from the cache past its bound (read again on their next use)"
    );
    describe_histogram!(
        "gezinsdossier_family_batch_appends",
        "Appends to one family committed together in one group commit (2 or more)"
    );
    describe_gauge!("gezinsdossier_family_appends_waiting", "Appends waiting for their family's next commit");
    describe_gauge!("gezinsdossier_sqlite_wal_bytes", Unit::Bytes, "The embedded store's WAL file");
}
