//! Structured logs, and (when `otlp_endpoint` is set) the same spans exported as
//! OpenTelemetry traces over OTLP/gRPC. Spans and events carry identifiers and counts only:
//! never payloads, names or BSNs.

use crate::config::LogFormat;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::span::Record;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::{FormatFields, JsonFields, Writer};
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
    let logs = match format {
        LogFormat::Json => json_lines(writer).boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
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

/// One JSON object per line, the event's fields at the top, with the current span's fields
/// (it carries the call's ids; the list of its parents would repeat them).
fn json_lines<S, W>(writer: W) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .fmt_fields(SplicedJsonFields)
}

/// Span fields as JSON, as tracing-subscriber's `JsonFields` writes them, except that a
/// field recorded after the span began is spliced into the object. `JsonFields` parses the
/// object and writes it anew for each such field (its own comment calls that "far from
/// efficient"), and the handlers record the caller and the family on their span once the
/// request is read.
struct SplicedJsonFields;

impl<'writer> FormatFields<'writer> for SplicedJsonFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> std::fmt::Result {
        JsonFields::new().format_fields(writer, fields)
    }

    fn add_fields(&self, current: &'writer mut FormattedFields<Self>, fields: &Record<'_>) -> std::fmt::Result {
        let mut added = String::new();
        JsonFields::new().format_fields(Writer::new(&mut added), fields)?;
        splice_json_object(&mut current.fields, &added);
        Ok(())
    }
}

/// Adds the members of the JSON object `added` to the JSON object `object` (either may be
/// empty text or `{}`). A name given again appears twice; a parser keeps the last.
fn splice_json_object(object: &mut String, added: &str) {
    let Some(members) = added.strip_prefix('{').and_then(|a| a.strip_suffix('}')).filter(|m| !m.is_empty()) else {
        return;
    };
    if object.is_empty() || object == "{}" {
        *object = added.to_owned();
        return;
    }
    object.pop();
    object.push(',');
    object.push_str(members);
    object.push('}');
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spliced_fields_stay_one_json_object_with_every_field() {
        let mut object = String::new();
        splice_json_object(&mut object, "{}");
        assert_eq!(object, "");
        splice_json_object(&mut object, r#"{"request_id":"r-1"}"#);
        splice_json_object(&mut object, "{}");
        splice_json_object(&mut object, r#"{"family_id":"f,}1","events":2}"#);
        let parsed: serde_json::Value = serde_json::from_str(&object).unwrap();
        assert_eq!(parsed, serde_json::json!({"request_id": "r-1", "family_id": "f,}1", "events": 2}));
        splice_json_object(&mut object, r#"{"events":3}"#);
        let parsed: serde_json::Value = serde_json::from_str(&object).unwrap();
        assert_eq!(parsed["events"], 3, "a field recorded again reads as its last value");
    }

    #[test]
    fn a_line_carries_its_span_with_the_fields_recorded_after_the_span_began() {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let make_writer = move || Sink(sink.clone());
        let subscriber = tracing_subscriber::registry().with(json_lines(make_writer));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "AppendEvents",
                request_id = "r-1",
                family_id = tracing::field::Empty,
                events = tracing::field::Empty
            );
            span.record("family_id", "fam-1");
            span.record("events", 2);
            span.in_scope(|| tracing::warn!(code = 7, "inside"));
        });
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["code"], 7);
        assert_eq!(
            line["span"],
            serde_json::json!({"name": "AppendEvents", "request_id": "r-1", "family_id": "fam-1", "events": 2})
        );
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
