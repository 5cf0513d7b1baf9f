//! Who may call what, as one table: every RPC that reaches family data or the log, called
//! by every kind of caller over real mTLS, and in `--insecure-dev`. Each cell names the
//! status the caller must get; every refusal must leave exactly one refusal event in the
//! ledger, and nothing else may leave one.
//!
//! The family (see `consent_dossier::family`) is registered by youth care; the v-ggz treats
//! the mother; the huisarts wrote one note. The wijkteam takes part in nothing.

use crate::consent_dossier::{FAMILY, dossier_request, family, grant};
use crate::support::build::{self, any, append};
use crate::support::{HUISARTS, Professional, TestServer, VEILIG_THUIS, VGGZ, WIJKTEAM, YOUTH_CARE};
use gezinsdossier_ledger::clock::Clock;
use gezinsdossier_ledger::codec::FamilyEvent;
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::access_report_service_client::AccessReportServiceClient;
use gezinsdossier_proto::v1::audit_service_client::AuditServiceClient;
use gezinsdossier_proto::v1::case_service_client::CaseServiceClient;
use gezinsdossier_proto::v1::consent_service_client::ConsentServiceClient;
use gezinsdossier_proto::v1::dossier_service_client::DossierServiceClient;
use gezinsdossier_proto::v1::feed_service_client::FeedServiceClient;
use gezinsdossier_proto::v1::log_service_client::LogServiceClient;
use gezinsdossier_proto::v1::notice_service_client::NoticeServiceClient;
use pb::InformationCategory as C;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// PERMISSION_DENIED, recorded as one refusal.
    Denied,
    /// UNAUTHENTICATED: no organisation was established, so there is nobody to record.
    Unauthenticated,
}
use Outcome::{Denied as D, Ok as Y, Unauthenticated as U};

/// The callers, one per column.
#[derive(Debug, Clone, Copy)]
enum Caller {
    /// The v-ggz's regiebehandelaar: takes part (it treats the mother).
    Involved,
    /// A wijkteam worker: the organisation takes part in nothing here.
    Uninvolved,
    /// The v-ggz's privacy officer (the registry grants the office).
    OfficerInvolved,
    /// The wijkteam's privacy officer (granted the office, but not part of this family).
    OfficerUninvolved,
    /// The huisarts claims `privacy_officer`; the registry grants it no office.
    OfficerWithoutFunction,
    /// The v-ggz's portal, the member logged in with DigiD Substantieel.
    Portal,
    /// The huisarts (takes part, not a portal) sending the same member metadata.
    NotPortal,
    /// The gateway's own certificate, forwarding nobody's.
    Gateway,
    /// `--insecure-dev`, claiming the wijkteam's privacy officer: no more than under mTLS.
    Dev,
}

impl Caller {
    fn metadata(self, server: &TestServer) -> (&'static str, Professional) {
        let (org, id, role) = match self {
            Self::Involved => (VGGZ, "ggz-1", "regiebehandelaar"),
            Self::Uninvolved => (WIJKTEAM, "wt-1", "wijkteam_medewerker"),
            Self::OfficerInvolved => (VGGZ, "fg-ggz", "privacy_officer"),
            Self::OfficerUninvolved | Self::Dev => (WIJKTEAM, "fg-wt", "privacy_officer"),
            Self::OfficerWithoutFunction => (HUISARTS, "fg-ha", "privacy_officer"),
            Self::Portal => (VGGZ, "portal", "regiebehandelaar"),
            Self::NotPortal => (HUISARTS, "ha-1", "huisarts"),
            Self::Gateway => ("gateway", "gw", "regiebehandelaar"),
        };
        let metadata = server.professional(org, id, role);
        match self {
            Self::Portal | Self::NotPortal => (org, metadata.member_authenticated_by("digid_substantieel")),
            _ => (org, metadata),
        }
    }
}

/// The rows: one RPC each, with what it needs prepared by a legitimate caller first.
#[derive(Debug, Clone, Copy)]
enum Call {
    GrantConsent,
    AddAgreement,
    RecordRefusal,
    WithdrawConsent,
    RecordLegalBasis,
    CheckAccess,
    ListConsents,
    GetDossier,
    InvestigateDossier,
    QueryFamilyAccessLog,
    QueryEveryAccessLog,
    RecordReview,
    GetAccessReport,
    GetLatestTreeHead,
    GetInclusionProof,
    GetConsistencyProof,
    GetEventBytes,
    ListNotices,
    AcknowledgeNotice,
    SubscribeFeed,
    AppendEvents,
}

