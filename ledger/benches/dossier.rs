//! Dossier rebuild plus the durable disclosure commit, for a family of 10,000 events and 50
//! consents (every payload encrypted), on the SQLite store. Also: the first request after a
//! restart (the family is loaded lazily, so start-up itself does no replay, and its keys are
//! unwrapped on first use), and erasing one member's records in that family.
//!
//! `cargo bench -p gezinsdossier-ledger --bench dossier [-- --requests 500] [--postgres URL]`
//!
//! With `--postgres URL` the same runs against PostgreSQL, in a schema of its own that is
//! dropped afterwards.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use gezinsdossier_ledger::actor::{Actor, OrganisationType, ProfessionalRole};
use gezinsdossier_ledger::authorisation::{Caller, Grants};
use gezinsdossier_ledger::case::*;
use gezinsdossier_ledger::clock::{Clock, ManualClock};
use gezinsdossier_ledger::consent::*;
use gezinsdossier_ledger::envelope::ExpectedRevision;
use gezinsdossier_ledger::erasure::{ErasureGround, RequestedBy};
use gezinsdossier_ledger::families::{CaseAppend, DossierRequest, ErasureRequest, Families};
use gezinsdossier_ledger::family::FamilyId;
use gezinsdossier_ledger::sealing::{Kek, Keyring};
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::keys::KeyStore;
use gezinsdossier_ledger::store::keys::sqlite::SqliteKeyStore;
use gezinsdossier_ledger::store::postgres::{PostgresOptions, PostgresStore};
use gezinsdossier_ledger::store::sqlite::SqliteStore;
use std::sync::Arc;
use std::time::Instant;

const EVENTS: usize = 10_000;
const CONSENTS: usize = 50;

fn actor(org: &str, t: OrganisationType, role: ProfessionalRole) -> Actor {
    Actor { organisation_id: org.into(), organisation_type: t, professional_id: "p".into(), role }
}

mod harness;

