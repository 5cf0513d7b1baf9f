//! `--tiles-listen`: the log as c2sp.org/tlog-tiles resources over HTTP. A client with only
//! the log's public key fetches the checkpoint and the tiles, recomputes the signed root
//! from the leaf hashes, and gets no entries.

use crate::support::build::{self, any, append};
use crate::support::{TestServer, VGGZ};
use gezinsdossier_ledger::checkpoint;
use gezinsdossier_ledger::merkle::{TreeHash, leaf_hash, node_hash};
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::treehead::TreeHeadSigner;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.1 GET: status line, headers, body.
async fn get(addr: std::net::SocketAddr, path: &str, method: &str) -> (u16, String, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: tiles\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("headers end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

/// MTH over leaf hashes, written from RFC 6962 §2.1 alone.
fn mth(leaves: &[TreeHash]) -> TreeHash {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let k = leaves.len().next_power_of_two() / 2;
    node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
}

#[tokio::test]
async fn a_tlog_tiles_client_follows_the_log_from_hashes_alone() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = TestServer::start_with(|c| {
        c.tiles_listen = Some(port);
        c.tree_head_every_events = 50;
        c.tree_head_interval_ms = 20;
    })
    .await;
    let mut case = server.case_client(VGGZ, "p", "psychiater").await;
    case.append_events(append("fam-t", build::no_stream(), vec![build::parent("mother")])).await.unwrap();
    for i in 0..30 {
        let notes = (0..10).map(|j| build::note("mother", &format!("{i}-{j}"))).collect();
        case.append_events(append("fam-t", any(), notes)).await.unwrap();
    }
    // Wait (bounded) for a checkpoint past the first full tile.
    let mut note = String::new();
    for _ in 0..400 {
        let (status, _, body) = get(port, "/checkpoint", "GET").await;
        note = String::from_utf8(body).unwrap();
        if status == 200 && note.lines().nth(1).and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s > 300) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let key = TreeHeadSigner::load_or_create(&server.data_dir.join("treehead.key")).unwrap();
    let (signed, _) = checkpoint::open(&note, key.public_key(), &[]).expect("a checkpoint signed by the log");
    assert!(signed.size > 300 && signed.size < 512, "{note}");

    let (status, head, full) = get(port, "/tile/0/000", "GET").await;
    assert_eq!(status, 200);
    assert!(head.contains("immutable") && head.to_lowercase().contains("application/octet-stream"), "{head}");
    assert_eq!(full.len(), 8192);
    let width = signed.size - 256;
    let (status, _, partial) = get(port, &format!("/tile/0/001.p/{width}"), "GET").await;
    assert_eq!((status, partial.len() as u64), (200, 32 * width));
    let leaves: Vec<TreeHash> =
        full.chunks(32).chain(partial.chunks(32)).map(|c| TreeHash::try_from_slice(c).unwrap()).collect();
    assert_eq!(mth(&leaves), signed.root, "the tiles recompute the signed root");
    // Each level-0 hash is an event's leaf hash: its bytes are not served.
    let first = server.store.read_all(0, 1).await.unwrap().remove(0);
    assert_eq!(leaves[0], leaf_hash(&first.canonical_bytes()));
    let (status, _, body) = get(port, "/tile/entries/000", "GET").await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));

    // Beyond the log, malformed paths and writes are refused.
    assert_eq!(get(port, "/tile/0/x001/000", "GET").await.0, 404);
    assert_eq!(get(port, "/tile/00/000", "GET").await.0, 404);
    assert_eq!(get(port, "/checkpoint", "POST").await.0, 405);
    server.stop().await;
}
