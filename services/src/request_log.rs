//! One log line per RPC, and its count and latency in the metrics, written when the call ends: method, gRPC status, latency, request
//! id and the calling organisation. Never a message, a payload or any id from inside the
//! request (those can name family members); the status message is left out for that reason.
//!
//! The request id comes from `x-request-id` when the caller sent a usable one, or is made
//! here; either way it is returned in the response headers and carried by the call's span,
//! so the handler's own events can be matched to the line. Failed authentication and
//! refusals (UNAUTHENTICATED, PERMISSION_DENIED) are logged at WARN, server faults at ERROR,
//! the rest at INFO; health probes at DEBUG, as they come every few seconds. In insecure dev
//! mode every response also carries `x-gezinsdossier-insecure-dev: true`.
//!
//! Hand-written rather than tower-http's `TraceLayer`: that layer's classifier sees the
//! status but not the organisation, which the authenticator learns only inside the call;
//! the [`CallOrigin`] slot carries it out.

use http::{HeaderMap, HeaderValue, Request, Response};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};
use tracing::Instrument;

/// Header carrying the request id, both ways.
pub const REQUEST_ID: &str = "x-request-id";
/// Response header saying the server runs without verified identities.
pub const INSECURE_DEV: &str = "x-gezinsdossier-insecure-dev";
const MAX_REQUEST_ID_LEN: usize = 128;
const MAX_METHOD_LEN: usize = 128;

/// Where the authenticator leaves the organisation it established, for the log line.
#[derive(Debug, Clone, Default)]
pub struct CallOrigin(Arc<OnceLock<String>>);

impl CallOrigin {
    pub fn set_organisation(&self, organisation_id: &str) {
        let _ = self.0.set(organisation_id.to_owned());
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RequestLog {
    pub insecure_dev: bool,
}

impl<S> Layer<S> for RequestLog {
    type Service = RequestLogService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestLogService { inner, insecure_dev: self.insecure_dev }
    }
}

#[derive(Debug, Clone)]
pub struct RequestLogService<S> {
    inner: S,
    insecure_dev: bool,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestLogService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: 'static,
{
    type Response = Response<LoggedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let request_id = request_id(request.headers());
        let origin = CallOrigin::default();
        request.extensions_mut().insert(origin.clone());
        // The path is the client's to choose: bounded in the log, and see `write` for metrics.
        let method: String = request.uri().path().chars().take(MAX_METHOD_LEN).collect();
        let span = tracing::info_span!("rpc", request_id = %request_id, method = %method);
        let line = Line { method, request_id: request_id.clone(), origin, started: Instant::now() };
        let insecure_dev = self.insecure_dev;
        let future = self.inner.call(request);
        Box::pin(
            async move {
                let mut response = future.await?;
                let headers = response.headers_mut();
                if let Ok(value) = HeaderValue::from_str(&request_id) {
                    headers.insert(REQUEST_ID, value);
                }
                if insecure_dev {
                    headers.insert(INSECURE_DEV, HeaderValue::from_static("true"));
                }
                // A trailers-only response (most errors) has its status here already.
                let status = grpc_status(response.headers());
                Ok(response.map(|body| LoggedBody { inner: body, line: Some(line), status }))
            }
            .instrument(span),
        )
    }
}

/// The caller's `x-request-id` when it is short and plain, else a new UUID.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

fn grpc_status(headers: &HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(tonic::Code::from_i32(value))
}

struct Line {
    method: String,
    request_id: String,
    origin: CallOrigin,
    started: Instant,
}

impl Line {
    /// `None`: the stream ended without a status, i.e. the client went away.
    ///
    /// Written outside the call's span: the line carries the span's two fields itself, and
    /// inside it the JSON formatter would parse and write the span's fields again for every
    /// line.
    fn write(self, status: Option<tonic::Code>) {
        let code = status.unwrap_or(tonic::Code::Cancelled);
        let organisation = self.origin.0.get().map_or("-", String::as_str);
        let latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let status_name = status_name(code);
        // Only served methods become label values: a client inventing paths (all answered
        // UNIMPLEMENTED) must not grow the series without bound.
        let method_label =
            if code == tonic::Code::Unimplemented { "unimplemented".to_owned() } else { self.method.clone() };
        metrics::counter!("gezinsdossier_rpc_requests_total", "method" => method_label.clone(), "status" => status_name)
            .increment(1);
        metrics::histogram!("gezinsdossier_rpc_duration_seconds", "method" => method_label).record(latency_ms / 1000.0);
        macro_rules! line {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    method = %self.method,
                    status = status_name,
                    latency_ms,
                    request_id = %self.request_id,
                    organisation_id = organisation,
                    "rpc"
                )
            };
        }
        use tonic::Code::*;
        match code {
            _ if self.method.starts_with("/grpc.health.") => line!(tracing::Level::DEBUG),
            Unauthenticated | PermissionDenied => line!(tracing::Level::WARN),
            Internal | Unknown | DataLoss => line!(tracing::Level::ERROR),
            _ => line!(tracing::Level::INFO),
        }
    }
}

fn status_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

pin_project_lite::pin_project! {
    /// The response body, which writes the line when its trailers (the status) pass, or
    /// when it is dropped unfinished.
    pub struct LoggedBody<B> {
        #[pin]
        inner: B,
        line: Option<Line>,
        status: Option<tonic::Code>,
    }

    impl<B> PinnedDrop for LoggedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(line) = this.line.take() {
                line.write(*this.status);
            }
        }
    }
}

impl<B: http_body::Body> http_body::Body for LoggedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                    *this.status = Some(code);
                    if let Some(line) = this.line.take() {
                        line.write(Some(code));
                    }
                }
            }
            Some(Err(_)) | None => {
                if let Some(line) = this.line.take() {
                    line.write(*this.status);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_request_id_is_kept_and_anything_else_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("epd-7f3a:42"));
        assert_eq!(request_id(&headers), "epd-7f3a:42");
        for bad in ["", "with space", &"x".repeat(MAX_REQUEST_ID_LEN + 1)] {
            headers.insert(REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            let made = request_id(&headers);
            assert_ne!(made, bad);
            assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
        }
    }
}
