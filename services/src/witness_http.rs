//! The tlog-witness protocol over HTTP/1.1: the witness's `POST /add-checkpoint` endpoint
//! (`gezinsdossier witness`), and the client the service uses to ask witnesses for
//! cosignatures. The protocol itself (checks, state, statuses) is
//! [`gezinsdossier_ledger::witness`].
//!
//! Plain HTTP only: a witness's answers are signed, so TLS adds privacy of checkpoints
//! (which are public) and nothing to their integrity. Put a TLS proxy in front if policy
//! asks for it.

use crate::http1::{plain, response};
use bytes::Bytes;
use gezinsdossier_ledger::witness::{AddCheckpoint, MAX_REQUEST_BYTES, Refusal, Witness};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The content type of a 409's body, the size the witness holds.
const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// Largest witness answer read: cosignature lines.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Serves `witness` on `listener` until `shutdown` resolves.
pub async fn serve(witness: Arc<Witness>, listener: TcpListener, shutdown: impl std::future::Future<Output = ()>) {
    crate::http1::serve(listener, shutdown, move |request| answer(witness.clone(), request)).await;
}

async fn answer(witness: Arc<Witness>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != "/add-checkpoint" {
        return plain(StatusCode::NOT_FOUND, "only POST /add-checkpoint is served\n");
    }
    if request.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "add-checkpoint takes POST\n");
    }
    let body = match Limited::new(request.into_body(), MAX_REQUEST_BYTES).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "the request is too large\n"),
    };
    let Ok(body) = String::from_utf8(body.to_vec()) else {
        return plain(StatusCode::BAD_REQUEST, "the request is not UTF-8\n");
    };
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    // The state's fsync blocks; keep it off the runtime's workers.
    let outcome = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body, now))
        .await
        .unwrap_or_else(|e| Err(Refusal::Internal(e.to_string())));
    match outcome {
        Ok(lines) => plain(StatusCode::OK, lines),
        Err(Refusal::Conflict(size)) => response(StatusCode::CONFLICT, SIZE_CONTENT_TYPE, format!("{size}\n")),
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            tracing::info!(status = status.as_u16(), "witness: checkpoint refused");
            plain(status, format!("{refusal}\n"))
        }
    }
}

/// Why a witness gave no cosignature.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("witness URL {0:?} is not http://host:port[/prefix]")]
    BadUrl(String),
    #[error("cannot reach the witness: {0}")]
    Unreachable(String),
    #[error("the witness holds size {0}; resubmit from there")]
    Conflict(u64),
    #[error("the witness refused with HTTP {status}: {message}")]
    Refused { status: u16, message: String },
}

/// Sends one `add-checkpoint` to the witness at `url` (its submission prefix) and returns
/// the response body: the cosignature lines, not yet verified.
///
/// # Errors
/// [`SubmitError`]; a 409 is [`SubmitError::Conflict`] with the witness's size.
pub async fn submit(url: &str, request: &AddCheckpoint, timeout: Duration) -> Result<String, SubmitError> {
    let uri: hyper::Uri = format!("{}/add-checkpoint", url.trim_end_matches('/'))
        .parse()
        .map_err(|_| SubmitError::BadUrl(url.chars().take(64).collect()))?;
    let (Some("http"), Some(authority)) = (uri.scheme_str(), uri.authority().cloned()) else {
        return Err(SubmitError::BadUrl(url.chars().take(64).collect()));
    };
    let exchange = async {
        let stream = TcpStream::connect(authority.as_str()).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(io)?;
        tokio::spawn(connection);
        let post = Request::post(uri.clone())
            .header(hyper::header::HOST, authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(request.body())))
            .map_err(io)?;
        let response = sender.send_request(post).await.map_err(io)?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES).collect().await.map_err(io)?.to_bytes();
        Ok::<_, std::io::Error>((status, String::from_utf8_lossy(&body).into_owned()))
    };
    let (status, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| SubmitError::Unreachable(format!("no answer within {timeout:?}")))?
        .map_err(|e| SubmitError::Unreachable(e.to_string()))?;
    match status {
        StatusCode::OK => Ok(body),
        StatusCode::CONFLICT => body
            .trim()
            .parse()
            .map(SubmitError::Conflict)
            .map_or_else(|_| Err(SubmitError::Refused { status: 409, message: "no size in the answer".into() }), Err),
        other => Err(SubmitError::Refused { status: other.as_u16(), message: body.chars().take(200).collect() }),
    }
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}
