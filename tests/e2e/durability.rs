//! Acknowledged means durable: SIGKILL the real binary in the middle of concurrent appends,
//! then check every acknowledged event is there, every chain verifies, and nothing
//! half-written appears.

use crate::support::build::{self, any, append};
use crate::support::open_family_events;
use crate::support::{Binary, Professional};
use gezinsdossier_ledger::chain::verify_stream;
use gezinsdossier_ledger::envelope::StreamId;
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::sqlite::SqliteStore;
use gezinsdossier_proto::v1::case_service_client::CaseServiceClient;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

const FAMILIES: usize = 4;
const WRITERS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_concurrent_appends_loses_no_acknowledged_event() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (mut server, endpoint) = Binary::start(&["--data-dir", dir.to_str().unwrap()], &dir.with_extension("log"));
    crate::support::wait_for_health(endpoint.clone(), None).await;
    let channel = tonic::transport::Endpoint::from_shared(endpoint).unwrap().connect().await.unwrap();
    let client = CaseServiceClient::with_interceptor(
        channel,
        Professional::new("p", "regiebehandelaar").claiming(crate::support::VGGZ),
    );
    for f in 0..FAMILIES {
        client.clone().append_events(append(&format!("fam-{f}"), any(), vec![build::parent("mother")])).await.unwrap();
    }

    // Writers append until the server dies, recording each event id the server acknowledged.
    let acked: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut client = client.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let family = (w + i) % FAMILIES;
                let events = vec![build::note("mother", &format!("{w}-{i}")), build::note("mother", "tweede")];
                let ids: Vec<_> = events.iter().map(|e| e.event_id.clone()).collect();
                match client.append_events(append(&format!("fam-{family}"), any(), events)).await {
                    Ok(_) => acked.lock().unwrap().extend(ids.into_iter().map(|id| (family, id))),
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill once a good number of appends are through and more are in flight.
    while acked.lock().unwrap().len() < 400 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    server.kill();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    // Inspect the files directly, as a recovering process would.
    let store = SqliteStore::open(&dir).expect("reopen after SIGKILL");
    let mut stored: BTreeMap<usize, HashSet<String>> = BTreeMap::new();
    for f in 0..FAMILIES {
        let stream = StreamId::new(format!("family-fam-{f}")).unwrap();
        let events = store.read_stream(&stream, 0, 1_000_000).await.unwrap();
        verify_stream(&events).expect("hash chain verifies after crash");
        let kek = std::fs::read_to_string(dir.join("dev-kek.hex")).expect("dev kek");
        for opened in open_family_events(&dir, &kek, &events).await {
            assert!(opened.is_some(), "every stored event is whole and readable");
        }
        // Appends are all-or-nothing: the two notes of one request are both there or not.
        assert_eq!((events.len() - 1) % 2, 0, "family {f} holds half a request");
        stored.insert(f, events.iter().map(|e| e.event_id.to_string()).collect());
    }
    for (family, id) in &acked {
        assert!(stored[family].contains(id), "acknowledged event {id} of family {family} is missing");
    }
    // The whole log (family events plus any signed tree heads) is gapless.
    let family_events: usize = stored.values().map(HashSet::len).sum();
    let mut total = 0u64;
    loop {
        let page = store.read_all(total, 1_000).await.unwrap();
        if page.is_empty() {
            break;
        }
        for event in &page {
            assert_eq!(event.position, total, "global log has a gap");
            total += 1;
        }
    }
    assert!(total as usize >= family_events);
    store.shutdown().await;

    // The binary starts again on the same directory and continues the log.
    let (_server, endpoint) = Binary::start(&["--data-dir", dir.to_str().unwrap()], &dir.with_extension("log"));
    crate::support::wait_for_health(endpoint.clone(), None).await;
    let channel = tonic::transport::Endpoint::from_shared(endpoint).unwrap().connect().await.unwrap();
    let mut client = CaseServiceClient::with_interceptor(
        channel,
        Professional::new("p", "regiebehandelaar").claiming(crate::support::VGGZ),
    );
    let out = client
        .append_events(append("fam-0", any(), vec![build::note("mother", "na herstart")]))
        .await
        .unwrap()
        .into_inner();
    // It lands after everything stored before the crash (a tree head may come first).
    assert!(out.global_positions[0] >= total, "{:?} overwrote a position below {total}", out.global_positions);
    println!("acknowledged before SIGKILL: {}, family events stored: {family_events}", acked.len());
}