/// The expected table. Columns: involved, uninvolved, officer involved, officer
/// uninvolved, officer without function, portal, not a portal, gateway, dev.
fn expected(call: Call) -> [Outcome; 9] {
    match call {
        // Consent writes and dry runs: care roles of organisations that take part.
        Call::GrantConsent
        | Call::AddAgreement
        | Call::RecordRefusal
        | Call::WithdrawConsent
        | Call::RecordLegalBasis
        | Call::CheckAccess => [Y, D, D, D, D, Y, Y, U, D],
        // The consents in force: also the privacy office of an organisation that takes part.
        Call::ListConsents => [Y, D, Y, D, D, Y, Y, U, D],
        // Open to care roles; the consent engine refuses the wijkteam (no basis).
        Call::GetDossier | Call::SubscribeFeed => [Y, D, D, D, D, Y, Y, U, D],
        // The privacy office, for its own organisation, in a family it takes part in.
        Call::InvestigateDossier | Call::QueryFamilyAccessLog | Call::RecordReview => [D, D, Y, D, D, D, D, U, D],
        // Across families the office sees only its own organisation's rows, none here.
        Call::QueryEveryAccessLog => [D, D, Y, Y, D, D, D, U, Y],
        // Only a registered portal, with the member authenticated substantially.
        Call::GetAccessReport => [D, D, D, D, D, Y, D, U, D],
        // Hashes are public to any authenticated caller.
        Call::GetLatestTreeHead | Call::GetInclusionProof | Call::GetConsistencyProof => [Y, Y, Y, Y, Y, Y, Y, U, Y],
        // An event's bytes: its author organisation, care role or privacy office.
        Call::GetEventBytes => [Y, D, Y, D, D, Y, D, U, D],
        // Each organisation's own notices; a privacy officer needs the office.
        Call::ListNotices => [Y, Y, Y, Y, D, Y, Y, U, Y],
        // Only the organisation a notice is addressed to (here the v-ggz).
        Call::AcknowledgeNotice => [Y, D, Y, D, D, Y, D, U, D],
        // Registering or joining a family is open to care roles (see the closing note).
        Call::AppendEvents => [Y, Y, D, D, D, Y, Y, U, D],
    }
}

const CALLS: [Call; 21] = [
    Call::GrantConsent,
    Call::AddAgreement,
    Call::RecordRefusal,
    Call::WithdrawConsent,
    Call::RecordLegalBasis,
    Call::CheckAccess,
    Call::ListConsents,
    Call::GetDossier,
    Call::InvestigateDossier,
    Call::QueryFamilyAccessLog,
    Call::QueryEveryAccessLog,
    Call::RecordReview,
    Call::GetAccessReport,
    Call::GetLatestTreeHead,
    Call::GetInclusionProof,
    Call::GetConsistencyProof,
    Call::GetEventBytes,
    Call::ListNotices,
    Call::SubscribeFeed,
    // After the views: it retracts an item to cause its notice.
    Call::AcknowledgeNotice,
    // Last: an append makes its organisation take part.
    Call::AppendEvents,
];

/// A family the matrix runs against: the shared test family, a note by the huisarts, and
/// the position of one of the v-ggz's events under a signed tree head.
struct Fixture<'a> {
    server: &'a TestServer,
    vggz_event: u64,
    notice_to_vggz: tokio::sync::OnceCell<String>,
}

impl<'a> Fixture<'a> {
    async fn new(server: &'a TestServer) -> Self {
        family(server).await;
        let mut huisarts = server.case_client(HUISARTS, "ha-1", "huisarts").await;
        huisarts
            .append_events(append(FAMILY, any(), vec![build::note("mother", "Verwezen naar de ggz")]))
            .await
            .unwrap();
        let events: Vec<_> = server
            .store
            .read_all(0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.stream.as_str().starts_with("family-"))
            .collect();
        let opened = server.open(&events).await;
        let vggz_event = events
            .iter()
            .zip(&opened)
            .find(|(_, o)| matches!(o, Some(FamilyEvent::Case(r)) if r.author.organisation_id == VGGZ))
            .expect("a v-ggz event")
            .0
            .position;
        Self { server, vggz_event, notice_to_vggz: tokio::sync::OnceCell::new() }
    }

