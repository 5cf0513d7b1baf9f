//! Health tells the truth, and background work survives faults: on the embedded store with
//! injected faults (the PostgreSQL and KurrentDB faults are in `engine_faults`).

use crate::support::build::{self, any, append};
use crate::support::{ServingStatus, TestServer, VGGZ};
use gezinsdossier_ledger::merkle::CompactRange;
use gezinsdossier_ledger::merkle::leaf_hash;
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::faulty::Fault;
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::log_service_client::LogServiceClient;
use std::time::Duration;
use tonic::Code;

const CASE: &str = "gezinsdossier.v1.CaseService";
const DOSSIER: &str = "gezinsdossier.v1.DossierService";
const LOG: &str = "gezinsdossier.v1.LogService";

/// A full disk (or any store that cannot commit): every append fails cleanly, and health
/// says so; once commits work again, health says SERVING without waiting for an append
/// (a balancer has drained this replica, so none may come).
#[tokio::test]
async fn health_is_not_serving_while_commits_fail_and_serving_once_they_work_again() {
    let server = TestServer::start().await;
    let mut case = server.case_client(VGGZ, "ggz-1", "regiebehandelaar").await;
    case.append_events(append("fam-health", build::no_stream(), vec![build::parent("mother")])).await.unwrap();
    for service in ["", CASE, DOSSIER, LOG] {
        assert_eq!(server.health(service).await, Some(ServingStatus::Serving), "{service:?}");
    }

    server.store.fail_appends("", Fault::BeforeWrite);
    let err = case.append_events(append("fam-health", any(), vec![build::note("mother", "x")])).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("nothing was written"), "{}", err.message());
    server.await_health("", ServingStatus::NotServing).await;
    for service in [CASE, DOSSIER] {
        assert_eq!(server.health(service).await, Some(ServingStatus::NotServing), "{service:?}");
    }
    // Proofs come from memory: the log service still serves.
    assert_eq!(server.health(LOG).await, Some(ServingStatus::Serving));
    // It stays so while the store keeps failing (the write probe fails too).
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(server.health("").await, Some(ServingStatus::NotServing));

    server.store.clear();
    server.await_health("", ServingStatus::Serving).await;
    assert_eq!(server.health(CASE).await, Some(ServingStatus::Serving));
    assert_eq!(server.family_events("fam-health").await.len(), 1, "the probe writes no event");
    case.append_events(append("fam-health", any(), vec![build::note("mother", "weer")])).await.unwrap();
    server.stop().await;
}

/// The publisher's subscription fails once: the publisher restarts from its index, and the
/// next signed head covers every event, with the root an independent recomputation gives.
#[tokio::test]
async fn a_failed_subscription_restarts_the_publisher_and_the_next_head_covers_every_event() {
    let server = TestServer::start_with(|c| {
        c.tree_head_every_events = 1_000_000;
        c.tree_head_interval_ms = 50;
    })
    .await;
    let mut case = server.case_client(VGGZ, "ggz-1", "regiebehandelaar").await;
    case.append_events(append("fam-pub", build::no_stream(), vec![build::parent("mother")])).await.unwrap();
    let armed_at = server.store.read_all(0, 100_000).await.unwrap().len() as u64 + 3;
    server.store.break_subscription_at(armed_at);
    for i in 0..10 {
        case.append_events(append("fam-pub", any(), vec![build::note("mother", &format!("n{i}"))])).await.unwrap();
    }
    let last_case_event = server.family_events("fam-pub").await.last().unwrap().position;

    let metadata = server.professional(VGGZ, "ggz-1", "regiebehandelaar");
    let mut log = LogServiceClient::with_interceptor(server.channel(Some(VGGZ)).await, metadata);
    let mut head = None;
    for _ in 0..200 {
        if let Ok(h) = log.get_latest_tree_head(pb::GetLatestTreeHeadRequest::default()).await
            && h.get_ref().size > last_case_event
        {
            head = Some(h.into_inner());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let head = head.expect("a signed head covering every event after the failure");
    let events = server.store.read_all(0, 100_000).await.unwrap();
    let mut range = CompactRange::new();
    for event in events.iter().take(head.size as usize) {
        range.push(leaf_hash(&event.canonical_bytes()));
    }
    assert_eq!(head.root, range.root().to_hex(), "the restarted index neither skipped nor repeated an event");
    // The event where the subscription broke is provable.
    let proof = log
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            position: armed_at,
            tree_size: head.size,
            include_event_bytes: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(proof.leaf_hash, leaf_hash(&events[armed_at as usize].canonical_bytes()).to_hex());
    assert_eq!(server.health(LOG).await, Some(ServingStatus::Serving));
    server.stop().await;
}

/// Heads that cannot be published (here: the tree-head stream refuses writes) take the log
/// service out once the lag passes its bound, and it comes back once they are published.
#[tokio::test]
async fn the_log_service_is_not_serving_while_signed_heads_fall_behind() {
    let server = TestServer::start_with(|c| {
        c.tree_head_every_events = 2;
        c.tree_head_interval_ms = 50;
        c.tree_head_max_lag_events = 4;
        c.tree_head_max_lag_ms = 100;
    })
    .await;
    server.store.fail_appends("log-tree-heads", Fault::BeforeWrite);
    let mut case = server.case_client(VGGZ, "ggz-1", "regiebehandelaar").await;
    case.append_events(append("fam-lag", build::no_stream(), vec![build::parent("mother")])).await.unwrap();
    for i in 0..6 {
        case.append_events(append("fam-lag", any(), vec![build::note("mother", &format!("n{i}"))])).await.unwrap();
    }
    server.await_health(LOG, ServingStatus::NotServing).await;

    server.store.clear();
    server.await_health(LOG, ServingStatus::Serving).await;
    server.stop().await;
}

/// From the first moment of a graceful shutdown, health says NOT_SERVING while the server
/// still answers, so that balancers drain it before the listener closes.
#[tokio::test]
async fn a_graceful_shutdown_says_not_serving_before_it_stops_listening() {
    let mut server = TestServer::start_with(|c| c.shutdown_drain_ms = 1_500).await;
    server.begin_stop();
    server.await_health("", ServingStatus::NotServing).await;
    for service in [CASE, LOG] {
        assert_eq!(server.health(service).await, Some(ServingStatus::NotServing), "{service:?}");
    }
    server.stop().await;
}
