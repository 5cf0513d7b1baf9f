//! CaseService.AppendEvents over the wire: append, retries, expected revisions, validation,
//! limits, health.

use crate::support::build::{self, any, append, exact, no_stream};
use crate::support::{TestServer, VGGZ};
use gezinsdossier_proto::v1 as pb;
use pb::case_event::Kind;
use tonic::Code;

async fn family_of_four(server: &TestServer, family: &str) -> crate::support::CaseClient {
    let mut client = server.case_client(VGGZ, "prof-1", "regiebehandelaar").await;
    let out =
        client.append_events(append(family, no_stream(), build::new_family())).await.expect("append").into_inner();
    assert_eq!(out.stream_revision, 3);
    client
}

#[tokio::test]
async fn append_returns_new_revision_positions_and_chain_head() {
    let server = TestServer::start().await;
    let mut client = server.case_client(VGGZ, "prof-1", "regiebehandelaar").await;
    let out = client.append_events(append("fam-1", no_stream(), build::new_family())).await.unwrap().into_inner();
    assert_eq!(out.stream_revision, 3);
    assert_eq!(out.global_positions, vec![0, 1, 2, 3]);
    assert!(!out.deduplicated);
    assert_eq!(out.last_event_hash.len(), 64);

    let more = client.append_events(append("fam-1", exact(3), vec![build::note("mother", "gesprek")])).await.unwrap();
    assert_eq!(more.into_inner().stream_revision, 4);
    // Another family has its own revisions but shares the global log.
    let other = client.append_events(append("fam-2", any(), vec![build::parent("p")])).await.unwrap().into_inner();
    assert_eq!((other.stream_revision, other.global_positions), (0, vec![5]));
    server.stop().await;
}

#[tokio::test]
async fn a_retry_with_the_same_ids_returns_the_original_result_and_writes_nothing() {
    let server = TestServer::start().await;
    let mut client = family_of_four(&server, "fam-r").await;
    let request = append("fam-r", exact(3), vec![build::note("mother", "a"), build::note("child", "b")]);
    let first = client.append_events(request.clone()).await.unwrap().into_inner();
    let again = client.append_events(request.clone()).await.unwrap().into_inner();
    assert!(again.deduplicated);
    assert_eq!(
        (again.stream_revision, &again.global_positions, &again.last_event_hash),
        (first.stream_revision, &first.global_positions, &first.last_event_hash)
    );
    // Nothing was written by the retry: the next append lands right after the first.
    let next = client.append_events(append("fam-r", exact(5), vec![build::note("mother", "c")])).await.unwrap();
    assert_eq!(next.into_inner().global_positions, vec![first.global_positions[1] + 1]);

    // The same id with other content is refused.
    let mut changed = request;
    changed.events[0].kind = Some(Kind::Note(pb::Note { text: "different".into() }));
    changed.expected_revision = any();
    let err = client.append_events(changed).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains("already used"), "{}", err.message());
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_expected_revision_fails_with_the_actual_revision() {
    let server = TestServer::start().await;
    let mut client = family_of_four(&server, "fam-c").await;
    let err = client.append_events(append("fam-c", exact(1), vec![build::note("mother", "x")])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("actual revision 3"), "{}", err.message());

    let err = client.append_events(append("fam-c", no_stream(), vec![build::note("mother", "x")])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("actual revision 3"), "{}", err.message());

    let err = client.append_events(append("fam-new", exact(0), vec![build::parent("p")])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("actual no stream"), "{}", err.message());
    server.stop().await;
}