    async fn refusals(&self) -> usize {
        let events = self.server.store.read_all(0, 100_000).await.unwrap();
        events.iter().filter(|e| matches!(e.event_type.as_str(), "access.refused" | "access.function_refused")).count()
    }

    /// A consent for the 6-year-old: agreed by both parents with gezag it is in force; by
    /// the mother alone it waits for the father.
    async fn consent_for_child(&self, given_by: &[&str]) -> String {
        let id = build::id();
        let request = grant(&id, "child", &[C::Plan], VGGZ, pb::Purpose::Care, given_by);
        self.server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await.grant_consent(request).await.unwrap();
        id
    }

    /// A notice addressed to the v-ggz: it receives youth care's plan for the child, which
    /// youth care then retracts.
    async fn notice_to_vggz(&self) -> String {
        let make = async || {
            self.consent_for_child(&["mother", "father"]).await;
            let mut vggz = self.server.dossier_client(VGGZ, "ggz-1", "regiebehandelaar").await;
            let view = vggz.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
            let plan = view.timeline.iter().find(|i| i.author_organisation_id == YOUTH_CARE || !i.own_record).unwrap();
            let retraction = build::event(
                &["child"],
                &[C::Plan],
                pb::case_event::Kind::Correction(pb::Correction {
                    corrects_event_id: plan.event_id.clone(),
                    reason: "Dubbel ingevoerd".into(),
                    replacement: None,
                }),
            );
            let mut youth = self.server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
            youth.append_events(append(FAMILY, any(), vec![retraction])).await.unwrap();
            let metadata = self.server.professional(VGGZ, "ggz-1", "regiebehandelaar");
            let mut notices = NoticeServiceClient::with_interceptor(self.server.channel(Some(VGGZ)).await, metadata);
            let request = pb::ListNoticesRequest { family_id: FAMILY.into(), ..Default::default() };
            notices.list_notices(request).await.unwrap().into_inner().notices[0].notice_id.clone()
        };
        self.notice_to_vggz.get_or_init(make).await.clone()
    }

    /// A break-the-glass view by the v-ggz: a disclosure waiting for review.
    async fn pending_review(&self) -> String {
        let mut request = dossier_request(pb::Purpose::SafetyAssessment);
        request.break_the_glass = Some(pb::BreakTheGlass { reason: "Kind alleen thuis".into() });
        let mut vggz = self.server.dossier_client(VGGZ, "ggz-1", "regiebehandelaar").await;
        vggz.get_dossier(request).await.unwrap().into_inner().disclosure_event_id
    }

