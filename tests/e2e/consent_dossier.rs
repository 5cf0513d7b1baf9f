//! The consent ledger and the gezinsdossier over real gRPC, with three organisations: a
//! v-ggz (adult mental health), a youth care provider and a GI (child protection).

use crate::support::build::{self, any, append};
use crate::support::{ConsentClient, DossierClient, GI, TestServer, VGGZ, YOUTH_CARE};
use chrono::{Datelike, Duration, NaiveDate, Utc};
use gezinsdossier_ledger::clock::Clock;
use gezinsdossier_ledger::codec::FamilyEvent;
use gezinsdossier_ledger::consent::{Basis, ConsentEvent, LegalBasisKind};
use gezinsdossier_ledger::disclosure::AccessLogEvent;
use gezinsdossier_ledger::store::faulty::Fault;
use gezinsdossier_proto::v1 as pb;
use pb::InformationCategory as C;
use pb::case_event::Kind;
use prost::Message;
use tonic::Code;

pub(crate) const FAMILY: &str = "fam-dossier";
const DIAGNOSIS_TEXT: &str = "Bipolaire stoornis type II";

/// A family registered by youth care: mother and father (joint gezag), a 13-year-old and a
/// 6-year-old. V-ggz treats the mother; youth care keeps a gezinsplan for mother and child
/// and a plan for the child alone.
pub(crate) async fn family(server: &TestServer) {
    let today = server.clock.now_date();
    let mut youth = server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let mut events = vec![
        build::parent("mother"),
        build::parent("father"),
        build::child("teen", build::date(today.year() - 13, 1, 1), &["mother", "father"]),
        build::child("child", build::date(today.year() - 6, 1, 1), &["mother", "father"]),
    ];
    events.push(plan(&["mother", "child"], "gezinsplan-1", pb::PlanKind::Gezinsplan, "Samen werken aan rust thuis"));
    events.push(plan(&["child"], "kindplan-1", pb::PlanKind::Behandelplan, "Speltherapie voor het kind"));
    events.push(build::event(&["teen"], &[C::Plan], Kind::Note(pb::Note { text: "Gesprek met de tiener".into() })));
    youth.append_events(append(FAMILY, build::no_stream(), events)).await.expect("family");

    let mut vggz = server.case_client(VGGZ, "ggz-7", "psychiater").await;
    let treatment = vec![
        build::event(
            &["mother"],
            &[C::Involvement, C::MentalHealthDiagnosis],
            Kind::Intake(pb::Intake { summary: DIAGNOSIS_TEXT.into() }),
        ),
        build::event(&["mother"], &[C::TreatmentNotes], Kind::Note(pb::Note { text: "Medicatie aangepast".into() })),
    ];
    vggz.append_events(append(FAMILY, any(), treatment)).await.expect("treatment");
}

fn plan(subjects: &[&str], id: &str, kind: pb::PlanKind, summary: &str) -> pb::CaseEvent {
    build::event(
        subjects,
        &[C::Plan],
        Kind::PlanAgreed(pb::PlanAgreed {
            plan_kind: kind as i32,
            plan_id: id.into(),
            summary: summary.into(),
            ..Default::default()
        }),
    )
}

/// The GI imposes an OTS (`ots-1`) over the 6-year-old, from today.
pub(crate) async fn impose_ots(server: &TestServer) {
    let today = server.clock.now_date();
    let mut gi_case = server.case_client(GI, "gv-3", "gezinsvoogd").await;
    let measure = build::event(
        &["child"],
        &[C::ChildProtection],
        Kind::MeasureImposed(pb::MeasureImposed {
            measure_id: "ots-1".into(),
            measure: pb::MeasureKind::Ots as i32,
            child_member_id: "child".into(),
            certified_institution_id: GI.into(),
            valid_from: Some(build::date(today.year(), today.month() as i32, today.day() as i32)),
            valid_until: None,
        }),
    );
    gi_case.append_events(append(FAMILY, any(), vec![measure])).await.unwrap();
}

fn to_org(org: &str) -> pb::Recipient {
    pb::Recipient { recipient: Some(pb::recipient::Recipient::OrganisationId(org.into())) }
}

