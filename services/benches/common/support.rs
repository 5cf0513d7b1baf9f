//! What the gRPC benchmarks share (included by path): a server on the embedded store
//! under mTLS, and the requests they send (one parent member "m", notes about it, the
//! professional's metadata).

#![allow(dead_code)]

/// The server binary's allocator (`services/src/main.rs`), so that the figures match it.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use gezinsdossier_proto::v1 as pb;
use gezinsdossier_services::config::{Config, LogFormat};
use gezinsdossier_services::identity::dev_ca::{self, DevOrganisation, DevPki};

/// A running server; `stop` it and await `task` to end it.
pub struct BenchServer {
    pub pki: DevPki,
    pub port: u16,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts the service in this process with a fresh PKI for `orgs` and data under `dir`.
pub async fn start_server(dir: &std::path::Path, orgs: &[DevOrganisation]) -> BenchServer {
    let pki = dev_ca::generate(&dir.join("pki"), orgs, &[]).expect("pki");
    let config = Config {
        data_dir: dir.join("data"),
        tls: Some(pki.server_tls()),
        organisations: Some(pki.registry.clone()),
        log_format: LogFormat::Json,
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(gezinsdossier_services::server::serve(config, listener, async {
        let _ = stopped.await;
    }));
    BenchServer { pki, port, stop, task }
}

// tonic's interceptor signature fixes the error type.
#[allow(clippy::result_large_err)]
pub fn professional(mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    req.metadata_mut().insert("x-professional-id", "bench".parse().expect("ascii"));
    req.metadata_mut().insert("x-professional-role", "regiebehandelaar".parse().expect("ascii"));
    Ok(req)
}

pub fn request(family: &str, event: pb::CaseEvent) -> pb::AppendEventsRequest {
    pb::AppendEventsRequest {
        family_id: family.into(),
        expected_revision: Some(pb::ExpectedRevision {
            expectation: Some(pb::expected_revision::Expectation::Any(())),
        }),
        events: vec![event],
    }
}

pub fn event(kind: pb::case_event::Kind, category: pb::InformationCategory) -> pb::CaseEvent {
    pb::CaseEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        occurred_at: Some(prost_types::Timestamp { seconds: 1_760_000_000, nanos: 0 }),
        subject_member_ids: vec!["m".into()],
        categories: vec![category as i32],
        kind: Some(kind),
    }
}

pub fn member_added() -> pb::CaseEvent {
    event(
        pb::case_event::Kind::MemberAdded(pb::MemberAdded {
            member_id: "m".into(),
            role: pb::MemberRole::Parent as i32,
            display_name: "Ouder".into(),
            ..Default::default()
        }),
        pb::InformationCategory::Identity,
    )
}

pub fn note(text: &str) -> pb::CaseEvent {
    event(pb::case_event::Kind::Note(pb::Note { text: text.into() }), pb::InformationCategory::TreatmentNotes)
}
