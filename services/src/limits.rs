//! Request size limits, reported as RESOURCE_EXHAUSTED; requests that do not decode, as
//! INVALID_ARGUMENT.
//!
//! tonic refuses an oversized message with OUT_OF_RANGE. gRPC's own guidance (and our API
//! contract) uses RESOURCE_EXHAUSTED for "larger than the server accepts", so this layer
//! rewrites exactly that status. tonic also reports a request that does not decode (bad
//! wire bytes, a string that is not UTF-8) as INTERNAL, which tells a client the server
//! broke; it is the client's request, so it becomes INVALID_ARGUMENT, with prost's
//! description (which names the message and field, never the bytes sent). tonic sends decode failures of unary calls as a
//! trailers-only response, so the status sits in the response headers, where a plain
//! response mapping can reach it.

use http::{HeaderValue, Response};
use std::task::{Context, Poll};
use tower::{Layer, Service};

const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";
const PROST_DECODE_FAILED: &str = "failed to decode Protobuf message";

#[derive(Debug, Clone, Copy, Default)]
pub struct ClientFaultStatuses;

impl<S> Layer<S> for ClientFaultStatuses {
    type Service = ClientFaultService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ClientFaultService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct ClientFaultService<S> {
    inner: S,
}

impl<S, Req, B> Service<Req> for ClientFaultService<S>
where
    S: Service<Req, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = futures::future::MapOk<S::Future, fn(Response<B>) -> Response<B>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        use futures::TryFutureExt;
        self.inner.call(req).map_ok(rewrite as fn(Response<B>) -> Response<B>)
    }
}

fn rewrite<B>(mut response: Response<B>) -> Response<B> {
    let headers = response.headers_mut();
    let too_large = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| percent_decoded_starts_with(m, TONIC_TOO_LARGE));
    let undecodable = headers.get("grpc-status").is_some_and(|v| v == "13")
        && headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| percent_decoded_starts_with(m, PROST_DECODE_FAILED));
    if undecodable {
        headers.insert("grpc-status", HeaderValue::from_static("3"));
    }
    if too_large {
        headers.insert("grpc-status", HeaderValue::from_static("8"));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static(
                "request%20too%20large%3A%20the%20message%20exceeds%20the%20server%27s%20size%20limit",
            ),
        );
    }
    response
}

fn percent_decoded_starts_with(encoded: &str, prefix: &str) -> bool {
    encoded.replace("%20", " ").starts_with(prefix)
}
