//! `gezinsdossier demo`: a tour. It starts the server in-process on the embedded store, with
//! a development PKI, and runs one family through real gRPC calls over mTLS: a mother in
//! v-ggz treatment, a 13-year-old and a 6-year-old, a father with gezag but no contact, a
//! GI with an OTS for the younger child, a merged safety plan, MDOs every six weeks, one
//! withdrawn consent and one break-the-glass. It prints the dossier as two organisations
//! see it, the mother's report, and a verify result; then it tampers with a copy of the
//! data and shows the verifier catch it.

use crate::config::{Config, LogFormat};
use crate::identity::dev_ca::{self, DevPki};
use crate::identity::interceptor::ProfessionalMetadata;
use chrono::{Datelike, Duration, Utc};
use gezinsdossier_ledger::store::sqlite::LogFile;
use gezinsdossier_ledger::treehead::{self, TreeHeadSigner};
use gezinsdossier_ledger::verify::verify_log;
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::access_report_service_client::AccessReportServiceClient;
use gezinsdossier_proto::v1::case_service_client::CaseServiceClient;
use gezinsdossier_proto::v1::consent_service_client::ConsentServiceClient;
use gezinsdossier_proto::v1::dossier_service_client::DossierServiceClient;
use pb::InformationCategory as C;
use pb::case_event::Kind;
use tonic::transport::{Channel, Endpoint};

const VGGZ: &str = "ggz-delfland";
const YOUTH: &str = "jeugdhulp-haaglanden";
const GI: &str = "jeugdbescherming-west";
const FAMILY: &str = "demo-familie";

