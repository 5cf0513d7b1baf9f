//! The log as static, cacheable `c2sp.org/tlog-tiles` resources over plain HTTP
//! (`--tiles-listen`, off by default), so any tlog-tiles client or monitor can follow it:
//!
//! - `GET /checkpoint`: the newest signed checkpoint with the cosignatures that count
//!   (mutable: cached a few seconds);
//! - `GET /tile/<L>/<N>[.p/<W>]`: Merkle tree tiles (immutable: cached for a year).
//!
//! No entry bundles (`/tile/entries/…`): the log's entries are care records and access
//! logs, sealed or not, and never leave through this endpoint. A level-0 tile already holds
//! every leaf hash, which is all a monitor needs to check consistency and inclusion. What
//! the tiles do reveal: one hash per event (SHA-256 over bytes that include ciphertext and a
//! per-stream chain hash, so neither content nor stream can be guessed from it), how many
//! events there are, and, from when tiles and checkpoints change, roughly when events were
//! written. Counts and timing of writes across the whole service say nothing about a
//! family; that is the price of a log anyone can check, and the README says so.

use crate::http1::{plain, response};
use bytes::Bytes;
use gezinsdossier_ledger::cosignatures::{WitnessPolicy, recent};
use gezinsdossier_ledger::merkle::tiles::parse_tile_path;
use gezinsdossier_ledger::proof_index::LogIndex;
use gezinsdossier_ledger::publisher::latest_head;
use gezinsdossier_ledger::store::EventStore;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use tokio::net::TcpListener;

/// What the endpoint reads.
#[derive(Clone)]
pub struct TilesSource {
    pub store: Arc<dyn EventStore>,
    pub index: LogIndex,
    pub witnesses: WitnessPolicy,
}

/// Serves the tiles on `listener` until `shutdown` resolves.
pub async fn serve(source: TilesSource, listener: TcpListener, shutdown: impl std::future::Future<Output = ()>) {
    let source = Arc::new(source);
    crate::http1::serve(listener, shutdown, move |request| answer(source.clone(), request)).await;
}

fn cached(mut response: Response<Full<Bytes>>, cache: &'static str) -> Response<Full<Bytes>> {
    response.headers_mut().insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static(cache));
    response
}

async fn answer(source: Arc<TilesSource>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "read-only: GET\n");
    }
    let path = request.uri().path().trim_start_matches('/');
    if path == "checkpoint" {
        return checkpoint(&source).await;
    }
    if path.starts_with("tile/entries/") {
        return plain(StatusCode::NOT_FOUND, "entries are not published; level-0 tiles hold every leaf hash\n");
    }
    let Some((level, index, width)) = parse_tile_path(path) else {
        return plain(StatusCode::NOT_FOUND, "not a checkpoint or tile path\n");
    };
    match source.index.tile(level, index, width).await {
        Ok(Some(bytes)) => {
            cached(response(StatusCode::OK, "application/octet-stream", bytes), "public, max-age=31536000, immutable")
        }
        Ok(None) => plain(StatusCode::NOT_FOUND, "no such tile (yet)\n"),
        Err(e) => {
            tracing::warn!(error = %e, "tiles: a tile cannot be read");
            plain(StatusCode::SERVICE_UNAVAILABLE, "the tile cannot be read now\n")
        }
    }
}

async fn checkpoint(source: &TilesSource) -> Response<Full<Bytes>> {
    let head = match latest_head(&*source.store).await {
        Ok(Some(head)) if head.checkpoint.is_some() => head,
        Ok(_) => return plain(StatusCode::NOT_FOUND, "no checkpoint has been published yet\n"),
        Err(e) => {
            tracing::warn!(error = %e, "tiles: the latest head cannot be read");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "the checkpoint cannot be read now\n");
        }
    };
    let recorded = if source.witnesses.witnesses.is_empty() {
        Vec::new()
    } else {
        recent(&*source.store).await.unwrap_or_default()
    };
    let cosigned = source.witnesses.cosign(&head, &recorded);
    cached(response(StatusCode::OK, "text/plain; charset=utf-8", cosigned.note), "public, max-age=5")
}
