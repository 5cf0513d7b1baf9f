//! Erasure by crypto-shredding over real gRPC (AVG art. 17, Jeugdwet 7.3.9): the author's
//! privacy officer erases a member; the content is gone from the dossier and the stored
//! bytes, other members' and other authors' data stay, the log still verifies, earlier
//! recipients are told, and the law's exceptions are refused and recorded.

use crate::consent_dossier::{FAMILY, dossier_request, family, grant, texts};
use crate::support::build::{self, any, append};
use crate::support::{GI, Professional, TestServer, VGGZ, YOUTH_CARE};
use gezinsdossier_ledger::case::InformationCategory;
use gezinsdossier_ledger::codec::FamilyEvent;
use gezinsdossier_ledger::consent::Basis;
use gezinsdossier_ledger::disclosure::AccessLogEvent;
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::audit_service_client::AuditServiceClient;
use gezinsdossier_proto::v1::notice_service_client::NoticeServiceClient;
use pb::InformationCategory as C;
use pb::case_event::Kind;
use tonic::Code;

fn erase(subject: &str, categories: &[C]) -> pb::EraseRecordsRequest {
    pb::EraseRecordsRequest {
        family_id: FAMILY.into(),
        subject_member_id: subject.into(),
        categories: categories.iter().map(|c| *c as i32).collect(),
        ground: pb::ErasureGround::Avg17 as i32,
        requested_by: pb::ErasureRequestedBy::Subject as i32,
    }
}

async fn officer(
    server: &TestServer,
    org: &str,
    role: &str,
) -> AuditServiceClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Professional>> {
    AuditServiceClient::with_interceptor(server.channel(Some(org)).await, server.professional(org, "fg-1", role))
}