pub(crate) fn grant(
    consent_id: &str,
    subject: &str,
    categories: &[C],
    to: &str,
    purpose: pb::Purpose,
    given_by: &[&str],
) -> pb::GrantConsentRequest {
    pb::GrantConsentRequest {
        family_id: FAMILY.into(),
        event_id: build::id(),
        consent_id: consent_id.into(),
        subject_member_id: subject.into(),
        categories: categories.iter().map(|c| *c as i32).collect(),
        recipients: vec![to_org(to)],
        purpose: purpose as i32,
        valid_from: None,
        valid_until: None,
        given_by_member_ids: given_by.iter().map(|s| s.to_string()).collect(),
        method: Some(pb::ConsentMethod {
            method: Some(pb::consent_method::Method::SignedFormReference("form-1".into())),
        }),
        requested_reason: "Afstemming van de hulp".into(),
        given_by_guardian: false,
    }
}

pub(crate) fn dossier_request(purpose: pb::Purpose) -> pb::GetDossierRequest {
    pb::GetDossierRequest { family_id: FAMILY.into(), purpose: purpose as i32, break_the_glass: None }
}

/// Youth care records the family's consents (it registered the family and collects them);
/// the GI asks for its view.
async fn clients(server: &TestServer) -> (ConsentClient, DossierClient) {
    (
        server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await,
        server.dossier_client(GI, "gv-3", "gezinsvoogd").await,
    )
}

/// The GI's own dry runs: it takes part once a consent names it.
async fn gi_checks(server: &TestServer) -> ConsentClient {
    server.consent_client(GI, "gv-3", "gezinsvoogd").await
}

fn check(subject: &str, category: C, purpose: pb::Purpose) -> pb::CheckAccessRequest {
    pb::CheckAccessRequest {
        family_id: FAMILY.into(),
        subject_member_id: subject.into(),
        category: category as i32,
        purpose: purpose as i32,
        at: None,
    }
}

