//! A minimal EPD integration: register a family and append a note, against a server
//! started with `--insecure-dev` (organisation asserted in metadata).
//!
//! ```text
//! cargo run --release --bin gezinsdossier -- serve --insecure-dev      # terminal 1
//! cargo run --example append_family                                    # terminal 2
//! ```
//!
//! Against a TLS server, build the channel with `ClientTlsConfig` and your organisation's
//! certificate (see `tests/e2e/support.rs`), and drop `x-organisation-id`.

use gezinsdossier_proto::v1::case_event::Kind;
use gezinsdossier_proto::v1::case_service_client::CaseServiceClient;
use gezinsdossier_proto::v1::{
    AppendEventsRequest, CalendarDate, CaseEvent, ExpectedRevision, Gezag, InformationCategory, MemberAdded,
    MemberRole, Note, expected_revision::Expectation,
};

/// The identity an EPD asserts on every call. In `--insecure-dev` the organisation is
/// claimed here too; under mTLS the certificate decides and `x-organisation-id` is ignored.
// tonic's interceptor signature fixes the error type.
#[allow(clippy::result_large_err)]
fn dev_identity(mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let md = req.metadata_mut();
    md.insert("x-organisation-id", tonic::metadata::MetadataValue::from_static("ggz-delfland"));
    md.insert("x-professional-id", tonic::metadata::MetadataValue::from_static("epd-user-4711"));
    md.insert("x-professional-role", tonic::metadata::MetadataValue::from_static("regiebehandelaar"));
    Ok(req)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let mut client = CaseServiceClient::with_interceptor(
        tonic::transport::Endpoint::from_shared(addr)?.connect().await?,
        dev_identity,
    );
    let family = uuid::Uuid::new_v4().to_string();
    let event = |subjects: &[&str], category: InformationCategory, kind: Kind| CaseEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        occurred_at: Some(prost_types::Timestamp { seconds: 1_760_000_000, nanos: 0 }),
        subject_member_ids: subjects.iter().map(|s| s.to_string()).collect(),
        categories: vec![category as i32],
        kind: Some(kind),
    };
    let request = AppendEventsRequest {
        family_id: family.clone(),
        expected_revision: Some(ExpectedRevision { expectation: Some(Expectation::NoStream(())) }),
        events: vec![
            event(
                &[],
                InformationCategory::Identity,
                Kind::MemberAdded(MemberAdded {
                    member_id: "moeder".into(),
                    role: MemberRole::Parent as i32,
                    display_name: "Moeder".into(),
                    ..Default::default()
                }),
            ),
            event(
                &[],
                InformationCategory::Identity,
                Kind::MemberAdded(MemberAdded {
                    member_id: "kind-1".into(),
                    role: MemberRole::Child as i32,
                    display_name: "Kind".into(),
                    birth_date: Some(CalendarDate { year: 2013, month: 5, day: 1 }),
                    gezag: Some(Gezag { holder_member_ids: vec!["moeder".into()], ..Default::default() }),
                    ..Default::default()
                }),
            ),
            event(
                &["moeder"],
                InformationCategory::TreatmentNotes,
                Kind::Note(Note { text: "Intakegesprek gepland.".into() }),
            ),
        ],
    };
    let response = client.append_events(request.clone()).await?.into_inner();
    println!("family {family}: revision {}, positions {:?}", response.stream_revision, response.global_positions);
    // Retrying the same request is safe: same answer, nothing written twice.
    let retry = client.append_events(request).await?.into_inner();
    println!("retry deduplicated: {}", retry.deduplicated);
    Ok(())
}