#[tokio::test]
async fn erasing_a_member_shreds_their_content_everywhere_and_keeps_the_proofs() {
    let server = TestServer::start().await;
    family(&server).await;
    let mut youth = server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let mut consent = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    consent.grant_consent(grant("c-plan", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"])).await.unwrap();
    let mut notes: Vec<_> = (0..40)
        .map(|i| build::event(&["mother"], &[C::Plan], Kind::Note(pb::Note { text: format!("moeder-plan-{i}") })))
        .collect();
    notes.push(build::event(&["mother", "child"], &[C::Plan], Kind::Note(pb::Note { text: "samen-plan".into() })));
    youth.append_events(append(FAMILY, any(), notes)).await.unwrap();
    // The GI received the mother's plans before the erasure.
    let mut gi = server.dossier_client(GI, "gv-3", "gezinsvoogd").await;
    let before = gi.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(texts(&before).contains(&"moeder-plan-0".to_string()), "{:?}", texts(&before));
    let stored = server.family_events(FAMILY).await;
    assert!(
        !stored.iter().any(|e| e.payload.windows(13).any(|w| w == b"moeder-plan-0")),
        "payloads are encrypted at rest"
    );

    // Only the privacy officer of a registered privacy office may erase.
    let refused = officer(&server, YOUTH_CARE, "casusregisseur").await.erase_records(erase("mother", &[])).await;
    assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);

    // Her plans first: the consent that covered them stays, so the GI sees where they were.
    let done = officer(&server, YOUTH_CARE, "privacy_officer").await.erase_records(erase("mother", &[C::Plan])).await;
    let done = done.unwrap().into_inner();
    assert_eq!(done.keys_destroyed, 1, "{done:?}");
    assert_eq!(done.events_shredded, 40, "the 40 plan notes about her alone: {done:?}");
    assert!(done.events_kept >= 1, "the note that also concerns the child is kept: {done:?}");
    assert!(done.kept_reasons.iter().any(|r| r.contains("another family member")), "{:?}", done.kept_reasons);
    assert!(done.notices_sent >= 40, "the GI received 40 of the erased notes: {done:?}");

    // The dossier: youth care sees "erased on D" where the items were; the shared note and
    // the child's data stay; v-ggz's own records about the mother are not youth care's to erase.
    let mut own = server.dossier_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let after = own.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(!texts(&after).iter().any(|t| t.starts_with("moeder-plan")), "{:?}", texts(&after));
    assert!(texts(&after).contains(&"samen-plan".to_string()));
    assert!(texts(&after).contains(&"Gesprek met de tiener".to_string()));
    let erased: Vec<_> = after.timeline.iter().filter(|i| i.erased_at.is_some()).collect();
    assert!(erased.len() >= 40, "{} erased placeholders", erased.len());
    assert!(erased.iter().all(|i| i.event.is_none() && i.author_organisation_id.is_empty()));
    let mut vggz = server.dossier_client(VGGZ, "ggz-7", "psychiater").await;
    let theirs = vggz.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(texts(&theirs).contains(&"Medicatie aangepast".to_string()), "{:?}", texts(&theirs));

    // Stored payloads: the mother's are unreadable for good, every other one opens.
    let stored = server.family_events(FAMILY).await;
    let opened = server.open(&stored).await;
    let shredded = opened.iter().filter(|o| o.is_none()).count();
    assert_eq!(shredded as u64, done.events_shredded);
    assert!(opened.iter().flatten().any(|e| matches!(e, FamilyEvent::Case(r) if r.author.organisation_id == VGGZ)));

    // The GI, whose consent still covers her plans, sees where they were; it is told.
    let gi_after = gi.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(!texts(&gi_after).iter().any(|t| t.starts_with("moeder-plan")), "{:?}", texts(&gi_after));
    assert_eq!(gi_after.timeline.iter().filter(|i| i.erased_at.is_some()).count(), 40);
    let mut gi_notices = NoticeServiceClient::with_interceptor(
        server.channel(Some(GI)).await,
        server.professional(GI, "p-1", "gezinsvoogd"),
    );
    let listed = gi_notices
        .list_notices(pb::ListNoticesRequest { family_id: FAMILY.into(), direction: 0, include_acknowledged: false })
        .await
        .unwrap()
        .into_inner()
        .notices;
    assert!(listed.iter().filter(|n| n.kind == pb::NoticeKind::Erasure as i32).count() >= 40, "{listed:?}");

    // Every chain and the Merkle log still verify; the erasure event names no member.
    let all = server.store.read_all(0, 100_000).await.unwrap();
    gezinsdossier_ledger::chain::verify_stream(&stored).unwrap();
    let erasure = stored.iter().find(|e| e.event_type == "erasure.recorded").expect("erasure event");
    let text = String::from_utf8_lossy(&erasure.payload);
    assert!(!text.contains("mother"), "{text}");
    assert_eq!(all.iter().filter(|e| e.stream.as_str() == format!("family-{FAMILY}")).count(), stored.len());

    let lines_before = server.member_report(FAMILY, "mother", "mother").await.entries.len();
    assert!(lines_before >= 1);
    // Then the whole record: her identity and the consent go too; shared data stays.
    let whole = officer(&server, YOUTH_CARE, "privacy_officer").await.erase_records(erase("mother", &[])).await;
    let whole = whole.unwrap().into_inner();
    assert!(whole.keys_destroyed >= 2 && whole.events_shredded >= 2, "{whole:?}");
    let after = own.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner();
    assert!(texts(&after).contains(&"samen-plan".to_string()));
    let stored = server.family_events(FAMILY).await;
    let opened = server.open(&stored).await;
    assert_eq!(opened.iter().filter(|o| o.is_none()).count() as u64, done.events_shredded + whole.events_shredded);
    // She is no member any more, but may still see who saw her data before (AVG art. 15).
    let report = server.member_report(FAMILY, "mother", "mother").await;
    assert_eq!(report.entries.len(), lines_before, "the report still lists who saw what");
    gezinsdossier_ledger::chain::verify_stream(&stored).unwrap();
}

#[tokio::test]
async fn an_ots_in_force_or_nothing_in_scope_is_refused_with_the_reason_and_recorded() {
    let server = TestServer::start().await;
    family(&server).await;
    crate::consent_dossier::impose_ots(&server).await;

    let mut fg = officer(&server, YOUTH_CARE, "privacy_officer").await;
    let refused = fg.erase_records(erase("child", &[])).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("ots"), "{}", refused.message());
    // A parent with gezag over the child is held by the measure too.
    assert_eq!(fg.erase_records(erase("mother", &[])).await.unwrap_err().code(), Code::FailedPrecondition);
    // Nothing youth care wrote is about the teen's addiction: nothing to erase.
    let nothing = fg.erase_records(erase("teen", &[C::Addiction])).await.unwrap_err();
    assert_eq!(nothing.code(), Code::FailedPrecondition, "{nothing:?}");
    let unknown = fg.erase_records(erase("nobody", &[])).await.unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(unknown.message().starts_with("subject_member_id"), "{}", unknown.message());

    let refusals = server
        .access_log(FAMILY)
        .await
        .into_iter()
        .filter(|e| matches!(e, AccessLogEvent::FunctionRefused(r) if r.reasons.iter().any(|x| x.contains("ots"))))
        .count();
    assert_eq!(refusals, 2, "each refusal is recorded");
    // Nothing was shredded.
    let stored = server.family_events(FAMILY).await;
    assert!(server.open(&stored).await.iter().all(Option::is_some));
}

