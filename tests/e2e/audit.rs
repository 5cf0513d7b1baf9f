//! The privacy officer's audit: queries over disclosures and refusals with filters and
//! paging, the review queue, and every query itself logged.

use crate::consent_dossier::{FAMILY, dossier_request, family, grant};
use crate::support::build;
use crate::support::{GI, TestServer, YOUTH_CARE};
use gezinsdossier_ledger::disclosure::AccessLogEvent;
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::audit_service_client::AuditServiceClient;
use pb::InformationCategory as C;
use tonic::Code;

fn query() -> pb::QueryAccessLogRequest {
    pb::QueryAccessLogRequest { family_id: FAMILY.into(), ..Default::default() }
}

#[tokio::test]
async fn a_privacy_officer_queries_reviews_and_is_logged_doing_so() {
    let server = TestServer::start().await;
    family(&server).await;
    // Three requests: one under consent, one refused, one break-the-glass.
    let mut youth_consent = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    youth_consent
        .grant_consent(grant("c-mother", "mother", &[C::TreatmentNotes], YOUTH_CARE, pb::Purpose::Care, &["mother"]))
        .await
        .unwrap();
    let mut youth = server.dossier_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    youth.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap();
    let mut gi = server.dossier_client(GI, "gv-3", "gezinsvoogd").await;
    assert_eq!(gi.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap_err().code(), Code::PermissionDenied);
    let mut btg = dossier_request(pb::Purpose::SafetyAssessment);
    btg.break_the_glass = Some(pb::BreakTheGlass { reason: "acuut gevaar".into() });
    gi.get_dossier(btg).await.unwrap();

    let channel = server.channel(Some(YOUTH_CARE)).await;
    let mut not_officer = AuditServiceClient::with_interceptor(
        channel.clone(),
        crate::support::Professional::new("jh-1", "casusregisseur"),
    );
    assert_eq!(not_officer.query_access_log(query()).await.unwrap_err().code(), Code::PermissionDenied);
    let mut officer =
        AuditServiceClient::with_interceptor(channel, crate::support::Professional::new("fg-1", "privacy_officer"));
    let reader = officer.clone();
    let run = async |request: pb::QueryAccessLogRequest| -> Vec<pb::AccessLogEntry> {
        let mut stream = reader.clone().query_access_log(request).await.unwrap().into_inner();
        let mut out = Vec::new();
        while let Some(entry) = stream.message().await.unwrap() {
            out.push(entry);
        }
        out
    };

    // Youth care's privacy office sees its own organisation's requests and the disclosures
    // of its data (the GI's break-the-glass showed youth care's plans); the GI's refused
    // request disclosed nothing of youth care's and is the GI's office's to see.
    let disclosures = run(query()).await;
    assert_eq!(disclosures.len(), 2, "{disclosures:?}");
    let with_refusals = run(pb::QueryAccessLogRequest { include_refusals: true, ..query() }).await;
    let refused: Vec<_> = with_refusals.iter().filter(|e| e.refused).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        (refused[0].organisation_id.as_str(), refused[0].refused_function.as_str()),
        (YOUTH_CARE, "query_access_log")
    );
    let by_youth = run(pb::QueryAccessLogRequest { organisation_id: YOUTH_CARE.into(), ..query() }).await;
    assert_eq!(by_youth.len(), 1);
    assert!(
        by_youth[0].shown.iter().all(|s| s.subject_member_id == "mother" && s.category == C::TreatmentNotes as i32)
    );
    let btg_only = run(pb::QueryAccessLogRequest { basis_type: pb::BasisType::BreakTheGlass as i32, ..query() }).await;
    assert_eq!(btg_only.len(), 1);
    assert_eq!(btg_only[0].break_the_glass_reason, "acuut gevaar");

    // The review queue holds the break-the-glass use until it is reviewed.
    let pending = run(pb::QueryAccessLogRequest { pending_review_only: true, ..query() }).await;
    assert_eq!(pending.iter().map(|e| &e.event_id).collect::<Vec<_>>(), vec![&btg_only[0].event_id]);
    let review = |id: &str, outcome: pb::ReviewOutcome| pb::RecordReviewRequest {
        family_id: FAMILY.into(),
        disclosure_event_id: id.into(),
        outcome: outcome as i32,
        note: "Kind was alleen; terecht".into(),
    };
    officer.record_review(review(&btg_only[0].event_id, pb::ReviewOutcome::Justified)).await.unwrap();
    assert!(run(pb::QueryAccessLogRequest { pending_review_only: true, ..query() }).await.is_empty());
    let reviewed = run(pb::QueryAccessLogRequest { basis_type: pb::BasisType::BreakTheGlass as i32, ..query() }).await;
    assert_eq!(reviewed[0].review.as_ref().unwrap().outcome, pb::ReviewOutcome::Justified as i32);
    let again = officer.record_review(review(&btg_only[0].event_id, pb::ReviewOutcome::Justified)).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let consent_based =
        officer.record_review(review(&by_youth[0].event_id, pb::ReviewOutcome::Justified)).await.unwrap_err();
    assert_eq!(consent_based.code(), Code::FailedPrecondition);
    let unknown = officer
        .record_review(review(&uuid::Uuid::new_v4().to_string(), pb::ReviewOutcome::Justified))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let no_outcome =
        officer.record_review(review(&btg_only[0].event_id, pb::ReviewOutcome::Unspecified)).await.unwrap_err();
    assert!(no_outcome.message().starts_with("outcome:"), "{}", no_outcome.message());

    // Paging: one entry at a time, resuming after the last position seen.
    let first = run(pb::QueryAccessLogRequest { limit: 1, ..query() }).await;
    let second =
        run(pb::QueryAccessLogRequest { limit: 1, after_position: Some(first[0].global_position), ..query() }).await;
    assert_eq!((first.len(), second.len()), (1, 1));
    assert_ne!(first[0].event_id, second[0].event_id);

    // Across families: what youth care saw anywhere, each row naming its family. The query is
    // logged in the cross-family audit stream.
    let mut youth_case = server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let second =
        build::append("fam-second", build::no_stream(), vec![build::parent("p"), build::note("p", "eigen notitie")]);
    youth_case.append_events(second).await.unwrap();
    let mut own = dossier_request(pb::Purpose::Care);
    own.family_id = "fam-second".into();
    youth.get_dossier(own).await.unwrap();
    let everywhere =
        run(pb::QueryAccessLogRequest { family_id: String::new(), organisation_id: YOUTH_CARE.into(), ..query() })
            .await;
    let families: Vec<_> = everywhere.iter().map(|e| e.family_id.as_str()).collect();
    assert_eq!(families, vec![FAMILY, "fam-second"], "{everywhere:?}");
    assert!(everywhere.windows(2).all(|w| w[0].global_position < w[1].global_position));
    let cross = gezinsdossier_ledger::disclosure::cross_family_audit_stream();
    use gezinsdossier_ledger::store::EventStore;
    assert_eq!(server.store.read_stream(&cross, 0, 10).await.unwrap().len(), 1);

    // Every query above was itself logged, with its filters and never its results.
    let audited =
        server.access_log(FAMILY).await.into_iter().filter(|e| matches!(e, AccessLogEvent::Audited(_))).count();
    assert_eq!(audited, 9, "nine queries by the officer; the refused non-officer read nothing");

    // The NEN 7513 export of the same log, as JSON lines and as CSV.
    let kek_file = server.data_dir.with_extension("kek");
    std::fs::write(&kek_file, crate::support::TEST_KEK).unwrap();
    let export = |format: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gezinsdossier"))
            .args(["export", "--data-dir", server.data_dir.to_str().unwrap(), "--format", format, "--family", FAMILY])
            .args(["--kek-file", kek_file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let lines: Vec<serde_json::Value> =
        export("nen7513-jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let fields = [
        "event",
        "action",
        "date_time",
        "outcome",
        "user",
        "responsible_user",
        "role",
        "purpose_of_use",
        "client",
        "organisation",
        "authorisation_profile",
        "emergency",
    ];
    assert!(lines.iter().all(|l| fields.iter().all(|f| l.get(f).is_some())), "{:?}", lines.first());
    let emergency: Vec<_> = lines.iter().filter(|l| l["emergency"] == true).collect();
    assert!(!emergency.is_empty());
    assert!(
        emergency
            .iter()
            .all(|l| l["authorisation_profile"].as_str().unwrap().starts_with("legal_basis:break_the_glass:"))
    );
    let consent_read = lines
        .iter()
        .find(|l| l["event"] == "disclosure" && l["organisation"] == YOUTH_CARE)
        .expect("the youth care disclosure");
    assert_eq!(
        (
            consent_read["client"].as_str(),
            consent_read["authorisation_profile"].as_str(),
            consent_read["user"].as_str()
        ),
        (Some(format!("{FAMILY}/mother").as_str()), Some("consent:c-mother"), Some("jh-1"))
    );
    assert!(lines.iter().any(|l| l["event"] == "refusal" && l["outcome"] == "refused"));
    assert_eq!(lines.iter().filter(|l| l["event"] == "audit_query").count(), 9);
    let csv = export("nen7513-csv");
    let mut rows = csv.lines();
    assert!(rows.next().unwrap().starts_with("event_id,event,action,date_time,outcome,user,responsible_user,role"));
    assert_eq!(rows.count(), lines.len());

    // FHIR R4: an AuditEvent per access-log entry and a Consent per consent.
    let audit_bundle: serde_json::Value = serde_json::from_str(&export("fhir-audit-events")).unwrap();
    let entries = audit_bundle["entry"].as_array().unwrap();
    // Notices are no access to data: they have no AuditEvent.
    let accesses = server
        .access_log(FAMILY)
        .await
        .into_iter()
        .filter(|e| !matches!(e, AccessLogEvent::Notified(_) | AccessLogEvent::NoticeAcknowledged(_)));
    assert_eq!(entries.len(), accesses.count());
    let emergency = entries
        .iter()
        .find(|e| e["resource"]["purposeOfEvent"].to_string().contains("ETREAT"))
        .expect("the break-the-glass disclosure is marked as emergency");
    assert_eq!(emergency["resource"]["action"], "R");
    let consent_bundle: serde_json::Value = serde_json::from_str(&export("fhir-consents")).unwrap();
    let consent = &consent_bundle["entry"][0]["resource"];
    assert_eq!((consent["id"].as_str(), consent["status"].as_str()), (Some("c-mother"), Some("active")));
    assert_eq!(consent["patient"]["identifier"]["value"], "mother");
    validate_fhir(&[("audit-events", &audit_bundle), ("consents", &consent_bundle)]);
    server.stop().await;
}

/// Validates the bundles with the FHIR R4 models (tests/fhir/validate.py), and checks that
/// the validator does reject an invalid resource.
fn validate_fhir(bundles: &[(&str, &serde_json::Value)]) {
    let Ok(python) = std::env::var("GZD_TEST_PYTHON") else {
        if std::env::var("GZD_TEST_REQUIRE_FHIR").as_deref() == Ok("1") {
            panic!("GZD_TEST_REQUIRE_FHIR=1 but GZD_TEST_PYTHON is not set");
        }
        eprintln!("SKIPPED FHIR validation: set GZD_TEST_PYTHON to a python with fhir.resources==6.4.0 (see .ci/run)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fhir/validate.py");
    let run =
        |paths: &[std::path::PathBuf]| std::process::Command::new(&python).arg(&script).args(paths).output().unwrap();
    let paths: Vec<_> = bundles
        .iter()
        .map(|(name, bundle)| {
            let path = dir.path().join(format!("{name}.json"));
            std::fs::write(&path, serde_json::to_vec(bundle).unwrap()).unwrap();
            path
        })
        .collect();
    let ok = run(&paths);
    assert!(ok.status.success(), "{}{}", String::from_utf8_lossy(&ok.stdout), String::from_utf8_lossy(&ok.stderr));
    let mut broken = bundles[0].1.clone();
    broken["entry"][0]["resource"].as_object_mut().unwrap().remove("recorded");
    let bad = dir.path().join("broken.json");
    std::fs::write(&bad, serde_json::to_vec(&broken).unwrap()).unwrap();
    assert!(!run(&[bad]).status.success(), "the validator must reject an AuditEvent without `recorded`");
}