/// Runs the tour in `dir` (a fresh working directory) and prints what happens.
///
/// # Errors
/// Any step that fails; the message says which.
pub async fn run(dir: &std::path::Path) -> anyhow::Result<()> {
    let pki = dev_ca::generate(&dir.join("pki"), &dev_ca::sample_organisations(), &[])?;
    let data = dir.join("data");
    let config = Config {
        data_dir: data.clone(),
        tls: Some(pki.server_tls()),
        organisations: Some(pki.registry.clone()),
        log_format: LogFormat::Pretty,
        tree_head_every_events: 10,
        tree_head_interval_ms: 100,
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::serve(config, listener, async {
        let _ = stopped.await;
    }));
    crate::health::check(&format!("https://localhost:{port}"), Some(&pki.ca_cert), "localhost", &Default::default())
        .await?;
    println!("== gezinsdossier demo: server on 127.0.0.1:{port} (mTLS, embedded store in {})", data.display());

    let channel = |org: &'static str| connect(&pki, port, org);
    let meta = ProfessionalMetadata::new;
    let mut youth = CaseServiceClient::with_interceptor(channel(YOUTH).await?, meta("jh-12", "casusregisseur"));
    let mut vggz = CaseServiceClient::with_interceptor(channel(VGGZ).await?, meta("ggz-7", "regiebehandelaar"));
    let mut gi = CaseServiceClient::with_interceptor(channel(GI).await?, meta("gv-3", "gezinsvoogd"));

    // The family, registered by the youth care provider's coordinator.
    let year = Utc::now().year();
    let today = Utc::now().date_naive();
    let members = vec![
        member("mama", pb::MemberRole::Parent, "Sanne", None, &[]),
        member("papa", pb::MemberRole::Parent, "Erik", None, &[]),
        member("tiener", pb::MemberRole::Child, "Noor", Some((year - 13, 3, 14)), &["mama", "papa"]),
        member("kind", pb::MemberRole::Child, "Daan", Some((year - 6, 9, 2)), &["mama", "papa"]),
        event(
            &["mama", "tiener", "kind"],
            &[C::Involvement],
            Kind::Registration(pb::Registration {
                referral_route: pb::ReferralRoute::Huisarts as i32,
                reason: "Zorgen over de veiligheid thuis".into(),
            }),
        ),
        event(
            &["papa"],
            &[C::SocialContext],
            Kind::Note(pb::Note { text: "Vader heeft gezag maar geen contact met het gezin.".into() }),
        ),
        event(
            &["mama", "tiener", "kind"],
            &[C::SafetyPlan],
            Kind::PlanAgreed(pb::PlanAgreed {
                plan_kind: pb::PlanKind::Veiligheidsplan as i32,
                plan_id: "veiligheidsplan".into(),
                summary: "Samengevoegd veiligheidsplan van jeugdhulp en ggz".into(),
                warning_signs: vec!["Moeder slaapt slecht en trekt zich terug".into()],
                actions: vec![pb::SafetyAction {
                    who: "oma".into(),
                    what: "haalt de kinderen op".into(),
                    when: "bij het eerste signaal".into(),
                }],
                ..Default::default()
            }),
        ),
    ];
    youth.append_events(request(build_expect_none(), members)).await?;
    let mut mdos = Vec::new();
    for i in 0..3 {
        let mut mdo = event(
            &["mama", "tiener", "kind"],
            &[C::Plan],
            Kind::MdoHeld(pb::MdoHeld {
                participants: vec![participant(YOUTH), participant(VGGZ), participant(GI)],
                summary: format!("MDO {}: afspraken uit het gezinsplan besproken, ouders aanwezig", i + 1),
                next_mdo_on: None,
            }),
        );
        mdo.occurred_at = Some(timestamp(Utc::now() - Duration::weeks(6 * (2 - i))));
        mdos.push(mdo);
    }
    youth.append_events(request(any(), mdos)).await?;
    vggz.append_events(request(
        any(),
        vec![
            event(
                &["mama"],
                &[C::Involvement, C::MentalHealthDiagnosis],
                Kind::Intake(pb::Intake { summary: "Depressieve stoornis, behandeling gestart".into() }),
            ),
            event(
                &["mama"],
                &[C::BehaviourAffectingChild],
                Kind::Note(pb::Note {
                    text: "Moeder heeft minder energie; structuur voor de kinderen is belangrijk".into(),
                }),
            ),
        ],
    ))
    .await?;
    gi.append_events(request(
        any(),
        vec![event(
            &["kind"],
            &[C::ChildProtection],
            Kind::MeasureImposed(pb::MeasureImposed {
                measure_id: "ots-daan".into(),
                measure: pb::MeasureKind::Ots as i32,
                child_member_id: "kind".into(),
                certified_institution_id: GI.into(),
                valid_from: Some(pb::CalendarDate {
                    year: today.year(),
                    month: today.month() as i32,
                    day: today.day() as i32,
                }),
                valid_until: None,
            }),
        )],
    ))
    .await?;
    println!(
        "-- family registered: 4 members, safety plan, 3 MDOs six weeks apart, v-ggz treatment, an OTS for the 6-year-old"
    );

    // Consents and legal bases.
    let mut youth_consent =
        ConsentServiceClient::with_interceptor(channel(YOUTH).await?, meta("jh-12", "casusregisseur"));
    let mut gi_consent = ConsentServiceClient::with_interceptor(channel(GI).await?, meta("gv-3", "gezinsvoogd"));
    youth_consent
        .grant_consent(grant(
            "mama-ggz",
            "mama",
            &[C::BehaviourAffectingChild, C::Involvement, C::SafetyPlan],
            YOUTH,
            &["mama"],
        ))
        .await?;
    youth_consent
        .grant_consent(grant("kinderen-plan", "kind", &[C::SafetyPlan, C::Plan], YOUTH, &["mama", "papa"]))
        .await?;
    youth_consent
        .grant_consent(grant("tiener-plan", "tiener", &[C::SafetyPlan, C::Plan], YOUTH, &["mama", "papa", "tiener"]))
        .await?;
    youth_consent.grant_consent(grant("mama-plan", "mama", &[C::Plan], YOUTH, &["mama"])).await?;
    youth_consent
        .withdraw_consent(pb::WithdrawConsentRequest {
            family_id: FAMILY.into(),
            event_id: uuid::Uuid::new_v4().to_string(),
            consent_id: "mama-plan".into(),
            withdrawn_by_member_id: "mama".into(),
            reason: "Wil eerst zelf met de casusregisseur praten".into(),
            by_guardian: false,
        })
        .await?;
    gi_consent
        .record_legal_basis(pb::RecordLegalBasisRequest {
            family_id: FAMILY.into(),
            event_id: uuid::Uuid::new_v4().to_string(),
            basis_id: "ots-basis".into(),
            kind: pb::LegalBasisKind::ChildProtectionMeasure as i32,
            justification: "Uitvoering OTS (art. 1:255 BW)".into(),
            measure_id: "ots-daan".into(),
            subject_member_ids: vec!["kind".into()],
            categories: vec![C::Identity as i32, C::Plan as i32, C::SafetyPlan as i32, C::ChildProtection as i32],
            recipients: vec![pb::Recipient { recipient: Some(pb::recipient::Recipient::OrganisationId(GI.into())) }],
            ..Default::default()
        })
        .await?;
    println!("-- consents: 3 in force, 1 withdrawn; the GI records its OTS as a legal basis");

    // The dossier as two organisations see it.
    let mut youth_dossier =
        DossierServiceClient::with_interceptor(channel(YOUTH).await?, meta("jh-12", "casusregisseur"));
    let mut gi_dossier = DossierServiceClient::with_interceptor(channel(GI).await?, meta("gv-3", "gezinsvoogd"));
    let care =
        pb::GetDossierRequest { family_id: FAMILY.into(), purpose: pb::Purpose::Care as i32, break_the_glass: None };
    print_dossier("youth care (casusregisseur), purpose care", &youth_dossier.get_dossier(care).await?.into_inner());
    let protection = pb::GetDossierRequest {
        family_id: FAMILY.into(),
        purpose: pb::Purpose::ChildProtection as i32,
        break_the_glass: None,
    };
    print_dossier(
        "GI (gezinsvoogd), purpose child protection",
        &gi_dossier.get_dossier(protection).await?.into_inner(),
    );
    let btg = pb::GetDossierRequest {
        family_id: FAMILY.into(),
        purpose: pb::Purpose::SafetyAssessment as i32,
        break_the_glass: Some(pb::BreakTheGlass { reason: "Melding: kinderen 's nachts alleen thuis".into() }),
    };
    let opened = gi_dossier.get_dossier(btg).await?.into_inner();
    println!(
        "-- break-the-glass by the GI: {} items visible, flagged for review: {}",
        opened.timeline.len(),
        opened.review_required
    );

    // The mother's who-saw-what report.
    let mut portal = AccessReportServiceClient::with_interceptor(
        channel(VGGZ).await?,
        // The portal logged Sanne in with DigiD Substantieel, and says so.
        meta("portaal", "regiebehandelaar").member_authenticated_by("digid_substantieel"),
    );
    let report = portal
        .get_access_report(pb::GetAccessReportRequest {
            family_id: FAMILY.into(),
            subject_member_id: "mama".into(),
            requested_by_member_id: "mama".into(),
            language: pb::ReportLanguage::Dutch as i32,
            include_line_bytes: false,
        })
        .await?
        .into_inner();
    let page = dir.join("rapport-sanne.html");
    std::fs::write(&page, &report.html)?;
    println!(
        "-- Sanne's report: {} lines, {} consents in force; page written to {}",
        report.entries.len(),
        report.consents.len(),
        page.display()
    );
    for e in report.entries.iter() {
        let what = if e.refused { "refused".to_owned() } else { format!("{} categories", e.categories.len()) };
        let why = if e.emergency_reason.is_empty() {
            e.consent_ids.join(",")
        } else {
            format!("EMERGENCY: {}", e.emergency_reason)
        };
        println!("   {} saw {what} ({why})", e.organisation_name);
    }

    // Let the publisher sign the latest events, then stop and verify offline.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let _ = stop.send(());
    server.await??;
    let key = TreeHeadSigner::load_or_create(&data.join("treehead.key"))?;
    let verify = |dir: &std::path::Path| -> anyhow::Result<String> {
        let file = LogFile::open(dir)?;
        let heads = file.stream(&treehead::stream())?;
        Ok(match verify_log(key.public_key(), &heads, file.events()) {
            Ok(r) => {
                format!("OK: {} events in {} streams, {} signed tree heads verified", r.events, r.streams, r.tree_heads)
            }
            Err(t) => format!("TAMPERED: {t}"),
        })
    };
    println!("-- verify (public key {}): {}", hex::encode(key.public_key()), verify(&data)?);
    let copy = dir.join("tampered-copy");
    std::fs::create_dir_all(&copy)?;
    for entry in std::fs::read_dir(&data)? {
        let entry = entry?;
        std::fs::copy(entry.path(), copy.join(entry.file_name()))?;
    }
    let conn = rusqlite::Connection::open(copy.join("events.sqlite3"))?;
    // The diagnosis is encrypted at rest: all an intruder can do is change its bytes.
    let (position, mut payload): (i64, Vec<u8>) = conn.query_row(
        "SELECT position, payload FROM events WHERE event_type = 'case.intake' ORDER BY position LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if let Some(byte) = payload.last_mut() {
        *byte ^= 1;
    }
    let changed =
        conn.execute("UPDATE events SET payload = ?1 WHERE position = ?2", rusqlite::params![payload, position])?;
    drop(conn);
    println!("-- someone changes one byte of the encrypted diagnosis in a copy ({changed} event changed)");
    println!("-- verify the copy: {}", verify(&copy)?);
    Ok(())
}

