//! Dutch law, second pass, each scenario written from the article it cites and run through
//! the real server over gRPC: legal bases scoped to the recipient the law names, recipients
//! narrowed to one role at one organisation.

use crate::consent_dossier::{FAMILY, dossier_request, family, grant, impose_ots};
use crate::support::build::{self, any, append};
use crate::support::{GI, TestServer, VEILIG_THUIS, VEILIG_THUIS_ELSEWHERE, VGGZ, WIJKTEAM, YOUTH_CARE};
use chrono::Datelike;
use gezinsdossier_ledger::clock::Clock;
use gezinsdossier_proto::v1 as pb;
use pb::InformationCategory as C;
use pb::case_event::Kind;
use tonic::Code;

fn to_org(id: &str) -> pb::Recipient {
    pb::Recipient { recipient: Some(pb::recipient::Recipient::OrganisationId(id.into())) }
}

fn basis(kind: pb::LegalBasisKind, measure: &str, recipients: Vec<pb::Recipient>) -> pb::RecordLegalBasisRequest {
    pb::RecordLegalBasisRequest {
        family_id: FAMILY.into(),
        event_id: build::id(),
        basis_id: build::id(),
        kind: kind as i32,
        justification: "Zorgen over de veiligheid van het kind".into(),
        measure_id: measure.into(),
        subject_member_ids: vec!["child".into()],
        categories: vec![C::Plan as i32],
        recipients,
        valid_from: None,
        valid_until: None,
    }
}

fn sees_child_plan(d: &pb::Dossier) -> bool {
    d.timeline.iter().any(|i| {
        matches!(i.event.as_ref().and_then(|e| e.kind.as_ref()),
            Some(Kind::PlanAgreed(p)) if p.summary == "Speltherapie voor het kind")
    })
}

