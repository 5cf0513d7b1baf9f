//! The parents' who-saw-what report: who may ask for whose report, what it lists, the
//! rendered page in Dutch and English (checked in headless Chromium), and the request logged.

use crate::consent_dossier::{FAMILY, dossier_request, family, grant};
use crate::support::build::{self, any, append};
use crate::support::{GI, Professional, TestServer, YOUTH_CARE};
use chrono::Datelike;
use gezinsdossier_ledger::authorisation::{Function, MemberAuthentication};
use gezinsdossier_ledger::clock::Clock;
use gezinsdossier_ledger::disclosure::AccessLogEvent;
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::access_report_service_client::AccessReportServiceClient;
use pb::InformationCategory as C;
use tonic::Code;

fn ask(subject: &str, by: &str, language: pb::ReportLanguage) -> pb::GetAccessReportRequest {
    pb::GetAccessReportRequest {
        family_id: FAMILY.into(),
        subject_member_id: subject.into(),
        requested_by_member_id: by.into(),
        language: language as i32,
        include_line_bytes: false,
    }
}

#[tokio::test]
async fn members_see_who_saw_their_data_and_parents_only_their_young_childrens() {
    let server = TestServer::start().await;
    family(&server).await;
    let year = server.clock.now_date().year();
    let mut youth_case = server.case_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    let young = build::child("young", build::date(year - 17, 1, 1), &["mother", "father"]);
    youth_case.append_events(append(FAMILY, any(), vec![young])).await.unwrap();

    // Youth care reads the mother's treatment notes under her consent; the GI is refused,
    // then breaks the glass.
    let mut consent = server.consent_client(YOUTH_CARE, "jh-1", "casusregisseur").await;
    consent
        .grant_consent(grant("c-mother", "mother", &[C::TreatmentNotes], YOUTH_CARE, pb::Purpose::Care, &["mother"]))
        .await
        .unwrap();
    server
        .dossier_client(YOUTH_CARE, "jh-1", "casusregisseur")
        .await
        .get_dossier(dossier_request(pb::Purpose::Care))
        .await
        .unwrap();
    let mut gi = server.dossier_client(GI, "gv-3", "gezinsvoogd").await;
    assert_eq!(gi.get_dossier(dossier_request(pb::Purpose::Care)).await.unwrap_err().code(), Code::PermissionDenied);
    let mut btg = dossier_request(pb::Purpose::SafetyAssessment);
    btg.break_the_glass = Some(pb::BreakTheGlass { reason: "Kind alleen thuis".into() });
    gi.get_dossier(btg).await.unwrap();

    // Youth care's portal, which logged the member in with DigiD Substantieel.
    let portal_as = async |means: Option<&str>, org: &str| {
        let meta = Professional::new("portal-service", "casusregisseur");
        AccessReportServiceClient::with_interceptor(
            server.channel(Some(org)).await,
            match means {
                Some(m) => meta.member_authenticated_by(m),
                None => meta,
            },
        )
    };
    let mut portal = portal_as(Some("digid_substantieel"), YOUTH_CARE).await;
    let report =
        portal.get_access_report(ask("mother", "mother", pb::ReportLanguage::Dutch)).await.unwrap().into_inner();
    let seen: Vec<_> = report.entries.iter().filter(|e| !e.refused).collect();
    assert_eq!(seen.len(), 2, "{:?}", report.entries);
    assert_eq!(seen[0].organisation_name, YOUTH_CARE.to_uppercase());
    assert_eq!(
        (seen[0].consent_ids.clone(), seen[0].categories.clone()),
        (vec!["c-mother".to_string()], vec![C::TreatmentNotes as i32])
    );
    assert_eq!(seen[1].emergency_reason, "Kind alleen thuis");
    assert_eq!(seen[1].legal_grounds, vec![pb::LegalBasisKind::BreakTheGlass as i32]);
    assert_eq!(report.entries.iter().filter(|e| e.refused).count(), 1);
    assert_eq!(report.consents.iter().map(|c| c.consent_id.as_str()).collect::<Vec<_>>(), vec!["c-mother"]);
    assert!(report.html.contains("<html lang=\"nl\">") && report.html.contains("Wie heeft uw gegevens gezien?"));
    for staff in ["jh-1", "gv-3", "portal-service"] {
        assert!(!report.html.contains(staff), "staff id {staff} must not appear in the report");
    }
    render_in_chromium(&report.html, report.entries.len(), "Kind alleen thuis");

    // A parent with gezag sees a young child's report, in English.
    let child =
        portal.get_access_report(ask("child", "father", pb::ReportLanguage::English)).await.unwrap().into_inner();
    assert!(child.html.contains("<html lang=\"en\">") && child.html.contains("Who has seen your information?"));
    assert!(
        child.entries.iter().any(|e| !e.emergency_reason.is_empty()),
        "the break-the-glass read the child's data too"
    );

    // Not: a parent for the other parent, a parent for a 16-year-old or older, a child for a sibling.
    for (subject, by) in [("mother", "father"), ("young", "mother"), ("child", "teen")] {
        let err = portal.get_access_report(ask(subject, by, pb::ReportLanguage::Dutch)).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{by} for {subject}: {err:?}");
    }
    assert!(portal.get_access_report(ask("young", "young", pb::ReportLanguage::Dutch)).await.is_ok());
    let err = portal.get_access_report(ask("nobody", "mother", pb::ReportLanguage::Dutch)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("not a member"), "{err:?}");

    // A portal must say how it authenticated the member, at level substantial or higher; an
    // organisation the registry names no portal gets nothing (the GI takes part, by its
    // break-the-glass).
    let mother = || ask("mother", "mother", pb::ReportLanguage::Dutch);
    let silent = portal_as(None, YOUTH_CARE).await.get_access_report(mother()).await.unwrap_err();
    assert!(silent.message().contains("x-member-authentication"), "{silent:?}");
    let weak = portal_as(Some("digid_midden"), YOUTH_CARE).await.get_access_report(mother()).await.unwrap_err();
    assert!(weak.message().contains("Substantieel"), "{weak:?}");
    let bogus = portal_as(Some("password"), YOUTH_CARE).await.get_access_report(mother()).await.unwrap_err();
    assert_eq!(bogus.code(), Code::InvalidArgument, "{bogus:?}");
    let no_portal = portal_as(Some("digid_hoog"), GI).await.get_access_report(mother()).await.unwrap_err();
    assert!(no_portal.message().contains("portals"), "{no_portal:?}");
    for refused in [&silent, &weak, &no_portal] {
        assert_eq!(refused.code(), Code::PermissionDenied);
    }

    // Each report given was logged, with the means of authentication; so was each refusal.
    let log = server.access_log(FAMILY).await;
    let reported: Vec<_> = log
        .iter()
        .filter_map(|e| match e {
            AccessLogEvent::Reported(r) => Some(r.member_authentication),
            _ => None,
        })
        .collect();
    assert_eq!(reported, vec![Some(MemberAuthentication::DigidSubstantieel); 3]);
    let refused_reports = log
        .iter()
        .filter(|e| matches!(e, AccessLogEvent::FunctionRefused(f) if f.function == Function::GetAccessReport))
        .count();
    assert_eq!(refused_reports, 3 + 1 + 3, "three members refused, one unknown, three portals refused");
    server.stop().await;
}