#[tokio::test]
async fn a_restriction_holds_disclosures_back_until_a_new_consent_or_its_lifting_avg_18() {
    let server = TestServer::start().await;
    family(&server).await;
    let mut youth = server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let mut consent = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    consent.grant_consent(grant("c-plan", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"])).await.unwrap();
    let plan_note = build::event(&["mother"], &[C::Plan], Kind::Note(pb::Note { text: "moeder-plan".into() }));
    youth.append_events(append(FAMILY, any(), vec![plan_note])).await.unwrap();
    let mut gi = server.dossier_client(GI, "gv-3", "gezinsvoogd").await;
    let seen = |d: pb::Dossier| texts(&d).contains(&"moeder-plan".to_string());
    assert!(seen(gi.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner()));

    let request = pb::RestrictRecordsRequest {
        family_id: FAMILY.into(),
        subject_member_id: "mother".into(),
        categories: vec![C::Plan as i32],
    };
    let care_role = officer(&server, YOUTH_CARE, "casusregisseur").await.restrict_records(request.clone()).await;
    assert_eq!(care_role.unwrap_err().code(), Code::PermissionDenied);
    let mut fg = officer(&server, YOUTH_CARE, "privacy_officer").await;
    let restricted = fg.restrict_records(request).await.unwrap().into_inner();
    assert!(!restricted.restriction_id.is_empty());

    // Held back from the GI on the old consent; its author still sees it.
    assert!(!seen(gi.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner()));
    let mut own = server.dossier_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    assert!(seen(own.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner()));

    // A consent the mother gives after the restriction lets it through again.
    server.advance(chrono::Duration::seconds(1));
    consent.grant_consent(grant("c-plan-2", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"])).await.unwrap();
    assert!(seen(gi.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner()));
    let cited = server.access_log(FAMILY).await.into_iter().rev().find_map(|e| match e {
        AccessLogEvent::Disclosed(d) => d.shown.get("mother").and_then(|c| c.get(&InformationCategory::Plan).cloned()),
        _ => None,
    });
    assert!(
        matches!(&cited, Some(Basis::Consent { consent_id, .. }) if consent_id == "c-plan-2"),
        "the disclosure cites the consent that allowed it: {cited:?}"
    );
    consent
        .withdraw_consent(pb::WithdrawConsentRequest {
            family_id: FAMILY.into(),
            event_id: build::id(),
            consent_id: "c-plan-2".into(),
            withdrawn_by_member_id: "mother".into(),
            reason: "Toch niet".into(),
            by_guardian: false,
        })
        .await
        .unwrap();
    assert!(!seen(gi.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner()));

    // Lifting is the author's, once; then the old consent covers it again.
    let lift = pb::LiftRestrictionRequest { family_id: FAMILY.into(), restriction_id: restricted.restriction_id };
    assert_eq!(
        officer(&server, VGGZ, "privacy_officer").await.lift_restriction(lift.clone()).await.unwrap_err().code(),
        Code::InvalidArgument,
        "another organisation's restriction"
    );
    fg.lift_restriction(lift.clone()).await.unwrap();
    assert!(seen(gi.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner()));
    assert_eq!(fg.lift_restriction(lift).await.unwrap_err().code(), Code::InvalidArgument, "lifted already");
    let steps = server.family_events(FAMILY).await.iter().filter(|e| e.event_type == "restriction.recorded").count();
    assert_eq!(steps, 2, "both steps are events");
}

#[tokio::test]
async fn the_background_retention_run_shreds_the_case_record_decades_later() {
    let server = TestServer::start_with(|c| c.retention_every_secs = 1).await;
    family(&server).await;
    let mut own = server.dossier_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    assert!(
        texts(&own.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap().into_inner())
            .contains(&"Gesprek met de tiener".to_string())
    );
    server.advance(chrono::Duration::days(365 * 21 + 6));
    let mut shredded = false;
    for _ in 0..100 {
        if server.family_events(FAMILY).await.iter().any(|e| e.event_type == "erasure.recorded") {
            shredded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(shredded, "no retention run within 10 s");
    let stored = server.family_events(FAMILY).await;
    let opened = server.open(&stored).await;
    assert!(opened.iter().filter(|o| o.is_none()).count() >= 8, "the case record is shredded");
    let erasure = stored.iter().find(|e| e.event_type == "erasure.recorded").unwrap();
    assert!(String::from_utf8_lossy(&erasure.payload).contains("retention_ended"));
}

#[tokio::test]
async fn a_feed_subscriber_is_told_which_items_it_received_were_erased_and_gets_no_content() {
    use crate::feed::{feed, next, subscribe};
    let server = TestServer::start().await;
    family(&server).await;
    let mut youth = server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let mut consent = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    consent.grant_consent(grant("c-plan", "mother", &[C::Plan], GI, pb::Purpose::Care, &["mother"])).await.unwrap();
    let mut stream = feed(&server, GI).await.subscribe(subscribe("")).await.unwrap().into_inner();
    next(&mut stream).await.unwrap();
    let note = build::event(&["mother"], &[C::Plan], Kind::Note(pb::Note { text: "moeder-plan".into() }));
    let note_id = note.event_id.clone();
    youth.append_events(append(FAMILY, any(), vec![note])).await.unwrap();
    let live = next(&mut stream).await.unwrap();
    assert!(live.items.iter().any(|i| i.event_id == note_id));

    officer(&server, YOUTH_CARE, "privacy_officer").await.erase_records(erase("mother", &[C::Plan])).await.unwrap();
    // It is told of the erasure; nothing of the content comes again, and the consent that
    // still covers her plans has not ended.
    loop {
        let m = next(&mut stream).await.unwrap();
        assert!(!m.access_ended, "an erasure is no end of access: {m:?}");
        assert!(m.items.iter().all(|i| i.event.is_none()), "{:?}", m.items);
        if !m.erased_event_ids.is_empty() {
            assert_eq!(m.erased_event_ids, vec![note_id.clone()]);
            assert!(m.notices.iter().any(|n| n.kind == pb::NoticeKind::Erasure as i32 && n.about_event_id == note_id));
            break;
        }
    }
}

#[tokio::test]
async fn after_an_erasure_earlier_proofs_still_verify_and_verify_counts_the_shredded() {
    use gezinsdossier_ledger::merkle::TreeHash;
    use gezinsdossier_ledger::merkle::verify::verify_inclusion;
    use gezinsdossier_proto::v1::log_service_client::LogServiceClient;
    let server = TestServer::start_with(|c| {
        c.tree_head_every_events = 5;
        c.tree_head_interval_ms = 50;
    })
    .await;
    let mut case = server.case_client(VGGZ, "p", "psychiater").await;
    let family_id = "fam-proofs";
    case.append_events(append(family_id, build::no_stream(), vec![build::parent("mother")])).await.unwrap();
    let mut positions = Vec::new();
    for i in 0..6 {
        let ack = case.append_events(append(family_id, any(), vec![build::note("mother", &format!("noot {i}"))])).await;
        positions.extend(ack.unwrap().into_inner().global_positions);
    }
    let mut log = LogServiceClient::with_interceptor(
        server.channel(Some(VGGZ)).await,
        Professional::new("fg", "privacy_officer"),
    );
    let mut head = None;
    for _ in 0..200 {
        let h = log.get_latest_tree_head(pb::GetLatestTreeHeadRequest::default()).await.unwrap().into_inner();
        if h.size > positions[5] {
            head = Some(h);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let head = head.expect("a signed head covering the notes");
    let proof_of = async |log: &mut LogServiceClient<_>| {
        let request =
            pb::GetInclusionProofRequest { position: positions[2], tree_size: head.size, include_event_bytes: true };
        log.get_inclusion_proof(request).await.unwrap().into_inner()
    };
    let before = proof_of(&mut log).await;

    let mut fg = officer(&server, VGGZ, "privacy_officer").await;
    let erased = fg
        .erase_records(pb::EraseRecordsRequest { family_id: family_id.into(), ..erase("mother", &[]) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(erased.events_shredded, 7, "her identity and six notes: {erased:?}");

    // The same bytes, the same path, the same signed root: the proof taken before still holds.
    let after = proof_of(&mut log).await;
    assert_eq!(after.canonical_event, before.canonical_event);
    let path: Vec<TreeHash> = after.hashes.iter().map(|h| TreeHash::try_from_slice(h).unwrap()).collect();
    verify_inclusion(&after.canonical_event, positions[2], head.size, &path, &TreeHash::from_hex(&head.root).unwrap())
        .expect("the erased note is still in the signed tree");

    // `verify` on a copy passes and counts what is shredded.
    let key =
        gezinsdossier_ledger::treehead::TreeHeadSigner::load_or_create(&server.data_dir.join("treehead.key")).unwrap();
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&server.data_dir).unwrap() {
        let entry = entry.unwrap();
        // The events with their WAL, and the key file beside them.
        if entry.file_name().to_string_lossy().contains(".sqlite3") {
            std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
        }
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gezinsdossier"))
        .args(["verify", "--data-dir", copy.path().to_str().unwrap(), "--public-key", &hex::encode(key.public_key())])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("7 payloads encrypted, 7 of them shredded"), "{stdout}");
}

#[tokio::test]
async fn the_retention_and_key_rotation_commands_run_on_a_data_directory() {
    let server = TestServer::start().await;
    family(&server).await;
    let events = server.family_events(FAMILY).await;
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&server.data_dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().contains(".sqlite3") {
            std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
        }
    }
    server.stop().await;
    let data = copy.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for entry in std::fs::read_dir(copy.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::rename(entry.path(), data.join(entry.file_name())).unwrap();
        }
    }
    let (old, new) = (copy.path().join("old.hex"), copy.path().join("new.hex"));
    std::fs::write(&old, crate::support::TEST_KEK).unwrap();
    let cli = |args: &[&str], env: &[(&str, String)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gezinsdossier"));
        command.args(args).args(["--data-dir", data.to_str().unwrap(), "--insecure-dev"]);
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };

    let dry = cli(&["retention", "--dry-run", "--kek-file", old.to_str().unwrap()], &[]);
    assert!(dry.contains("0 families or logs with something due"), "{dry}");

    let fresh =
        std::process::Command::new(env!("CARGO_BIN_EXE_gezinsdossier")).args(["keys", "new-kek"]).output().unwrap();
    std::fs::write(&new, &fresh.stdout).unwrap();
    let previous = format!("[{:?}]", old.to_str().unwrap());
    let rotated = cli(
        &["keys", "rotate", "--kek-file", new.to_str().unwrap()],
        &[("GEZINSDOSSIER_PREVIOUS_KEK_FILES", previous)],
    );
    assert!(rotated.starts_with("rewrapped ") && !rotated.starts_with("rewrapped 0 "), "{rotated}");
    // The new KEK alone now opens every event; the events were not rewritten.
    let new_kek = String::from_utf8(fresh.stdout).unwrap();
    let opened = crate::support::open_family_events(&data, new_kek.trim(), &events).await;
    assert!(opened.iter().all(Option::is_some));
    let store = gezinsdossier_ledger::store::sqlite::SqliteStore::open(&data).unwrap();
    let stream = gezinsdossier_ledger::family::FamilyId::new(FAMILY).unwrap().stream();
    assert_eq!(store.read_stream(&stream, 0, 10_000).await.unwrap(), events);
    store.shutdown().await;
}