    /// A signed tree head that covers the v-ggz's event.
    async fn signed_size(&self) -> u64 {
        let metadata = self.server.professional(VGGZ, "ggz-1", "regiebehandelaar");
        let mut log = LogServiceClient::with_interceptor(self.server.channel(Some(VGGZ)).await, metadata);
        for _ in 0..200 {
            if let Ok(head) = log.get_latest_tree_head(pb::GetLatestTreeHeadRequest::default()).await {
                let size = head.into_inner().size;
                if size > self.vggz_event {
                    return size;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no signed tree head covers position {}", self.vggz_event)
    }

    /// Prepares what `call` needs as a legitimate caller, then makes the call as `who`.
    async fn call(&self, call: Call, channel: Channel, who: Professional) -> Result<(), Status> {
        let consent = || ConsentServiceClient::with_interceptor(channel.clone(), who.clone());
        let dossier = || DossierServiceClient::with_interceptor(channel.clone(), who.clone());
        let audit = || AuditServiceClient::with_interceptor(channel.clone(), who.clone());
        let log = || LogServiceClient::with_interceptor(channel.clone(), who.clone());
        match call {
            Call::GrantConsent => {
                let request = grant(&build::id(), "mother", &[C::Plan], VGGZ, pb::Purpose::Care, &["mother"]);
                consent().grant_consent(request).await.map(drop)
            }
            Call::AddAgreement => {
                let consent_id = self.consent_for_child(&["mother"]).await;
                let request = pb::AddAgreementRequest {
                    family_id: FAMILY.into(),
                    event_id: build::id(),
                    consent_id,
                    given_by_member_id: "father".into(),
                    method: grant("x", "child", &[], VGGZ, pb::Purpose::Care, &[]).method,
                    by_guardian: false,
                };
                consent().add_agreement(request).await.map(drop)
            }
            Call::RecordRefusal => {
                let consent_id = self.consent_for_child(&["mother"]).await;
                let request = pb::RecordRefusalRequest {
                    family_id: FAMILY.into(),
                    event_id: build::id(),
                    consent_id,
                    refused_by_member_id: "father".into(),
                    reason: "Wil eerst een gesprek".into(),
                    by_guardian: false,
                };
                consent().record_refusal(request).await.map(drop)
            }
            Call::WithdrawConsent => {
                let consent_id = self.consent_for_child(&["mother", "father"]).await;
                let request = pb::WithdrawConsentRequest {
                    family_id: FAMILY.into(),
                    event_id: build::id(),
                    consent_id,
                    withdrawn_by_member_id: "mother".into(),
                    reason: "Niet meer nodig".into(),
                    by_guardian: false,
                };
                consent().withdraw_consent(request).await.map(drop)
            }
            Call::RecordLegalBasis => {
                let request = pb::RecordLegalBasisRequest {
                    family_id: FAMILY.into(),
                    event_id: build::id(),
                    basis_id: build::id(),
                    kind: pb::LegalBasisKind::Meldcode as i32,
                    justification: "Melding na stap 5 van de meldcode".into(),
                    measure_id: String::new(),
                    subject_member_ids: vec!["child".into()],
                    categories: vec![C::Plan as i32],
                    recipients: vec![pb::Recipient {
                        recipient: Some(pb::recipient::Recipient::OrganisationId(VEILIG_THUIS.into())),
                    }],
                    valid_from: None,
                    valid_until: None,
                };
                consent().record_legal_basis(request).await.map(drop)
            }
            Call::CheckAccess => {
                let request = pb::CheckAccessRequest {
                    family_id: FAMILY.into(),
                    subject_member_id: "mother".into(),
                    category: C::MentalHealthDiagnosis as i32,
                    purpose: pb::Purpose::Care as i32,
                    at: None,
                };
                consent().check_access(request).await.map(drop)
            }
            Call::ListConsents => {
                let request = pb::ListConsentsRequest { family_id: FAMILY.into(), ..Default::default() };
                consent().list_consents(request).await.map(drop)
            }
            Call::GetDossier => dossier().get_dossier(dossier_request(pb::Purpose::Care)).await.map(drop),
            Call::InvestigateDossier => {
                let request = pb::InvestigateDossierRequest {
                    family_id: FAMILY.into(),
                    organisation_id: VGGZ.into(),
                    role: pb::ProfessionalRole::Regiebehandelaar as i32,
                    professional_id: "ggz-1".into(),
                    purpose: pb::Purpose::Care as i32,
                    as_of: Some(gezinsdossier_proto::convert::outbound::timestamp(self.server.clock.now())),
                };
                dossier().investigate_dossier(request).await.map(drop)
            }
            Call::QueryFamilyAccessLog | Call::QueryEveryAccessLog => {
                let family_id = if matches!(call, Call::QueryFamilyAccessLog) { FAMILY } else { "" };
                let request = pb::QueryAccessLogRequest { family_id: family_id.into(), ..Default::default() };
                let mut stream = audit().query_access_log(request).await?.into_inner();
                while stream.message().await?.is_some() {}
                Ok(())
            }
            Call::RecordReview => {
                let disclosure_event_id = self.pending_review().await;
                let request = pb::RecordReviewRequest {
                    family_id: FAMILY.into(),
                    disclosure_event_id,
                    outcome: pb::ReviewOutcome::Justified as i32,
                    note: "Terecht".into(),
                };
                audit().record_review(request).await.map(drop)
            }
            Call::GetAccessReport => {
                let request = pb::GetAccessReportRequest {
                    family_id: FAMILY.into(),
                    subject_member_id: "mother".into(),
                    requested_by_member_id: "mother".into(),
                    language: pb::ReportLanguage::Dutch as i32,
                    include_line_bytes: false,
                };
                AccessReportServiceClient::with_interceptor(channel.clone(), who.clone())
                    .get_access_report(request)
                    .await
                    .map(drop)
            }
            Call::GetLatestTreeHead => {
                log().get_latest_tree_head(pb::GetLatestTreeHeadRequest::default()).await.map(drop)
            }
            Call::GetInclusionProof | Call::GetEventBytes => {
                let tree_size = self.signed_size().await;
                let include_event_bytes = matches!(call, Call::GetEventBytes);
                let request =
                    pb::GetInclusionProofRequest { position: self.vggz_event, tree_size, include_event_bytes };
                let proof = log().get_inclusion_proof(request).await?.into_inner();
                assert_eq!(!proof.canonical_event.is_empty(), include_event_bytes, "bytes only when asked and allowed");
                Ok(())
            }
            Call::GetConsistencyProof => {
                let second_size = self.signed_size().await;
                let request = pb::GetConsistencyProofRequest { first_size: 1, second_size };
                log().get_consistency_proof(request).await.map(drop)
            }
            Call::ListNotices => {
                let request = pb::ListNoticesRequest { family_id: FAMILY.into(), ..Default::default() };
                NoticeServiceClient::with_interceptor(channel.clone(), who.clone())
                    .list_notices(request)
                    .await
                    .map(drop)
            }
            Call::AcknowledgeNotice => {
                let notice_id = self.notice_to_vggz().await;
                let request = pb::AcknowledgeNoticeRequest { family_id: FAMILY.into(), notice_id };
                NoticeServiceClient::with_interceptor(channel.clone(), who.clone())
                    .acknowledge_notice(request)
                    .await
                    .map(drop)
            }
            Call::SubscribeFeed => {
                let request = pb::SubscribeRequest {
                    family_id: FAMILY.into(),
                    purpose: pb::Purpose::Care as i32,
                    resume_token: String::new(),
                };
                let mut feed = FeedServiceClient::with_interceptor(channel.clone(), who.clone());
                let mut stream = feed.subscribe(request).await?.into_inner();
                stream.message().await?.map(drop).ok_or_else(|| Status::internal("the feed sent nothing"))
            }
            Call::AppendEvents => {
                let request = append(FAMILY, any(), vec![build::note("mother", "Contact gehad")]);
                CaseServiceClient::with_interceptor(channel.clone(), who.clone()).append_events(request).await.map(drop)
            }
        }
    }
}

fn outcome(result: &Result<(), Status>) -> Outcome {
    match result {
        Ok(()) => Y,
        Err(s) if s.code() == Code::PermissionDenied => D,
        Err(s) if s.code() == Code::Unauthenticated => U,
        Err(s) => panic!("neither allowed nor refused: {s:?}"),
    }
}

/// Runs every row for `columns` (with their index into [`expected`]) and returns the cells
/// that differ from the table, so that one run shows every mismatch.
async fn run(server: &TestServer, columns: &[(usize, Caller)]) -> Vec<String> {
    let fixture = Fixture::new(server).await;
    let mut mismatches = Vec::new();
    for call in CALLS {
        for &(column, caller) in columns {
            let (org, who) = caller.metadata(server);
            let channel = server.channel(Some(org)).await;
            let before = fixture.refusals().await;
            let result = fixture.call(call, channel, who).await;
            let recorded = fixture.refusals().await - before;
            let got = outcome(&result);
            let want = expected(call)[column];
            if got != want {
                mismatches.push(format!("{call:?} as {caller:?}: want {want:?}, got {result:?}"));
            }
            let want_recorded = usize::from(got == D);
            if recorded != want_recorded {
                mismatches.push(format!("{call:?} as {caller:?}: {recorded} refusal events, want {want_recorded}"));
            }
        }
    }
    mismatches
}

#[tokio::test]
async fn every_rpc_against_every_kind_of_caller_under_mutual_tls() {
    let server = TestServer::start_with(|c| c.tree_head_interval_ms = 50).await;
    let columns = [
        Caller::Involved,
        Caller::Uninvolved,
        Caller::OfficerInvolved,
        Caller::OfficerUninvolved,
        Caller::OfficerWithoutFunction,
        Caller::Portal,
        Caller::NotPortal,
        Caller::Gateway,
    ];
    let columns: Vec<_> = columns.into_iter().enumerate().collect();
    let mismatches = run(&server, &columns).await;
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    server.stop().await;
}

#[tokio::test]
async fn insecure_dev_mode_claims_no_more_than_mutual_tls_grants() {
    let server = TestServer::start_with(|c| {
        c.tree_head_interval_ms = 50;
        c.tls = None;
        c.insecure_dev = true;
    })
    .await;
    let mismatches = run(&server, &[(8, Caller::Dev)]).await;
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    server.stop().await;
}