/// Renders the page in headless Chromium: a PNG screenshot is made, and the DOM Chromium
/// built holds `rows` report lines and `text`.
fn render_in_chromium(html: &str, rows: usize, text: &str) {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| std::process::Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()));
    let Some(chromium) = chromium else {
        if std::env::var("GZD_TEST_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("GZD_TEST_REQUIRE_CHROMIUM=1 but no chromium is installed");
        }
        eprintln!("SKIPPED report rendering: no chromium (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, html).unwrap();
    let png = dir.path().join("report.png");
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];
    let profile = format!("--user-data-dir={}", dir.path().join("profile").display());
    let url = format!("file://{}", page.display());
    let shot = std::process::Command::new(chromium)
        .args(flags)
        .arg(&profile)
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,1400")
        .arg(&url)
        .output()
        .unwrap();
    let png_bytes =
        std::fs::read(&png).unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&shot.stderr)));
    assert!(png_bytes.starts_with(b"\x89PNG") && png_bytes.len() > 10_000, "screenshot is {} bytes", png_bytes.len());
    let dom =
        std::process::Command::new(chromium).args(flags).arg(&profile).arg("--dump-dom").arg(&url).output().unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("<tr class=\"entry").count(), rows, "{dom}");
    assert!(dom.contains(text));
    if let Ok(keep) = std::env::var("GZD_TEST_KEEP_REPORT_PNG") {
        std::fs::copy(&png, keep).unwrap();
    }
}