fn print_dossier(who: &str, d: &pb::Dossier) {
    println!(
        "-- dossier as {who}: {} items, {} members, roster {:?}",
        d.timeline.len(),
        d.members.len(),
        d.roster.iter().map(|r| r.organisation_id.as_str()).collect::<Vec<_>>()
    );
    for item in &d.timeline {
        let kind = item
            .event
            .as_ref()
            .and_then(|e| e.kind.as_ref())
            .map_or("?".to_owned(), |k| format!("{k:?}").split('(').next().unwrap_or("?").to_owned());
        let author = if item.author_organisation_id.is_empty() {
            "(author not shown)".to_owned()
        } else {
            item.author_organisation_id.clone()
        };
        println!("   r{:<3} {kind:<20} {author}{}", item.revision, if item.own_record { " [own record]" } else { "" });
    }
    if !d.notices.is_empty() {
        for n in &d.notices {
            println!("   notice: {}", n.explanation);
        }
    }
}

async fn connect(pki: &DevPki, port: u16, org: &str) -> anyhow::Result<Channel> {
    let tls = pki.client_tls(Some(org))?;
    Ok(Endpoint::from_shared(format!("https://localhost:{port}"))?.tls_config(tls)?.connect().await?)
}

fn timestamp(t: chrono::DateTime<Utc>) -> prost_types::Timestamp {
    gezinsdossier_proto::convert::outbound::timestamp(t)
}

