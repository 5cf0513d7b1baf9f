//! Rectification (AVG art. 16) and telling earlier recipients (art. 19), over real gRPC: only
//! the author corrects, a correction replaces the original in every view, a retraction
//! stops all disclosure, and every organisation that received the original gets a notice it
//! can acknowledge. The parents' report says what was corrected and who was told.

use crate::consent_dossier::{FAMILY, dossier_request, family, grant};
use crate::support::build::{self, any, append};
use crate::support::{GI, Professional, TestServer, VGGZ, YOUTH_CARE};
use gezinsdossier_ledger::chain::verify_stream;
use gezinsdossier_ledger::disclosure::AccessLogEvent;
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::notice_service_client::NoticeServiceClient;
use pb::InformationCategory as C;
use pb::case_event::Kind;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Notices = NoticeServiceClient<InterceptedService<Channel, Professional>>;

async fn notices(server: &TestServer, org: &str) -> Notices {
    NoticeServiceClient::with_interceptor(
        server.channel(Some(org)).await,
        server.professional(org, "p-1", "casusregisseur"),
    )
}

fn correction(corrects: &str, replacement: Option<&str>) -> pb::CaseEvent {
    let replacement = replacement.map(|text| pb::CorrectedContent {
        kind: Some(pb::corrected_content::Kind::Note(pb::Note { text: text.into() })),
    });
    build::event(
        &["mother"],
        &[C::TreatmentNotes],
        Kind::Correction(pb::Correction {
            corrects_event_id: corrects.into(),
            reason: "Verkeerde dosis genoteerd".into(),
            replacement,
        }),
    )
}

pub(crate) fn note_texts(d: &pb::Dossier) -> Vec<String> {
    d.timeline
        .iter()
        .filter_map(|i| match i.event.as_ref()?.kind.as_ref()? {
            Kind::Note(n) => Some(n.text.clone()),
            _ => None,
        })
        .collect()
}

async fn list(client: &mut Notices, direction: pb::NoticeDirection, include_acknowledged: bool) -> Vec<pb::Notice> {
    let request =
        pb::ListNoticesRequest { family_id: FAMILY.into(), direction: direction as i32, include_acknowledged };
    client.list_notices(request).await.unwrap().into_inner().notices
}