/// Each malformed request: INVALID_ARGUMENT naming the field, and nothing written.
#[tokio::test]
async fn each_validation_error_names_its_field_and_writes_nothing() {
    use pb::InformationCategory as C;
    let server = TestServer::start().await;
    let mut client = family_of_four(&server, "fam-v").await;
    let plan = |kind: pb::PlanKind, signs: Vec<String>| {
        build::event(
            &["child"],
            &[C::Plan],
            Kind::PlanAgreed(pb::PlanAgreed {
                plan_kind: kind as i32,
                plan_id: "plan-1".into(),
                warning_signs: signs,
                ..Default::default()
            }),
        )
    };
    let mut no_role = build::parent("newcomer");
    if let Some(Kind::MemberAdded(m)) = &mut no_role.kind {
        m.role = 0;
    }
    let mut unknown_category = build::note("mother", "x");
    unknown_category.categories = vec![99];
    let mut unspecified_category = build::note("mother", "x");
    unspecified_category.categories = vec![C::Plan as i32, 0];
    let mut no_kind = build::note("mother", "x");
    no_kind.kind = None;
    let mut bad_id = build::note("mother", "x");
    bad_id.event_id = "not-a-uuid".into();
    let mut no_time = build::note("mother", "x");
    no_time.occurred_at = None;
    let mut year_20000 = build::note("mother", "x");
    year_20000.occurred_at = Some(prost_types::Timestamp { seconds: 569_000_000_000, nanos: 0 });
    let mut no_categories = build::note("mother", "x");
    no_categories.categories.clear();
    let correction = |target: String| {
        build::event(
            &["mother"],
            &[C::TreatmentNotes],
            Kind::Correction(pb::Correction { corrects_event_id: target, reason: "typo".into(), replacement: None }),
        )
    };
    let mut child_without_birth_date = build::child("baby", build::date(2020, 1, 1), &["mother"]);
    if let Some(Kind::MemberAdded(m)) = &mut child_without_birth_date.kind {
        m.birth_date = None;
    }
    let bad_date = build::child("baby", build::date(2020, 2, 30), &["mother"]);

    let cases: Vec<(&str, pb::AppendEventsRequest)> = vec![
        ("events[0].plan_agreed.plan_kind", append("fam-v", any(), vec![plan(pb::PlanKind::Unspecified, vec![])])),
        (
            "events[0].plan_agreed.warning_signs",
            append("fam-v", any(), vec![plan(pb::PlanKind::Veiligheidsplan, vec![])]),
        ),
        ("events[0].member_added.role", append("fam-v", any(), vec![no_role])),
        ("events[0].correction.corrects_event_id", append("fam-v", any(), vec![correction(build::id())])),
        ("events[0].correction.corrects_event_id", append("fam-v", any(), vec![correction("nope".into())])),
        ("events[0].categories[0]", append("fam-v", any(), vec![unknown_category])),
        ("events[0].categories[1]", append("fam-v", any(), vec![unspecified_category])),
        ("events[0].categories", append("fam-v", any(), vec![no_categories])),
        ("events[0].kind", append("fam-v", any(), vec![no_kind])),
        ("events[0].event_id", append("fam-v", any(), vec![bad_id])),
        ("events[0].occurred_at", append("fam-v", any(), vec![no_time])),
        ("events[0].occurred_at", append("fam-v", any(), vec![year_20000])),
        (
            "events[1].subject_member_ids",
            append("fam-v", any(), vec![build::note("mother", "ok"), build::note("stranger", "x")]),
        ),
        ("events[0].member_added.birth_date", append("fam-v", any(), vec![child_without_birth_date])),
        ("events[0].member_added.birth_date", append("fam-v", any(), vec![bad_date])),
        (
            "events[0].member_added.gezag.holder_member_ids",
            append("fam-v", any(), vec![build::child("baby", build::date(2020, 1, 1), &["grandpa"])]),
        ),
        ("events[0].member_added.member_id", append("fam-v", any(), vec![build::parent("mother")])),
        ("family_id", append("fam v!", any(), vec![build::note("mother", "x")])),
        ("expected_revision", append("fam-v", None, vec![build::note("mother", "x")])),
        ("events", append("fam-v", any(), vec![])),
    ];
    for (field, request) in cases {
        let err = client.append_events(request).await.expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(err.message().starts_with(&format!("{field}:")), "expected {field}, got {:?}", err.message());
    }
    // A valid correction of a real event is accepted; nothing from above was written.
    let target = build::note("mother", "oorspronkelijk");
    let target_id = target.event_id.clone();
    let out = client.append_events(append("fam-v", exact(3), vec![target, correction(target_id)])).await.unwrap();
    assert_eq!(out.into_inner().stream_revision, 5);
    server.stop().await;
}