fn event(subjects: &[&str], categories: &[C], kind: Kind) -> pb::CaseEvent {
    pb::CaseEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        occurred_at: Some(timestamp(Utc::now())),
        subject_member_ids: subjects.iter().map(|s| s.to_string()).collect(),
        categories: categories.iter().map(|c| *c as i32).collect(),
        kind: Some(kind),
    }
}

fn member(id: &str, role: pb::MemberRole, name: &str, born: Option<(i32, i32, i32)>, gezag: &[&str]) -> pb::CaseEvent {
    event(
        &[],
        &[C::Identity],
        Kind::MemberAdded(pb::MemberAdded {
            member_id: id.into(),
            role: role as i32,
            display_name: name.into(),
            birth_date: born.map(|(year, month, day)| pb::CalendarDate { year, month, day }),
            gezag: born.map(|_| pb::Gezag {
                holder_member_ids: gezag.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
}

fn participant(org: &str) -> pb::Participant {
    pb::Participant { organisation_id: org.into(), ..Default::default() }
}

fn build_expect_none() -> Option<pb::ExpectedRevision> {
    Some(pb::ExpectedRevision { expectation: Some(pb::expected_revision::Expectation::NoStream(())) })
}

fn any() -> Option<pb::ExpectedRevision> {
    Some(pb::ExpectedRevision { expectation: Some(pb::expected_revision::Expectation::Any(())) })
}

fn request(expected: Option<pb::ExpectedRevision>, events: Vec<pb::CaseEvent>) -> pb::AppendEventsRequest {
    pb::AppendEventsRequest { family_id: FAMILY.into(), expected_revision: expected, events }
}

fn grant(id: &str, subject: &str, categories: &[C], to: &str, given_by: &[&str]) -> pb::GrantConsentRequest {
    pb::GrantConsentRequest {
        family_id: FAMILY.into(),
        event_id: uuid::Uuid::new_v4().to_string(),
        consent_id: id.into(),
        subject_member_id: subject.into(),
        categories: categories.iter().map(|c| *c as i32).collect(),
        recipients: vec![pb::Recipient { recipient: Some(pb::recipient::Recipient::OrganisationId(to.into())) }],
        purpose: pb::Purpose::Care as i32,
        given_by_member_ids: given_by.iter().map(|s| s.to_string()).collect(),
        method: Some(pb::ConsentMethod {
            method: Some(pb::consent_method::Method::SignedFormReference("formulier-2026-11".into())),
        }),
        requested_reason: "Om de hulp voor het gezin op elkaar af te stemmen".into(),
        ..Default::default()
    }
}