#[tokio::test]
async fn only_the_author_corrects_and_every_earlier_recipient_is_told_avg_16_and_19() {
    let server = TestServer::start().await;
    family(&server).await;
    // Youth care receives the mother's treatment notes under her consent; the GI does not.
    let mut youth_consent = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let consent = grant("c-notes", "mother", &[C::TreatmentNotes], YOUTH_CARE, pb::Purpose::Care, &["mother"]);
    youth_consent.grant_consent(consent).await.unwrap();
    let mut youth = server.dossier_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let before = youth.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(note_texts(&before).contains(&"Medicatie aangepast".to_string()), "{:?}", note_texts(&before));
    let note_id = before
        .timeline
        .iter()
        .find(|i| matches!(i.event.as_ref().and_then(|e| e.kind.as_ref()), Some(Kind::Note(n)) if n.text == "Medicatie aangepast"))
        .unwrap()
        .event_id
        .clone();

    // Youth care may not correct the v-ggz's note: refused, recorded, nothing written.
    let events_before = server.family_events(FAMILY).await.len();
    let mut youth_case = server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let err =
        youth_case.append_events(append(FAMILY, any(), vec![correction(&note_id, Some("Anders"))])).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("only the organisation that wrote an event"), "{}", err.message());
    assert_eq!(server.family_events(FAMILY).await.len(), events_before);
    assert!(server.access_log(FAMILY).await.iter().any(|e| matches!(e,
        AccessLogEvent::FunctionRefused(f) if f.function.as_str() == "correct_event" && f.caller.organisation_id == YOUTH_CARE)));

    // The v-ggz corrects it: youth care sees the corrected text in place of the original.
    let mut vggz_case = server.case_client(VGGZ, "ggz-7", "psychiater").await;
    let fix = correction(&note_id, Some("Medicatie verlaagd"));
    let fix_id = fix.event_id.clone();
    let request = append(FAMILY, any(), vec![fix]);
    vggz_case.append_events(request.clone()).await.unwrap();
    let after = youth.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(note_texts(&after).contains(&"Medicatie verlaagd".to_string()), "{:?}", note_texts(&after));
    assert!(!note_texts(&after).contains(&"Medicatie aangepast".to_string()));
    let item = after.timeline.iter().find(|i| i.event_id == note_id).expect("the item keeps its id");
    assert_eq!(item.corrected_by_event_id, fix_id);
    assert!(item.corrected_at.is_some());
    assert!(after.timeline.iter().all(|i| i.event_id != fix_id), "the correction is no separate item");
    #[allow(deprecated)]
    let superseded = after.timeline.iter().any(|i| !i.superseded_by_event_id.is_empty());
    assert!(!superseded, "nobody has to filter superseded items");

    // Art. 19: youth care received the original, so it has one open notice; the author sees
    // it open; the GI, which received nothing, has none.
    let mut youth_notices = notices(&server, YOUTH_CARE).await;
    let open = list(&mut youth_notices, pb::NoticeDirection::Received, false).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(
        (open[0].kind, open[0].about_event_id.as_str(), open[0].cause_event_id.as_str()),
        (pb::NoticeKind::Correction as i32, note_id.as_str(), fix_id.as_str())
    );
    assert_eq!(open[0].from_organisation_id, VGGZ);
    let mut vggz_notices = notices(&server, VGGZ).await;
    assert_eq!(list(&mut vggz_notices, pb::NoticeDirection::Sent, false).await.len(), 1);
    let mut gi_notices = notices(&server, GI).await;
    assert!(list(&mut gi_notices, pb::NoticeDirection::Received, true).await.is_empty());

    // A retried append writes the notice once.
    assert!(vggz_case.append_events(request).await.unwrap().into_inner().deduplicated);
    assert_eq!(list(&mut youth_notices, pb::NoticeDirection::Received, true).await.len(), 1);

    // Only the recipient acknowledges; once is enough.
    let ack = |id: &str| pb::AcknowledgeNoticeRequest { family_id: FAMILY.into(), notice_id: id.into() };
    let err = gi_notices.acknowledge_notice(ack(&open[0].notice_id)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = gi_notices.acknowledge_notice(ack(&build::id())).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let first = youth_notices.acknowledge_notice(ack(&open[0].notice_id)).await.unwrap().into_inner();
    assert!(!first.already_acknowledged && !first.event_id.is_empty());
    let again = youth_notices.acknowledge_notice(ack(&open[0].notice_id)).await.unwrap().into_inner();
    assert!(again.already_acknowledged);
    assert!(list(&mut vggz_notices, pb::NoticeDirection::Sent, false).await.is_empty(), "no longer open");
    let done = list(&mut vggz_notices, pb::NoticeDirection::Sent, true).await;
    assert!(done[0].acknowledged_at.is_some());

    // A retraction stops all disclosure, to everyone, the author's own view included; the
    // events stay in the log and their chain verifies.
    vggz_case.append_events(append(FAMILY, any(), vec![correction(&note_id, None)])).await.unwrap();
    let retracted = youth.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(retracted.timeline.iter().all(|i| i.event_id != note_id), "{:?}", note_texts(&retracted));
    let mut vggz = server.dossier_client(VGGZ, "ggz-7", "psychiater").await;
    let own = vggz.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(own.timeline.iter().all(|i| i.event_id != note_id));
    let stored = server.family_events(FAMILY).await;
    assert!(stored.iter().any(|e| e.event_id.to_string() == note_id));
    verify_stream(&stored).unwrap();
    let open = list(&mut youth_notices, pb::NoticeDirection::Received, false).await;
    assert_eq!(open.iter().map(|n| n.kind).collect::<Vec<_>>(), vec![pb::NoticeKind::Retraction as i32]);

    // The mother's report says what was corrected and who was told.
    let report = server.member_report(FAMILY, "mother", "mother").await;
    let lines: Vec<(bool, Vec<String>)> =
        report.corrections.iter().map(|c| (c.retraction, c.told_organisation_names.clone())).collect();
    let youth_name = YOUTH_CARE.to_uppercase();
    assert_eq!(lines, vec![(false, vec![youth_name.clone()]), (true, vec![youth_name.clone()])]);
    assert!(report.html.contains(&format!("Op de hoogte gebracht: {youth_name}")), "{}", report.html);
    server.stop().await;
}