pub(crate) fn texts(d: &pb::Dossier) -> Vec<String> {
    d.timeline
        .iter()
        .filter_map(|i| match i.event.as_ref()?.kind.as_ref()? {
            Kind::PlanAgreed(p) => Some(p.summary.clone()),
            Kind::Note(n) => Some(n.text.clone()),
            Kind::Intake(i) => Some(i.summary.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn without_consent_the_request_is_denied_and_the_refusal_recorded() {
    let server = TestServer::start().await;
    family(&server).await;
    let (_, mut dossier) = clients(&server).await;
    let err = dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let log = server.access_log(FAMILY).await;
    let [AccessLogEvent::Refused(refusal)] = log.as_slice() else { panic!("expected one refusal, got {log:?}") };
    assert_eq!(refusal.requester.organisation_id, GI);
    assert_eq!(refusal.family_revision, Some(8));

    // An unknown family is NOT_FOUND, and nothing leaks about it.
    let mut other = dossier_request(pb::Purpose::Care);
    other.family_id = "no-such-family".into();
    assert_eq!(dossier.get_dossier(other).await.unwrap_err().code(), Code::NotFound);
    server.stop().await;
}

#[tokio::test]
async fn consent_for_plan_only_shows_the_plan_but_neither_the_diagnosis_nor_the_vggz_treatment() {
    let server = TestServer::start().await;
    family(&server).await;
    let (mut consent, mut dossier) = clients(&server).await;
    consent.grant_consent(grant("c-mother", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"])).await.unwrap();
    consent
        .grant_consent(grant("c-child", "child", &[C::Plan], GI, pb::Purpose::Care, &["mother", "father"]))
        .await
        .unwrap();
    let d = dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    assert_eq!(texts(&d), vec!["Samen werken aan rust thuis", "Speltherapie voor het kind"]);
    assert_eq!(d.plans.len(), 2);
    assert!(d.members.is_empty(), "identity was not consented: {:?}", d.members);
    // Not the diagnosis, not the treatment notes, and not even that v-ggz is involved:
    // the whole response is free of the v-ggz organisation and its data.
    let bytes = d.encode_to_vec();
    for secret in [VGGZ.as_bytes(), DIAGNOSIS_TEXT.as_bytes(), b"Medicatie"] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret), "{} leaked", String::from_utf8_lossy(secret));
    }
    assert!(d.roster.is_empty(), "involvement was not consented: {:?}", d.roster);
    assert!(d.timeline.iter().all(|i| i.author_organisation_id.is_empty()));
    let disclosed: Vec<_> = d.disclosed.iter().map(|c| (c.subject_member_id.as_str(), c.category)).collect();
    assert_eq!(disclosed, vec![("child", C::Plan as i32), ("mother", C::Plan as i32)]);
    assert!(!d.review_required);
    server.stop().await;
}

#[tokio::test]
async fn a_child_of_12_to_15_must_agree_as_well_as_the_parents() {
    let server = TestServer::start().await;
    family(&server).await;
    let (mut consent, mut dossier) = clients(&server).await;
    consent
        .grant_consent(grant("c-teen", "teen", &[C::Plan], GI, pb::Purpose::Care, &["mother", "father"]))
        .await
        .unwrap();
    let answer =
        gi_checks(&server).await.check_access(check("teen", C::Plan, pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(!answer.granted);
    let incomplete = answer.reasons.iter().find(|r| r.consent_id == "c-teen").expect("a reason about c-teen");
    assert!(incomplete.explanation.contains("incomplete"), "{incomplete:?}");
    assert_eq!(incomplete.must_consent_member_ids, vec!["teen"]);
    // A member the family does not have is a bad request, not a "no".
    let unknown = gi_checks(&server).await.check_access(check("nobody", C::Plan, pb::Purpose::Care)).await;
    let unknown = unknown.unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(
        unknown.message().starts_with("subject_member_id: no member") && unknown.message().len() < 100,
        "{}",
        unknown.message()
    );
    // The parents' consent alone grants nothing: no data, a refusal.
    assert_eq!(
        dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    consent
        .add_agreement(pb::AddAgreementRequest {
            family_id: FAMILY.into(),
            event_id: build::id(),
            consent_id: "c-teen".into(),
            given_by_member_id: "teen".into(),
            method: Some(pb::ConsentMethod {
                method: Some(pb::consent_method::Method::VerbalRecordedByProfessionalId("gv-3".into())),
            }),
            by_guardian: false,
        })
        .await
        .unwrap();
    let answer =
        gi_checks(&server).await.check_access(check("teen", C::Plan, pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(answer.granted, "{answer:?}");
    assert_eq!(answer.basis.unwrap().basis, Some(pb::disclosure_basis::Basis::ConsentId("c-teen".into())));
    let d = dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    assert_eq!(texts(&d), vec!["Gesprek met de tiener"]);
    server.stop().await;
}

#[tokio::test]
async fn with_joint_gezag_one_parent_refusing_is_a_refusal() {
    let server = TestServer::start().await;
    family(&server).await;
    let (mut consent, mut dossier) = clients(&server).await;
    consent.grant_consent(grant("c-child", "child", &[C::Plan], GI, pb::Purpose::Care, &["mother"])).await.unwrap();
    consent
        .record_refusal(pb::RecordRefusalRequest {
            family_id: FAMILY.into(),
            event_id: build::id(),
            consent_id: "c-child".into(),
            refused_by_member_id: "father".into(),
            reason: "wil eerst een gesprek".into(),
            by_guardian: false,
        })
        .await
        .unwrap();
    let answer =
        gi_checks(&server).await.check_access(check("child", C::Plan, pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(!answer.granted);
    assert!(answer.reasons.iter().any(|r| r.explanation.contains("refused by father")), "{:?}", answer.reasons);
    assert_eq!(
        dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let listed = consent
        .list_consents(pb::ListConsentsRequest {
            family_id: FAMILY.into(),
            subject_member_id: "child".into(),
            at: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.consents.len(), 1);
    assert_eq!(listed.consents[0].state, pb::ConsentState::Refused as i32);
    server.stop().await;
}

#[tokio::test]
async fn when_the_child_turns_16_the_parents_earlier_consent_stops_working() {
    let server = TestServer::start().await;
    // Born 16 years ago tomorrow: 15 today.
    let tomorrow = server.clock.now_date() + Duration::days(1);
    let born = NaiveDate::from_ymd_opt(tomorrow.year() - 16, tomorrow.month(), tomorrow.day().min(28)).unwrap();
    let mut youth = server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let events = vec![
        build::parent("mother"),
        build::parent("father"),
        build::child("young", build::date(born.year(), born.month() as i32, born.day() as i32), &["mother", "father"]),
        build::event(&["young"], &[C::Plan], Kind::Note(pb::Note { text: "Toekomstplan".into() })),
    ];
    youth.append_events(append(FAMILY, build::no_stream(), events)).await.unwrap();
    let (mut consent, mut dossier) = clients(&server).await;
    consent
        .grant_consent(grant("c-young", "young", &[C::Plan], GI, pb::Purpose::Care, &["mother", "father", "young"]))
        .await
        .unwrap();
    assert!(dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.is_ok());

    server.advance(Duration::days(2));
    let answer =
        gi_checks(&server).await.check_access(check("young", C::Plan, pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(!answer.granted);
    let reason = answer.reasons.iter().find(|r| r.consent_id == "c-young").expect("reason about c-young");
    assert!(reason.explanation.contains("young_person_16_plus"), "{reason:?}");
    assert_eq!(reason.must_consent_member_ids, vec!["young"]);
    let refused = dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("young_person_16_plus rule applies now: young must consent"),
        "{}",
        refused.message()
    );

    // Parents can no longer consent for a 16-year-old; the young person can.
    let err = consent
        .grant_consent(grant("c-parents", "young", &[C::Plan], GI, pb::Purpose::Care, &["mother"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("given_by_member_ids:"), "{}", err.message());
    consent.grant_consent(grant("c-own", "young", &[C::Plan], GI, pb::Purpose::Care, &["young"])).await.unwrap();
    let d = dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    assert_eq!(texts(&d), vec!["Toekomstplan"]);
    // The dossier itself says the parents' consent stopped working and why.
    let notice = d.notices.iter().find(|n| n.consent_id == "c-young").expect("a notice about c-young");
    assert_eq!(notice.must_consent_member_ids, vec!["young"]);
    server.stop().await;
}

#[tokio::test]
async fn a_withdrawn_consent_denies_the_next_request() {
    let server = TestServer::start().await;
    family(&server).await;
    let (mut consent, mut dossier) = clients(&server).await;
    consent.grant_consent(grant("c-mother", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"])).await.unwrap();
    assert!(dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.is_ok());
    consent
        .withdraw_consent(pb::WithdrawConsentRequest {
            family_id: FAMILY.into(),
            event_id: build::id(),
            consent_id: "c-mother".into(),
            withdrawn_by_member_id: "mother".into(),
            reason: String::new(),
            by_guardian: false,
        })
        .await
        .unwrap();
    assert_eq!(
        dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    server.stop().await;
}

#[tokio::test]
async fn an_expired_consent_denies() {
    let server = TestServer::start().await;
    family(&server).await;
    let (mut consent, mut dossier) = clients(&server).await;
    let mut request = grant("c-mother", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"]);
    request.valid_until =
        Some(prost_types::Timestamp { seconds: (server.clock.now() + Duration::hours(1)).timestamp(), nanos: 0 });
    consent.grant_consent(request).await.unwrap();
    assert!(dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.is_ok());
    server.advance(Duration::hours(2));
    let answer =
        gi_checks(&server).await.check_access(check("mother", C::Plan, pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(answer.reasons.iter().any(|r| r.explanation.contains("expired")), "{:?}", answer.reasons);
    assert_eq!(
        dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    server.stop().await;
}

#[tokio::test]
async fn under_an_ots_the_gi_sees_what_the_measure_covers_without_consent_and_it_is_flagged() {
    let server = TestServer::start().await;
    family(&server).await;
    impose_ots(&server).await;
    let (_, mut dossier) = clients(&server).await;
    let mut consent = gi_checks(&server).await;
    let basis = |kind: pb::LegalBasisKind| pb::RecordLegalBasisRequest {
        family_id: FAMILY.into(),
        event_id: build::id(),
        basis_id: "ots-basis".into(),
        kind: kind as i32,
        justification: "Uitvoering OTS, art. 1:255 BW".into(),
        measure_id: "ots-1".into(),
        subject_member_ids: vec!["child".into()],
        categories: vec![C::Plan as i32, C::Identity as i32],
        recipients: vec![to_org(GI)],
        valid_from: None,
        valid_until: None,
    };
    // Youth care may not record a child protection basis; the GI may.
    let mut youth_consent = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let err = youth_consent.record_legal_basis(basis(pb::LegalBasisKind::ChildProtectionMeasure)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    consent.record_legal_basis(basis(pb::LegalBasisKind::ChildProtectionMeasure)).await.unwrap();

    let d = dossier.get_dossier(dossier_request(pb::Purpose::ChildProtection)).await.unwrap().into_inner();
    // The child's own plan, not the gezinsplan that also concerns the mother.
    assert!(texts(&d).contains(&"Speltherapie voor het kind".to_string()), "{:?}", texts(&d));
    assert!(!texts(&d).contains(&"Samen werken aan rust thuis".to_string()));
    assert_eq!(d.members.iter().map(|m| m.member_id.as_str()).collect::<Vec<_>>(), vec!["child"]);
    assert!(d.review_required);
    assert!(d.disclosed.iter().all(|c| c.basis.as_ref().unwrap().review_required));
    let Some(AccessLogEvent::Disclosed(stored)) = server.access_log(FAMILY).await.pop() else {
        panic!("no disclosure")
    };
    assert!(stored.review_required);
    assert!(
        stored.shown["child"]
            .values()
            .all(|b| matches!(b, Basis::LegalBasis { kind: LegalBasisKind::ChildProtectionMeasure, .. }))
    );
    // For another purpose the measure basis does not apply: only the GI's own record shows.
    let other = dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(other.disclosed.is_empty());
    assert!(other.timeline.iter().all(|i| i.own_record), "{:?}", texts(&other));
    server.stop().await;
}

#[tokio::test]
async fn break_the_glass_grants_records_the_reason_and_is_flagged() {
    let server = TestServer::start().await;
    family(&server).await;
    let (_, mut dossier) = clients(&server).await;
    let mut request = dossier_request(pb::Purpose::SafetyAssessment);
    request.break_the_glass = Some(pb::BreakTheGlass { reason: String::new() });
    let err = dossier.get_dossier(request.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("break_the_glass.reason:"), "{}", err.message());

    request.break_the_glass = Some(pb::BreakTheGlass { reason: "Kind alleen thuis, moeder onbereikbaar".into() });
    let d = dossier.get_dossier(request).await.unwrap().into_inner();
    assert!(texts(&d).contains(&DIAGNOSIS_TEXT.to_string()), "break-the-glass opens the whole record");
    assert!(d.review_required);
    // The disclosure, then the notices to the organisations whose data was seen.
    let log = server.access_log(FAMILY).await;
    let Some(stored) = log.iter().rev().find_map(|e| match e {
        AccessLogEvent::Disclosed(d) => Some(d.clone()),
        _ => None,
    }) else {
        panic!("no disclosure")
    };
    assert!(log.iter().any(|e| matches!(e, AccessLogEvent::Notified(n) if n.recipient_organisation_id == VGGZ)));
    assert_eq!(stored.break_the_glass.as_deref(), Some("Kind alleen thuis, moeder onbereikbaar"));
    assert!(stored.review_required);
    let family_events = server.family_events(FAMILY).await;
    let last = family_events.last().unwrap();
    assert_eq!(last.event_type, "consent.legal_basis");
    let opened = server.open(std::slice::from_ref(last)).await.remove(0);
    assert!(
        matches!(&opened, Some(FamilyEvent::Consent(r)) if matches!(&r.event, ConsentEvent::LegalBasis(b) if b.kind == LegalBasisKind::BreakTheGlass)),
        "{opened:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_stored_disclosure_holds_exactly_the_categories_and_revision_shown() {
    let server = TestServer::start().await;
    family(&server).await;
    let (mut consent, mut dossier) = clients(&server).await;
    consent
        .grant_consent(grant(
            "c-mother",
            "mother",
            &[C::Plan, C::Identity, C::Involvement],
            GI,
            pb::Purpose::Care,
            &["mother"],
        ))
        .await
        .unwrap();
    consent
        .grant_consent(grant("c-child", "child", &[C::Plan], GI, pb::Purpose::Care, &["mother", "father"]))
        .await
        .unwrap();
    let d = dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    let Some(AccessLogEvent::Disclosed(stored)) = server.access_log(FAMILY).await.pop() else {
        panic!("no disclosure")
    };
    let family_revision = server.family_events(FAMILY).await.last().unwrap().revision;
    assert_eq!(stored.family_revision, Some(family_revision));
    assert_eq!(d.family_revision, family_revision);

    // What the response shows, per subject and category, from the items themselves.
    let mut shown: std::collections::BTreeSet<(String, i32)> = Default::default();
    for item in d.timeline.iter().filter(|i| !i.own_record) {
        let event = item.event.as_ref().unwrap();
        for s in &event.subject_member_ids {
            for c in &event.categories {
                shown.insert((s.clone(), *c));
            }
            if !item.author_organisation_id.is_empty() {
                shown.insert((s.clone(), C::Involvement as i32));
            }
        }
    }
    let stored_pairs: std::collections::BTreeSet<(String, i32)> = stored
        .shown
        .iter()
        .flat_map(|(s, cats)| {
            cats.keys().map(move |c| (s.clone(), gezinsdossier_proto::convert::outbound::category(*c)))
        })
        .collect();
    assert_eq!(stored_pairs, shown);
    let reported: std::collections::BTreeSet<(String, i32)> =
        d.disclosed.iter().map(|c| (c.subject_member_id.clone(), c.category)).collect();
    assert_eq!(reported, shown);
    // Each basis names the consent event as stored, with its hash.
    let grant_event =
        server.family_events(FAMILY).await.into_iter().find(|e| e.event_type == "consent.granted").unwrap();
    let Basis::Consent { event_id, event_hash, .. } =
        &stored.shown["mother"][&gezinsdossier_ledger::case::InformationCategory::Plan]
    else {
        panic!("mother's plan must be disclosed under a consent")
    };
    assert_eq!((*event_id, event_hash.as_str()), (grant_event.event_id, grant_event.hash.to_hex().as_str()));
    server.stop().await;
}

#[tokio::test]
async fn when_the_disclosure_cannot_be_committed_no_data_is_returned() {
    let server = TestServer::start().await;
    family(&server).await;
    let (mut consent, mut dossier) = clients(&server).await;
    consent.grant_consent(grant("c-mother", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"])).await.unwrap();
    for fault in [Fault::BeforeWrite, Fault::AfterWrite] {
        server.store.fail_appends("disclosures-", fault);
        let err = dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{fault:?}: {err:?}");
        assert!(!err.message().contains("Samen"), "no data in the error");
    }
    server.store.clear();
    assert!(dossier.get_dossier(dossier_request(pb::Purpose::Care)).await.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn check_access_is_logged_and_discloses_nothing() {
    let server = TestServer::start().await;
    family(&server).await;
    let (mut consent, _) = clients(&server).await;
    consent.grant_consent(grant("c-plan", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"])).await.unwrap();
    let answer = gi_checks(&server)
        .await
        .check_access(check("mother", C::MentalHealthDiagnosis, pb::Purpose::Care))
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.granted);
    assert!(answer.reasons.iter().any(|r| r.must_consent_member_ids == vec!["mother"]), "{:?}", answer.reasons);
    let log = server.access_log(FAMILY).await;
    assert!(matches!(log.as_slice(), [AccessLogEvent::Checked(c)] if c.granted.is_none() && c.subject == "mother"));
    server.stop().await;
}

#[tokio::test]
async fn a_privacy_officer_can_rebuild_what_a_requester_could_see_at_a_past_time() {
    let server = TestServer::start().await;
    family(&server).await;
    let before = server.clock.now();
    server.advance(Duration::minutes(5));
    let (mut consent, _) = clients(&server).await;
    consent.grant_consent(grant("c-mother", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"])).await.unwrap();
    consent
        .grant_consent(grant("c-child", "child", &[C::Plan], GI, pb::Purpose::Care, &["mother", "father"]))
        .await
        .unwrap();
    server.advance(Duration::minutes(5));

    let investigate = |at: chrono::DateTime<Utc>| pb::InvestigateDossierRequest {
        family_id: FAMILY.into(),
        organisation_id: GI.into(),
        role: pb::ProfessionalRole::Gezinsvoogd as i32,
        professional_id: "gv-3".into(),
        purpose: pb::Purpose::Care as i32,
        as_of: Some(gezinsdossier_proto::convert::outbound::timestamp(at)),
    };
    // A privacy office investigates only requesters that received its organisation's data.
    let mut officer = server.dossier_client(YOUTH_CARE, "fg-1", "privacy_officer").await;
    assert_eq!(officer.investigate_dossier(investigate(before)).await.unwrap_err().code(), Code::PermissionDenied);
    server
        .dossier_client(GI, "gv-3", "gezinsvoogd")
        .await
        .get_dossier(dossier_request(pb::Purpose::Care))
        .await
        .unwrap();
    let mut not_officer = server.dossier_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    assert_eq!(not_officer.investigate_dossier(investigate(before)).await.unwrap_err().code(), Code::PermissionDenied);
    let then = officer.investigate_dossier(investigate(before)).await.unwrap().into_inner();
    assert!(then.timeline.is_empty());
    let now = officer.investigate_dossier(investigate(server.clock.now())).await.unwrap().into_inner();
    assert_eq!(texts(&now), vec!["Samen werken aan rust thuis", "Speltherapie voor het kind"]);
    // Logged as investigations, not as disclosures to the GI (its one disclosure is its own
    // request); both refusals are recorded.
    let log = server.access_log(FAMILY).await;
    assert_eq!(log.iter().filter(|e| matches!(e, AccessLogEvent::Investigated(_))).count(), 2);
    assert_eq!(log.iter().filter(|e| matches!(e, AccessLogEvent::Disclosed(_))).count(), 1);
    assert_eq!(log.iter().filter(|e| matches!(e, AccessLogEvent::FunctionRefused(_))).count(), 2);
    server.stop().await;
}

#[tokio::test]
async fn only_members_with_a_say_may_consent() {
    let server = TestServer::start().await;
    family(&server).await;
    let (mut consent, _) = clients(&server).await;
    // The teen cannot consent for the mother's data, nor the father alone for a missing member.
    let err =
        consent.grant_consent(grant("c1", "mother", &[C::Plan], GI, pb::Purpose::Care, &["teen"])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("given_by_member_ids:"), "{}", err.message());
    let err =
        consent.grant_consent(grant("c2", "nobody", &[C::Plan], GI, pb::Purpose::Care, &["father"])).await.unwrap_err();
    assert!(err.message().starts_with("subject_member_id:"), "{}", err.message());
    let err = consent.grant_consent(grant("c3", "mother", &[], GI, pb::Purpose::Care, &["mother"])).await.unwrap_err();
    assert!(err.message().starts_with("categories:"), "{}", err.message());
    let err = consent
        .grant_consent(grant("c4", "mother", &[C::Plan], GI, pb::Purpose::Unspecified, &["mother"]))
        .await
        .unwrap_err();
    assert!(err.message().starts_with("purpose:"), "{}", err.message());
    // Nothing was written by the refused grants.
    let listed = consent
        .list_consents(pb::ListConsentsRequest { family_id: FAMILY.into(), subject_member_id: String::new(), at: None })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.consents.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_consent_to_an_organisation_not_in_the_registry_is_refused() {
    let server = TestServer::start().await;
    family(&server).await;
    let (mut consent, _) = clients(&server).await;
    let typo = format!("jeugdbescherming-wst{}", "x".repeat(300));
    let err = consent.grant_consent(grant("c-typo", "mother", &[C::Plan], &typo, pb::Purpose::Care, &["mother"])).await;
    let err = err.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("recipients[0].organisation_id:"), "{}", err.message());
    assert!(err.message().len() < 160, "quotes only a prefix: {}", err.message());
    assert!(
        server.family_events(FAMILY).await.iter().all(|e| !e.event_type.starts_with("consent.")),
        "nothing written"
    );
}

#[tokio::test]
async fn client_chosen_ids_are_bounded_and_errors_quote_only_a_prefix() {
    let server = TestServer::start().await;
    family(&server).await;
    let (mut consent, _) = clients(&server).await;
    let cases = [
        ("consent_id", grant(&"c".repeat(10_000), "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"])),
        ("consent_id", grant("c met spatie", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"])),
        ("subject_member_id", grant("c-1", &"m".repeat(200), &[C::Plan], GI, pb::Purpose::Care, &["mother"])),
        ("given_by_member_ids[0]", grant("c-1", "mother", &[C::Plan], GI, pb::Purpose::Care, &["moeder\n"])),
    ];
    for (field, request) in cases {
        let err = consent.grant_consent(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(err.message().starts_with(&format!("{field}:")), "{field}: {}", err.message());
        assert!(err.message().len() < 200, "{field}: the message quotes a prefix only: {}", err.message());
    }
    let long_reason = pb::GrantConsentRequest {
        requested_reason: "r".repeat(convert_max_text() + 1),
        ..grant("c-2", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"])
    };
    let err = consent.grant_consent(long_reason).await.unwrap_err();
    assert!(err.message().starts_with("requested_reason:"), "{}", err.message());
    assert!(
        server.family_events(FAMILY).await.iter().all(|e| !e.event_type.starts_with("consent.")),
        "nothing written"
    );
}

fn convert_max_text() -> usize {
    gezinsdossier_proto::convert::MAX_TEXT_LEN
}
