//! A parent checks a line of the who-saw-what report with `tools/check_report_line.py`
//! (Python's standard library and an Ed25519 library, none of our code): the line's bytes
//! against the access-log event's commitment, the event against the signed checkpoint.
//! The line holds only that member's part of a disclosure that covered two members.

use crate::support::build::{self, any, append};
use crate::support::{Professional, TestServer, VGGZ, YOUTH_CARE};
use gezinsdossier_ledger::treehead::TreeHeadSigner;
use gezinsdossier_proto::v1 as pb;
use std::time::Duration;

fn python() -> Option<String> {
    match std::env::var("GZD_TEST_PYTHON") {
        Ok(python) => Some(python),
        Err(_) if std::env::var("GZD_TEST_REQUIRE_FHIR").as_deref() == Ok("1") => {
            panic!("GZD_TEST_REQUIRE_FHIR=1 but GZD_TEST_PYTHON is not set")
        }
        Err(_) => {
            let has = std::process::Command::new("python3").args(["-c", "import cryptography"]).status();
            if has.is_ok_and(|s| s.success()) {
                return Some("python3".into());
            }
            eprintln!("SKIPPED the offline line check: no python with `cryptography` (set GZD_TEST_PYTHON)");
            None
        }
    }
}

fn consent(subject: &str) -> pb::GrantConsentRequest {
    pb::GrantConsentRequest {
        family_id: "fam-l".into(),
        event_id: build::id(),
        consent_id: format!("c-{subject}"),
        subject_member_id: subject.into(),
        categories: vec![pb::InformationCategory::TreatmentNotes as i32],
        recipients: vec![pb::Recipient {
            recipient: Some(pb::recipient::Recipient::OrganisationId(YOUTH_CARE.into())),
        }],
        purpose: pb::Purpose::Care as i32,
        given_by_member_ids: vec![subject.into()],
        method: Some(pb::ConsentMethod { method: Some(pb::consent_method::Method::SignedFormReference("f".into())) }),
        requested_reason: "afstemming".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_parent_checks_a_report_line_offline_and_sees_only_their_own_part() {
    let Some(python) = python() else { return };
    let server = TestServer::start_with(|c| {
        c.tree_head_every_events = 1;
        c.tree_head_interval_ms = 20;
    })
    .await;
    let mut case = server.case_client(VGGZ, "p", "psychiater").await;
    case.append_events(append("fam-l", build::no_stream(), vec![build::parent("mother"), build::parent("father")]))
        .await
        .unwrap();
    case.append_events(append("fam-l", any(), vec![build::note("mother", "m"), build::note("father", "f")]))
        .await
        .unwrap();
    let mut consents = server.consent_client(VGGZ, "p", "psychiater").await;
    consents.grant_consent(consent("mother")).await.unwrap();
    consents.grant_consent(consent("father")).await.unwrap();
    let mut youth = server.dossier_client(YOUTH_CARE, "jh", "casusregisseur").await;
    let care =
        pb::GetDossierRequest { family_id: "fam-l".into(), purpose: pb::Purpose::Care as i32, break_the_glass: None };
    youth.get_dossier(care).await.unwrap();

    let mut portal = gezinsdossier_proto::v1::access_report_service_client::AccessReportServiceClient::with_interceptor(
        server.channel(Some(VGGZ)).await,
        Professional::new("portal", "psychiater").member_authenticated_by("digid_substantieel"),
    );
    let ask = pb::GetAccessReportRequest {
        family_id: "fam-l".into(),
        subject_member_id: "mother".into(),
        requested_by_member_id: "mother".into(),
        language: 0,
        include_line_bytes: true,
    };
    // Wait (bounded) until a signed head covers the disclosure, so the line has a proof.
    let mut report = None;
    for _ in 0..200 {
        let r = portal.get_access_report(ask.clone()).await.unwrap().into_inner();
        if r.entries.first().is_some_and(|e| !e.inclusion_proof.is_empty()) {
            report = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let report = report.expect("a signed head covers the disclosure");
    // Only asked for: a plain report carries no line bytes.
    let plain = pb::GetAccessReportRequest { include_line_bytes: false, ..ask.clone() };
    let plain = portal.get_access_report(plain).await.unwrap().into_inner();
    assert!(plain.entries.iter().all(|e| e.line.is_empty() && e.canonical_event.is_empty()), "{plain:?}");
    let entry = &report.entries[0];
    assert!(!entry.line.is_empty() && entry.line_salt.len() == 32, "{entry:?}");
    let line: serde_json::Value = serde_json::from_slice(&entry.line).unwrap();
    assert_eq!((line["subject"].as_str(), line["organisation_id"].as_str()), (Some("mother"), Some(YOUTH_CARE)));
    assert!(line["shown"].get("treatment_notes").is_some(), "{line}");
    // The disclosure also covered the father; his part is not in the mother's line.
    let text = String::from_utf8_lossy(&entry.line);
    assert!(!text.contains("father") && !text.contains("\"jh\""), "{text}");

    let key = TreeHeadSigner::load_or_create(&server.data_dir.join("treehead.key")).unwrap();
    let head = report.tree_head.clone().unwrap();
    let b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let given = |line: &[u8]| {
        serde_json::json!({
            "line": b64(line),
            "line_salt": b64(&entry.line_salt),
            "line_index": entry.line_index,
            "canonical_event": b64(&entry.canonical_event),
            "position": entry.position,
            "inclusion_proof": entry.inclusion_proof.iter().map(|p| b64(p)).collect::<Vec<_>>(),
            "checkpoint": head.checkpoint,
            "log_public_key": hex::encode(key.public_key()),
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/check_report_line.py");
    let run = |input: serde_json::Value| {
        let file = dir.path().join("line.json");
        std::fs::write(&file, input.to_string()).unwrap();
        std::process::Command::new(&python).arg(&script).arg(&file).output().unwrap()
    };
    let ok = run(given(&entry.line));
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(
        stdout.starts_with("OK: this line is in gezinsdossier.example/local") && stdout.contains("mother"),
        "{stdout}"
    );

    // A line edited to claim another basis or category no longer matches its commitment.
    let edited = text.replace("treatment_notes", "diagnosis");
    let bad = run(given(edited.as_bytes()));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not what the event committed to"));
    // Another log's key does not verify the checkpoint.
    let mut other_key = given(&entry.line);
    other_key["log_public_key"] = serde_json::json!("11".repeat(32));
    let bad = run(other_key);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no signature of the log"), "{bad:?}");
    server.stop().await;
}