/// A `GetDossierRequest` whose `family_id` (tag 1, a string) carries raw bytes.
#[derive(Clone, PartialEq, prost::Message)]
struct RawFamilyId {
    #[prost(bytes = "vec", tag = "1")]
    family_id: Vec<u8>,
}

#[tokio::test]
async fn a_request_that_does_not_decode_is_invalid_argument_and_names_the_field() {
    let server = TestServer::start().await;
    let channel = server.channel(Some(VGGZ)).await;
    let intercepted =
        tonic::service::interceptor::InterceptedService::new(channel, server.professional(VGGZ, "p", "psychiater"));
    let mut grpc = tonic::client::Grpc::new(intercepted);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/gezinsdossier.v1.DossierService/GetDossier");
    let codec = tonic_prost_codec::<RawFamilyId, pb::Dossier>();
    let sent = RawFamilyId { family_id: vec![0xff, 0xfe, b'x'] };
    let err = grpc.unary(tonic::Request::new(sent), path, codec).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("family_id") && err.message().contains("UTF-8"), "{}", err.message());
    server.stop().await;
}

fn tonic_prost_codec<T: prost::Message + 'static, U: prost::Message + Default + 'static>()
-> tonic::codec::ProstCodec<T, U> {
    tonic::codec::ProstCodec::default()
}

#[tokio::test]
async fn oversized_requests_are_refused_as_resource_exhausted() {
    let server = TestServer::start_with(|c| {
        c.max_message_bytes = 64 * 1024;
        c.max_events_per_request = 10;
    })
    .await;
    let mut client = family_of_four(&server, "fam-big").await;
    let err = client
        .append_events(append("fam-big", any(), vec![build::note("mother", &"x".repeat(100 * 1024))]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("too large"), "{}", err.message());

    let many = (0..11).map(|i| build::note("mother", &i.to_string())).collect();
    let err = client.append_events(append("fam-big", any(), many)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("at most 10"), "{}", err.message());
    // The connection is still usable and nothing was written.
    let ok = client.append_events(append("fam-big", exact(3), vec![build::note("mother", "klein")])).await;
    assert_eq!(ok.unwrap().into_inner().stream_revision, 4);
    server.stop().await;
}

#[tokio::test]
async fn health_reports_serving_and_reflection_lists_the_api() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = TestServer::start().await;
    // Health needs no client certificate, so load balancers and probes can use it.
    let channel = server.channel(None).await;
    for service in ["", "gezinsdossier.v1.CaseService"] {
        let status = HealthClient::new(channel.clone())
            .check(HealthCheckRequest { service: service.into() })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"gezinsdossier.v1.CaseService".to_string()), "{names:?}");

    // The older v1alpha protocol answers too (grpcio-reflection speaks only that).
    use tonic_reflection::pb::v1alpha;
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut responses = v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel(None).await)
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a v1alpha service list");
    };
    assert!(list.service.iter().any(|s| s.name == "gezinsdossier.v1.AuditService"), "{:?}", list.service);
    server.stop().await;
}

/// Graceful shutdown finishes in-flight work: every append the server acknowledged is in
/// the store afterwards, and every other one failed cleanly without a partial write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_commits_every_acknowledged_append() {
    use gezinsdossier_ledger::envelope::StreamId;
    use gezinsdossier_ledger::store::EventStore;
    let server = TestServer::start().await;
    let client = family_of_four(&server, "fam-stop").await;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0.. {
                let events = vec![build::note("mother", &format!("{t}-{i}")), build::note("child", "tweede")];
                let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
                match client.append_events(append("fam-stop", any(), events)).await {
                    Ok(_) => acked.extend(ids),
                    Err(_) => return acked,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let store = server.store.clone();
    server.stop().await;
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(acked.len() > 20, "the writers were cut off too early to prove anything ({} acked)", acked.len());
    let stored = store.read_stream(&StreamId::new("family-fam-stop").unwrap(), 0, 1_000_000).await.unwrap();
    gezinsdossier_ledger::chain::verify_stream(&stored).unwrap();
    assert_eq!((stored.len() - 4) % 2, 0, "a request was half written");
    let ids: std::collections::HashSet<String> = stored.iter().map(|e| e.event_id.to_string()).collect();
    assert!(acked.iter().all(|id| ids.contains(id)), "an acknowledged event is missing after shutdown");
}
