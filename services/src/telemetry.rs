//! Structured logs, and (when `otlp_endpoint` is set) the same spans exported as
//! OpenTelemetry traces over OTLP/gRPC. Spans and events carry identifiers and counts only:
//! never payloads, names or BSNs.

use crate::config::LogFormat;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Flushes the log writer and the trace exporter when dropped (at the end of `main`), so
/// the last lines and spans leave.
#[must_use = "logs and traces are flushed when this is dropped"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
    _logs: tracing_appender::non_blocking::WorkerGuard,
}

/// Log lines queued for the writer thread before a caller waits for room: about 3 MB.
const LOG_QUEUE_LINES: usize = 8_192;

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.traces.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`); with `otlp_endpoint`, the
/// INFO spans also go to that collector, whatever `RUST_LOG` says. Call inside the tokio runtime (the exporter's channel lives
/// there).
///
/// # Errors
/// The OTLP endpoint is not a valid URI.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    // Each output has its own filter: RUST_LOG quiets the logs, not the traces, which
    // always carry the INFO spans (one per call, one per handler).
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A thread of its own writes the lines, a drained queue at a time: the handlers no
    // longer take stderr's lock and make a write call for every line (one per call: 2.5% of
    // the server's CPU at 64 appending clients). Not lossy: a full queue makes callers wait
    // rather than drop lines.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("gezinsdossier-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let logs = match format {
        // The current span carries the call's ids; the list of its parents would repeat them.
        LogFormat::Json => fmt.json().flatten_event(true).with_current_span(true).with_span_list(false).boxed(),
        LogFormat::Pretty => fmt.boxed(),
    };
    let traces = otlp_endpoint.map(tracer_provider).transpose()?;
    let otel = traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("gezinsdossier"))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    let _ = tracing_subscriber::registry().with(logs.with_filter(filter)).with(otel).try_init();
    if let Some(endpoint) = otlp_endpoint {
        tracing::info!(endpoint, "traces exported over OTLP");
    }
    Ok(Telemetry { traces, _logs: guard })
}

fn tracer_provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| anyhow::anyhow!("otlp_endpoint {endpoint:?}: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name("gezinsdossier").build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}