/// Jeugdwet 7.3.11: under an OTS the right to information belongs to the GI that carries
/// out the measure, and to no one else; a basis citing the measure names only that GI.
#[tokio::test]
async fn an_ots_basis_gives_information_only_to_the_gi_that_carries_out_the_measure_jeugdwet_7_3_11() {
    let server = TestServer::start().await;
    family(&server).await;
    impose_ots(&server).await;
    let mut gi = server.consent_client(GI, "gv-3", "gezinsvoogd").await;
    let kind = pb::LegalBasisKind::ChildProtectionMeasure;
    let err = gi.record_legal_basis(basis(kind, "ots-1", vec![to_org(GI), to_org(WIJKTEAM)])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().starts_with("recipients:") && err.message().contains("7.3.11"), "{}", err.message());
    gi.record_legal_basis(basis(kind, "ots-1", vec![to_org(GI)])).await.unwrap();

    let mut wijkteam = server.dossier_client(WIJKTEAM, "wt-1", "wijkteam_medewerker").await;
    let refused = wijkteam.get_dossier(dossier_request(pb::Purpose::ChildProtection)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let mut gi_dossier = server.dossier_client(GI, "gv-3", "gezinsvoogd").await;
    assert!(sees_child_plan(
        &gi_dossier.get_dossier(dossier_request(pb::Purpose::ChildProtection)).await.unwrap().into_inner()
    ));
    server.stop().await;
}

/// BW 1:240 and Wmo 2015 4.1.8: a meldcode report is made to one Veilig Thuis, the one of
/// the child's region; every other Veilig Thuis in the country sees nothing of it.
#[tokio::test]
async fn a_meldcode_report_goes_to_one_named_veilig_thuis_bw_1_240() {
    let server = TestServer::start().await;
    family(&server).await;
    let mut youth = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let kind = pb::LegalBasisKind::Meldcode;
    let every_veilig_thuis = pb::Recipient {
        recipient: Some(pb::recipient::Recipient::TypeAndRole(pb::TypeAndRole {
            organisation_type: pb::OrganisationType::VeiligThuis as i32,
            role: 0,
        })),
    };
    let err = youth.record_legal_basis(basis(kind, "", vec![every_veilig_thuis])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("one named Veilig Thuis"), "{}", err.message());
    let err = youth.record_legal_basis(basis(kind, "", vec![to_org(WIJKTEAM)])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("recipients[0].organisation_id:"), "{}", err.message());
    youth.record_legal_basis(basis(kind, "", vec![to_org(VEILIG_THUIS)])).await.unwrap();

    let mut regional = server.dossier_client(VEILIG_THUIS, "vt-1", "veilig_thuis_medewerker").await;
    let report = regional.get_dossier(dossier_request(pb::Purpose::SafetyAssessment)).await.unwrap().into_inner();
    assert!(sees_child_plan(&report));
    let mut elsewhere = server.dossier_client(VEILIG_THUIS_ELSEWHERE, "vt-9", "veilig_thuis_medewerker").await;
    let err = elsewhere.get_dossier(dossier_request(pb::Purpose::SafetyAssessment)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    server.stop().await;
}

/// A consent may name one role at one organisation (AVG art. 5(1)(c), data minimisation):
/// the v-ggz's regiebehandelaar receives the child's plan, its other professionals do not.
#[tokio::test]
async fn a_consent_may_name_one_role_at_one_organisation() {
    let server = TestServer::start().await;
    family(&server).await;
    let mut youth = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let mut consent = grant("c-role", "child", &[C::Plan], VGGZ, pb::Purpose::Care, &["mother", "father"]);
    consent.recipients = vec![pb::Recipient {
        recipient: Some(pb::recipient::Recipient::OrganisationAndRole(pb::OrganisationAndRole {
            organisation_id: VGGZ.into(),
            role: pb::ProfessionalRole::Regiebehandelaar as i32,
        })),
    }];
    youth.grant_consent(consent.clone()).await.unwrap();
    let mut regie = server.dossier_client(VGGZ, "ggz-1", "regiebehandelaar").await;
    assert!(sees_child_plan(&regie.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner()));
    let mut psychiater = server.dossier_client(VGGZ, "ggz-7", "psychiater").await;
    let other_role = psychiater.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(!sees_child_plan(&other_role));
    let listed = youth
        .list_consents(pb::ListConsentsRequest { family_id: FAMILY.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let recipient = &listed.consents.iter().find(|c| c.consent_id == "c-role").unwrap().recipients[0];
    assert_eq!(recipient, &consent.recipients[0], "the recipient round-trips");
    // An empty organisation id is refused, naming the field.
    consent.consent_id = "c-empty".into();
    consent.event_id = build::id();
    consent.recipients = vec![pb::Recipient {
        recipient: Some(pb::recipient::Recipient::OrganisationAndRole(pb::OrganisationAndRole {
            organisation_id: String::new(),
            role: pb::ProfessionalRole::Regiebehandelaar as i32,
        })),
    }];
    let err = youth.grant_consent(consent).await.unwrap_err();
    assert!(err.message().starts_with("recipients[0]"), "{}", err.message());
    server.stop().await;
}

/// Break-the-glass (sharing without consent in acute danger, AVG art. 6(1)(d), 9(2)(c))
/// is reviewed afterwards: the privacy office of every organisation whose data was seen is
/// told at once, and the use waits in the review queue with a deadline (7 days unless
/// configured), overdue after that.
#[tokio::test]
async fn break_the_glass_tells_the_authors_and_is_overdue_for_review_after_its_deadline() {
    use gezinsdossier_proto::v1::audit_service_client::AuditServiceClient;
    use gezinsdossier_proto::v1::notice_service_client::NoticeServiceClient;
    let server = TestServer::start().await;
    family(&server).await;
    let mut gi = server.dossier_client(GI, "gv-3", "gezinsvoogd").await;
    let mut btg = dossier_request(pb::Purpose::SafetyAssessment);
    btg.break_the_glass = Some(pb::BreakTheGlass { reason: "Kind alleen thuis aangetroffen".into() });
    let opened = gi.get_dossier(btg).await.unwrap().into_inner();
    assert!(sees_child_plan(&opened));

    let officer = server.professional(YOUTH_CARE, "fg-1", "privacy_officer");
    let mut notices = NoticeServiceClient::with_interceptor(server.channel(Some(YOUTH_CARE)).await, officer.clone());
    let request = pb::ListNoticesRequest { family_id: FAMILY.into(), ..Default::default() };
    let told = notices.list_notices(request).await.unwrap().into_inner().notices;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].kind, pb::NoticeKind::BreakTheGlass as i32);
    assert_eq!(told[0].about_event_id, opened.disclosure_event_id);
    assert_eq!(told[0].from_organisation_id, GI);

    let mut audit = AuditServiceClient::with_interceptor(server.channel(Some(YOUTH_CARE)).await, officer);
    let query = |overdue_only: bool| pb::QueryAccessLogRequest {
        family_id: FAMILY.into(),
        pending_review_only: true,
        overdue_only,
        ..Default::default()
    };
    let run = async |audit: &mut AuditServiceClient<_>, q| {
        let mut stream = audit.query_access_log(q).await.unwrap().into_inner();
        let mut rows: Vec<pb::AccessLogEntry> = Vec::new();
        while let Some(row) = stream.message().await.unwrap() {
            rows.push(row);
        }
        rows
    };
    let pending = run(&mut audit, query(false)).await;
    assert_eq!(pending.len(), 1);
    let (at, due) = (pending[0].at.unwrap(), pending[0].review_due_at.unwrap());
    assert_eq!(due.seconds - at.seconds, 7 * 24 * 3600, "due 7 days later");
    assert!(!pending[0].overdue);
    assert!(run(&mut audit, query(true)).await.is_empty());

    server.advance(chrono::Duration::days(8));
    let overdue = run(&mut audit, query(true)).await;
    assert_eq!(overdue.len(), 1);
    assert!(overdue[0].overdue);
    let review = pb::RecordReviewRequest {
        family_id: FAMILY.into(),
        disclosure_event_id: overdue[0].event_id.clone(),
        outcome: pb::ReviewOutcome::Justified as i32,
        note: "Terecht, kind was alleen".into(),
    };
    audit.record_review(review).await.unwrap();
    assert!(run(&mut audit, query(true)).await.is_empty());
    server.stop().await;
}

/// AVG art. 15 and NEN 7513 let an organisation account for its own past access:
/// `CheckAccess` answers for a past time, as `ListConsents` already could; consent states
/// are an enum; and where nobody can consent under the recorded facts, the answer says
/// which fact is missing instead of an empty list.
#[tokio::test]
async fn check_access_answers_for_a_past_time_and_never_lists_nobody() {
    let server = TestServer::start().await;
    family(&server).await;
    let mut youth = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    youth.grant_consent(grant("c-plan", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"])).await.unwrap();
    let granted_at = server.clock.now();
    server.advance(chrono::Duration::hours(1));
    let withdraw = pb::WithdrawConsentRequest {
        family_id: FAMILY.into(),
        event_id: build::id(),
        consent_id: "c-plan".into(),
        withdrawn_by_member_id: "mother".into(),
        reason: "Wil het zelf vertellen".into(),
        by_guardian: false,
    };
    youth.withdraw_consent(withdraw).await.unwrap();
    server.advance(chrono::Duration::minutes(1));

    let mut gi = server.consent_client(GI, "gv-3", "gezinsvoogd").await;
    let check = |at: Option<chrono::DateTime<chrono::Utc>>| pb::CheckAccessRequest {
        family_id: FAMILY.into(),
        subject_member_id: "mother".into(),
        category: C::Plan as i32,
        purpose: pb::Purpose::Care as i32,
        at: at.map(gezinsdossier_proto::convert::outbound::timestamp),
    };
    assert!(!gi.check_access(check(None)).await.unwrap().into_inner().granted, "withdrawn now");
    let then = gi.check_access(check(Some(granted_at + chrono::Duration::minutes(5)))).await.unwrap().into_inner();
    assert!(then.granted, "in force then: {:?}", then.reasons);
    let future = server.clock.now() + chrono::Duration::days(1);
    let err = gi.check_access(check(Some(future))).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("at:"), "{}", err.message());

    let listed = youth
        .list_consents(pb::ListConsentsRequest { family_id: FAMILY.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.consents[0].state, pb::ConsentState::Withdrawn as i32);

    // A child without recorded gezag: nobody can consent, and the error says what is missing.
    let mut youth_case = server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let born = server.clock.now_date() - chrono::Duration::days(365 * 5);
    let nobody = build::child("unknown-gezag", build::date(born.year(), born.month() as i32, 1), &[]);
    youth_case.append_events(append(FAMILY, any(), vec![nobody])).await.unwrap();
    let err = youth
        .grant_consent(grant("c-nobody", "unknown-gezag", &[C::Plan], GI, pb::Purpose::Care, &["mother"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("no member holds gezag over this child"), "{}", err.message());
    assert!(!err.message().trim_end().ends_with(':'), "{}", err.message());
    server.stop().await;
}

/// AVG art. 5(1)(c) and 9: even the fact of a v-ggz treatment is medical data. An MDO,
/// a coordinator or a referral that names the v-ggz tells a requester with only `plan`
/// consent that the mother is in v-ggz care, so other organisations are named only where
/// `involvement` of every member concerned is covered.
#[tokio::test]
async fn organisations_named_in_an_item_reveal_involvement_only_where_it_is_covered() {
    let server = TestServer::start().await;
    family(&server).await;
    let vggz_psychiater = pb::Participant {
        organisation_id: VGGZ.into(),
        professional_id: "ggz-7".into(),
        role: pb::ProfessionalRole::Psychiater as i32,
        member_id: String::new(),
    };
    let mother = pb::Participant { member_id: "mother".into(), ..Default::default() };
    let mdo = build::event(
        &["mother"],
        &[C::Plan],
        Kind::MdoHeld(pb::MdoHeld {
            participants: vec![vggz_psychiater.clone(), mother.clone()],
            summary: "Afspraken over de opvoeding".into(),
            next_mdo_on: None,
        }),
    );
    let coordinator = build::event(
        &["mother"],
        &[C::Plan],
        Kind::CoordinatorAssigned(pb::CoordinatorAssigned {
            coordinator: Some(vggz_psychiater),
            handed_over_from: None,
        }),
    );
    let referral = build::event(
        &["mother"],
        &[C::Plan],
        Kind::ReferralOut(pb::ReferralOut {
            to_organisation_type: pb::OrganisationType::VGgz as i32,
            to_organisation_id: VGGZ.into(),
            reason: "Behandeling".into(),
            warm_handover: true,
        }),
    );
    let mut youth_case = server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    youth_case.append_events(append(FAMILY, any(), vec![mdo, coordinator, referral])).await.unwrap();

    let mut youth = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    youth.grant_consent(grant("c-plan", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"])).await.unwrap();
    let mut gi = server.dossier_client(GI, "gv-3", "gezinsvoogd").await;
    let names_vggz = |d: &pb::Dossier| {
        let text = format!("{:?}", d.timeline) + &format!("{:?}{:?}", d.coordinator, d.open_referrals);
        text.contains(VGGZ) || text.contains("VGgz") || d.open_referrals.iter().any(|r| r.event.is_some())
    };
    let plan_only = gi.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    let mdo_seen = plan_only
        .timeline
        .iter()
        .find_map(|i| match i.event.as_ref()?.kind.as_ref()? {
            Kind::MdoHeld(m) => Some(m.clone()),
            _ => None,
        })
        .expect("the MDO itself is plan data and shown");
    assert_eq!(mdo_seen.participants, vec![mother], "the v-ggz participant is left out");
    assert!(!names_vggz(&plan_only), "{:?}", plan_only.timeline);
    assert!(plan_only.coordinator.as_ref().is_some_and(|c| c.organisation_id.is_empty()));

    youth
        .grant_consent(grant("c-involvement", "mother", &[C::Involvement], GI, pb::Purpose::Care, &["mother"]))
        .await
        .unwrap();
    let with_involvement = gi.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(names_vggz(&with_involvement));
    assert_eq!(with_involvement.open_referrals.len(), 1);
    assert_eq!(with_involvement.coordinator.as_ref().map(|c| c.organisation_id.as_str()), Some(VGGZ));
    server.stop().await;
}

/// BW 1:245 and 1:337a: under voogdij the GI holds the gezag, and it gives or refuses
/// consent for the ward in the parents' place, through its gezinsvoogd; from 12 the child
/// agrees too (WGBO 7:450), from 16 the young person alone.
#[tokio::test]
async fn under_voogdij_the_gi_consents_for_the_ward_bw_1_245() {
    let server = TestServer::start().await;
    family(&server).await;
    let year = server.clock.now_date().year();
    let ward = |id: &str, age: i32| {
        let mut child = build::child(id, build::date(year - age, 1, 1), &[]);
        if let Some(Kind::MemberAdded(m)) = child.kind.as_mut() {
            m.gezag = Some(pb::Gezag { holder_member_ids: vec![], guardian_organisation_id: GI.into() });
        }
        child
    };
    let mut youth_case = server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    youth_case.append_events(append(FAMILY, any(), vec![ward("ward", 8), ward("ward-13", 13)])).await.unwrap();
    let mut gi = server.consent_client(GI, "gv-3", "gezinsvoogd").await;
    let mut youth = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;

    // The parents have no say any more; the GI does, and no other organisation for it.
    let err = youth
        .grant_consent(grant("c-mother", "ward", &[C::Identity], VGGZ, pb::Purpose::Care, &["mother"]))
        .await
        .unwrap_err();
    assert!(err.message().contains(&format!("guardian:{GI}")), "{}", err.message());
    let mut by_youth = grant("c-youth", "ward", &[C::Identity], VGGZ, pb::Purpose::Care, &[]);
    by_youth.given_by_guardian = true;
    let err = youth.grant_consent(by_youth).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let mut by_gi = grant("c-gi", "ward", &[C::Identity], VGGZ, pb::Purpose::Care, &[]);
    by_gi.given_by_guardian = true;
    gi.grant_consent(by_gi).await.unwrap();
    let state = |listed: &pb::ListConsentsResponse, id: &str| {
        listed.consents.iter().find(|c| c.consent_id == id).map(|c| (c.state, c.must_consent_member_ids.clone()))
    };
    let list = pb::ListConsentsRequest { family_id: FAMILY.into(), ..Default::default() };
    let listed = gi.list_consents(list.clone()).await.unwrap().into_inner();
    assert_eq!(state(&listed, "c-gi").unwrap().0, pb::ConsentState::Active as i32);

    // At 13 the ward agrees too: the GI's agreement alone leaves it incomplete.
    let mut teen = grant("c-teen", "ward-13", &[C::Identity], VGGZ, pb::Purpose::Care, &[]);
    teen.given_by_guardian = true;
    gi.grant_consent(teen).await.unwrap();
    let listed = gi.list_consents(list.clone()).await.unwrap().into_inner();
    assert_eq!(state(&listed, "c-teen").unwrap(), (pb::ConsentState::Incomplete as i32, vec!["ward-13".to_string()]));
    // The GI may withdraw what it gave, as guardian.
    let withdraw = pb::WithdrawConsentRequest {
        family_id: FAMILY.into(),
        event_id: build::id(),
        consent_id: "c-gi".into(),
        withdrawn_by_member_id: String::new(),
        reason: "Niet meer nodig".into(),
        by_guardian: true,
    };
    gi.withdraw_consent(withdraw).await.unwrap();
    let listed = gi.list_consents(list).await.unwrap().into_inner();
    assert_eq!(state(&listed, "c-gi").unwrap().0, pb::ConsentState::Withdrawn as i32);
    server.stop().await;
}

/// BW 1:245 (no gezag before birth), 1:251, 1:252 and 1:253b (gezag from birth): before
/// birth the pregnant mother alone consents for the unborn child; a birth event makes it a
/// child with the gezag the EPD records, and consents given before are re-evaluated.
#[tokio::test]
async fn the_mother_consents_for_the_unborn_child_and_a_birth_re_evaluates_bw_1_245_1_253b() {
    let server = TestServer::start().await;
    family(&server).await;
    let today = server.clock.now_date();
    let expected = build::date(today.year() + 1, 1, 1);
    let unborn = |gezag: Option<pb::Gezag>, carried_by: &str| {
        build::event(
            &[],
            &[C::Identity],
            Kind::MemberAdded(pb::MemberAdded {
                member_id: "baby".into(),
                role: pb::MemberRole::UnbornChild as i32,
                display_name: "Baby".into(),
                expected_birth_date: Some(expected),
                gezag,
                carried_by_member_id: carried_by.into(),
                ..Default::default()
            }),
        )
    };
    let mut case = server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let with_gezag = Some(pb::Gezag { holder_member_ids: vec!["mother".into()], ..Default::default() });
    let err = case.append_events(append(FAMILY, any(), vec![unborn(with_gezag, "mother")])).await.unwrap_err();
    assert!(err.message().contains("member_added.gezag: there is no gezag before birth"), "{}", err.message());
    let err = case.append_events(append(FAMILY, any(), vec![unborn(None, "")])).await.unwrap_err();
    assert!(err.message().contains("carried_by_member_id"), "{}", err.message());
    case.append_events(append(FAMILY, any(), vec![unborn(None, "mother")])).await.unwrap();

    let mut youth = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let err = youth
        .grant_consent(grant("c-father", "baby", &[C::Plan], GI, pb::Purpose::Care, &["father"]))
        .await
        .unwrap_err();
    assert!(err.message().contains("who must consent: mother"), "{}", err.message());
    youth.grant_consent(grant("c-baby", "baby", &[C::Plan], GI, pb::Purpose::Care, &["mother"])).await.unwrap();
    let gezag_before_birth = build::event(
        &["baby"],
        &[C::Identity],
        Kind::GezagChanged(pb::GezagChanged {
            child_member_id: "baby".into(),
            gezag: Some(pb::Gezag { holder_member_ids: vec!["mother".into()], ..Default::default() }),
            reason: "Erkenning".into(),
        }),
    );
    let err = case.append_events(append(FAMILY, any(), vec![gezag_before_birth])).await.unwrap_err();
    assert!(err.message().contains("not born yet"), "{}", err.message());

    // Born, to parents with joint gezag (recorded by the EPD): the consent the mother gave
    // alone no longer suffices, and the answer says who must consent now.
    let birth = |child: &str| {
        build::event(
            &[child],
            &[C::Identity],
            Kind::Birth(pb::Birth {
                child_member_id: child.into(),
                born_on: Some(build::date(today.year(), today.month() as i32, today.day() as i32)),
                gezag: Some(pb::Gezag {
                    holder_member_ids: vec!["mother".into(), "father".into()],
                    ..Default::default()
                }),
            }),
        )
    };
    let err = case.append_events(append(FAMILY, any(), vec![birth("child")])).await.unwrap_err();
    assert!(err.message().contains("is not an unborn child"), "{}", err.message());
    case.append_events(append(FAMILY, any(), vec![birth("baby")])).await.unwrap();
    let listed = youth
        .list_consents(pb::ListConsentsRequest { family_id: FAMILY.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let c = listed.consents.iter().find(|c| c.consent_id == "c-baby").unwrap();
    assert_eq!(c.state, pb::ConsentState::AgeRuleChanged as i32, "{}", c.explanation);
    assert_eq!(c.must_consent_member_ids, vec!["father".to_string(), "mother".to_string()]);
    server.stop().await;
}

/// A contact ban and "gezag but no contact" are different facts. Neither changes who must
/// consent (BW 1:247: gezag is the right and duty to decide). A parent under a contact ban
/// is not served the child's who-saw-what report: it names where the child is in care.
#[tokio::test]
async fn a_contact_ban_never_changes_who_consents_but_withholds_the_childs_report() {
    use gezinsdossier_proto::v1::access_report_service_client::AccessReportServiceClient;
    let server = TestServer::start().await;
    family(&server).await;
    let parent = |id: &str, contact_restricted: bool, no_contact: bool| {
        build::event(
            &[],
            &[C::Identity],
            Kind::MemberAdded(pb::MemberAdded {
                member_id: id.into(),
                role: pb::MemberRole::Parent as i32,
                display_name: id.into(),
                contact_restricted,
                no_contact,
                ..Default::default()
            }),
        )
    };
    let year = server.clock.now_date().year();
    let child = build::child("c2", build::date(year - 7, 1, 1), &["ex", "far"]);
    let mut case = server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    case.append_events(append(FAMILY, any(), vec![parent("ex", true, false), parent("far", false, true), child]))
        .await
        .unwrap();
    let mut youth = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    youth.grant_consent(grant("c-c2", "c2", &[C::Plan], GI, pb::Purpose::Care, &["far"])).await.unwrap();
    let listed = youth
        .list_consents(pb::ListConsentsRequest { family_id: FAMILY.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let c = listed.consents.iter().find(|c| c.consent_id == "c-c2").unwrap();
    assert_eq!(
        (c.state, c.must_consent_member_ids.clone()),
        (pb::ConsentState::Incomplete as i32, vec!["ex".to_string()])
    );

    let portal =
        crate::support::Professional::new("portal", "casusregisseur").member_authenticated_by("digid_substantieel");
    let mut reports = AccessReportServiceClient::with_interceptor(server.channel(Some(YOUTH_CARE)).await, portal);
    let ask = |by: &str| pb::GetAccessReportRequest {
        family_id: FAMILY.into(),
        subject_member_id: "c2".into(),
        requested_by_member_id: by.into(),
        language: pb::ReportLanguage::Dutch as i32,
        include_line_bytes: false,
    };
    let err = reports.get_access_report(ask("ex")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("contact ban"), "{}", err.message());
    reports.get_access_report(ask("far")).await.unwrap();
    server.stop().await;
}

/// WGBO 7:465 lid 2 and 7:457: for a child of 12 to 15 a parent with gezag has rights
/// about the child's data, unless meeting them is incompatible with good care. The child's
/// provider records that exception for one parent; that parent's report leaves the
/// shielded lines out and says so, while the other parent's report is whole.
#[tokio::test]
async fn a_shielded_parent_sees_a_report_without_the_shielded_lines_wgbo_7_457() {
    use gezinsdossier_proto::v1::access_report_service_client::AccessReportServiceClient;
    let server = TestServer::start().await;
    family(&server).await;
    let mut youth = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    youth
        .grant_consent(grant("c-teen", "teen", &[C::Plan], GI, pb::Purpose::Care, &["teen", "mother", "father"]))
        .await
        .unwrap();
    server
        .dossier_client(GI, "gv-3", "gezinsvoogd")
        .await
        .get_dossier(dossier_request(pb::Purpose::Care))
        .await
        .unwrap();

    let shielding = |child: &str, parent: &str| {
        build::event(
            &[child],
            &[C::Plan],
            Kind::Shielding(pb::Shielding {
                child_member_id: child.into(),
                parent_member_id: parent.into(),
                categories: vec![],
                reason: "Vader zet de jongere onder druk na elk gesprek".into(),
            }),
        )
    };
    let mut case = server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let err = case.append_events(append(FAMILY, any(), vec![shielding("child", "father")])).await.unwrap_err();
    assert!(err.message().contains("12 to 15"), "{}", err.message());
    let err = case.append_events(append(FAMILY, any(), vec![shielding("teen", "child")])).await.unwrap_err();
    assert!(err.message().contains("does not hold gezag"), "{}", err.message());
    case.append_events(append(FAMILY, any(), vec![shielding("teen", "father")])).await.unwrap();

    let portal =
        crate::support::Professional::new("portal", "casusregisseur").member_authenticated_by("digid_substantieel");
    let mut reports = AccessReportServiceClient::with_interceptor(server.channel(Some(YOUTH_CARE)).await, portal);
    let ask = |by: &str| pb::GetAccessReportRequest {
        family_id: FAMILY.into(),
        subject_member_id: "teen".into(),
        requested_by_member_id: by.into(),
        language: pb::ReportLanguage::Dutch as i32,
        include_line_bytes: false,
    };
    let father = reports.get_access_report(ask("father")).await.unwrap().into_inner();
    assert!(father.information_withheld);
    assert!(father.entries.is_empty(), "{:?}", father.entries);
    assert!(father.html.contains("Een deel van de informatie over uw kind staat hier niet"));
    let mother = reports.get_access_report(ask("mother")).await.unwrap().into_inner();
    assert!(!mother.information_withheld);
    assert_eq!(mother.entries.len(), 1, "the GI's view of the teen's plan");
    let own = reports.get_access_report(ask("teen")).await.unwrap().into_inner();
    assert!(!own.information_withheld && own.entries.len() == 1, "the child's own report is whole");
    server.stop().await;
}