fn main() {
    let requests: usize = harness::arg("--requests", 500);
    let postgres: Option<String> = Some(harness::arg("--postgres", String::new())).filter(|u| !u.is_empty());
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = || async {
            let store: Arc<dyn EventStore> = match &postgres {
                Some(url) => Arc::new(
                    PostgresStore::open(PostgresOptions {
                        schema: Some(schema.clone()),
                        ..PostgresOptions::new(url.clone())
                    })
                    .await
                    .expect("postgres"),
                ),
                None => Arc::new(SqliteStore::open(dir.path()).expect("open")),
            };
            store
        };
        let start: DateTime<Utc> = DateTime::from_timestamp(1_790_000_000, 0).expect("time");
        let clock = Arc::new(ManualClock::new(start));
        let family = FamilyId::new("bench").expect("id");
        let youth = actor("youth", OrganisationType::Jeugdhulpaanbieder, ProfessionalRole::Casusregisseur);
        let vggz = actor("vggz", OrganisationType::VGgz, ProfessionalRole::Psychiater);
        let gi = actor("gi", OrganisationType::CertifiedInstitution, ProfessionalRole::Gezinsvoogd);
        let members = ["ma", "pa", "kid1", "kid2"];
        // Keys beside the data, as the server keeps them; a new keyring after the restart.
        let kek = Kek::from_hex(&Kek::generate_hex().expect("kek")).expect("kek");
        let key_store: Arc<dyn KeyStore> = Arc::new(SqliteKeyStore::open(dir.path()).expect("key store"));
        let keyring = || Arc::new(Keyring::new(key_store.clone(), vec![kek.clone()]).expect("keyring"));
        {
            let store = open().await;
            let families = Arc::new(Families::new(store.clone(), clock.clone(), keyring()));
            let parents = || ["ma".to_string(), "pa".to_string()];
            let member = |added: MemberAdded| {
                let subjects = [added.member_id.clone()].into();
                let event = CaseEvent {
                    occurred_at: start,
                    subjects,
                    categories: [InformationCategory::Identity].into(),
                    kind: CaseEventKind::MemberAdded(added),
                };
                (uuid::Uuid::new_v4(), event)
            };
            families
                .append_case_events(CaseAppend {
                    family: family.clone(),
                    expected: ExpectedRevision::NoStream,
                    author: youth.clone().into(),
                    events: vec![
                        member(MemberAdded::adult("ma", MemberRole::Parent)),
                        member(MemberAdded::adult("pa", MemberRole::Parent)),
                        member(MemberAdded::child(
                            "kid1",
                            NaiveDate::from_ymd_opt(2018, 3, 1).expect("date"),
                            parents(),
                        )),
                        member(MemberAdded::child(
                            "kid2",
                            NaiveDate::from_ymd_opt(2020, 7, 9).expect("date"),
                            parents(),
                        )),
                    ],
                })
                .await
                .expect("members");
            let text = "Gesprek met het gezin over de afspraken uit het gezinsplan. ".repeat(4);
            for batch in 0..(EVENTS - 4) / 100 {
                let events = (0..100)
                    .map(|i| {
                        let n = batch * 100 + i;
                        let category = [
                            InformationCategory::Plan,
                            InformationCategory::TreatmentNotes,
                            InformationCategory::SocialContext,
                        ][n % 3];
                        (
                            uuid::Uuid::new_v4(),
                            CaseEvent {
                                occurred_at: start,
                                subjects: [members[n % 4].to_string()].into(),
                                categories: [category].into(),
                                kind: CaseEventKind::Note { text: text.clone() },
                            },
                        )
                    })
                    .collect();
                let author = if batch % 2 == 0 { youth.clone() } else { vggz.clone() };
                families
                    .append_case_events(CaseAppend {
                        family: family.clone(),
                        expected: ExpectedRevision::Any,
                        author: author.into(),
                        events,
                    })
                    .await
                    .expect("notes");
            }
            for c in 0..CONSENTS {
                let subject = members[c % 4];
                let given_by = if subject.starts_with("kid") {
                    ["ma", "pa"].map(String::from).into()
                } else {
                    [subject.to_string()].into()
                };
                let grant = ConsentGranted {
                    consent_id: format!("c{c}"),
                    subject: subject.into(),
                    categories: [InformationCategory::Plan, InformationCategory::SocialContext].into(),
                    recipients: vec![Recipient::Organisation {
                        organisation_id: if c % 5 == 0 { "gi".into() } else { "other".into() },
                    }],
                    purpose: Purpose::Care,
                    valid_from: start,
                    valid_until: Some(start + Duration::days(365)),
                    given_by,
                    method: ConsentMethod::SignedForm { document_reference: "f".into() },
                    requested_reason: "r".into(),
                };
                families
                    .append_consent_event(
                        &family,
                        // Youth care takes part (it registered the family) and records them.
                        &youth.clone().into(),
                        uuid::Uuid::new_v4(),
                        ConsentEvent::Granted(grant),
                    )
                    .await
                    .expect("consent");
            }
            store.shutdown().await;
        }

        // Restart: opening the store does no replay; the first request loads the family.
        let t = Instant::now();
        let store = open().await;
        let open_ms = t.elapsed().as_secs_f64() * 1e3;
        let families = Families::new(store.clone(), clock.clone(), keyring());
        let request = DossierRequest {
            family: family.clone(),
            requester: gi.clone().into(),
            purpose: Purpose::Care,
            break_the_glass: None,
        };
        let t = Instant::now();
        let (view, _) = families.dossier(request.clone()).await.expect("first dossier");
        let first_ms = t.elapsed().as_secs_f64() * 1e3;

        let mut latencies = Vec::with_capacity(requests);
        for _ in 0..requests {
            clock.set(clock.now() + Duration::seconds(1));
            let t = Instant::now();
            let (v, _) = families.dossier(request.clone()).await.expect("dossier");
            latencies.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(v.timeline.len(), view.timeline.len());
        }
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| harness::percentile(&latencies, p);
        println!(
            "\n### Dossier: {EVENTS} events, {CONSENTS} consents, SQLite, disclosure committed (synchronous=FULL)\n"
        );
        println!("visible items per view: {}", view.timeline.len());
        println!("store open after restart: {open_ms:.1} ms; first dossier (loads the family): {first_ms:.1} ms");
        println!(
            "{requests} sequential requests: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );

        // Youth care's privacy officer erases what it wrote about the mother alone.
        let officer = Caller {
            actor: actor("youth", OrganisationType::Jeugdhulpaanbieder, ProfessionalRole::PrivacyOfficer),
            grants: Grants { privacy_office: true, portal: false },
        };
        let erasure = ErasureRequest {
            family: family.clone(),
            officer,
            subject: "ma".into(),
            categories: Default::default(),
            ground: ErasureGround::Avg17,
            requested_by: RequestedBy::Subject,
        };
        let t = Instant::now();
        let erased = families.erase(erasure).await.expect("erase");
        let erase_ms = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "erasing one member ({} keys, {} events shredded, {} notices): {erase_ms:.1} ms",
            erased.record.destroyed_keys.len(),
            erased.record.shredded_events,
            erased.notices_sent
        );
        store.shutdown().await;
        if let Some(url) = &postgres {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(conn);
            client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.expect("drop bench schema");
        }
    });
}
