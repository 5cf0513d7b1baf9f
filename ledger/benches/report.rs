//! The who-saw-what report for a member whose data was disclosed 100,000 times, on SQLite,
//! in a ledger that also holds other families' events: the report must cost what the
//! family's access log costs, not what the ledger costs.
//!
//! `cargo bench -p gezinsdossier-ledger --bench report [-- --disclosures 100000 --reports 20]`
//!
//! The first report is timed apart: it fills the report index from the whole log.

use chrono::{DateTime, Utc};
use gezinsdossier_ledger::actor::{Actor, OrganisationType, ProfessionalRole};
use gezinsdossier_ledger::authorisation::{Caller, Grants, MemberAuthentication};
use gezinsdossier_ledger::case::*;
use gezinsdossier_ledger::clock::ManualClock;
use gezinsdossier_ledger::consent::{Basis, Purpose};
use gezinsdossier_ledger::disclosure::{self, AccessLogEvent, Disclosure};
use gezinsdossier_ledger::envelope::{ExpectedRevision, ProposedEvent};
use gezinsdossier_ledger::families::{CaseAppend, Families, ReportRequest};
use gezinsdossier_ledger::family::FamilyId;
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::sqlite::SqliteStore;
use std::sync::Arc;
use std::time::Instant;

mod harness;

fn main() {
    let (disclosures, reports): (usize, usize) =
        (harness::arg("--disclosures", 100_000), harness::arg("--reports", 20));
    let dir = tempfile::tempdir().expect("tempdir");
    let now: DateTime<Utc> = DateTime::from_timestamp(1_790_000_000, 0).expect("time");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let store = SqliteStore::open(dir.path()).expect("open");
        let families = Arc::new(Families::new(
            Arc::new(store.clone()),
            Arc::new(ManualClock::new(now)),
            Arc::new(gezinsdossier_ledger::sealing::Keyring::ephemeral().expect("keyring")),
        ));
        let youth = Actor {
            organisation_id: "youth".into(),
            organisation_type: OrganisationType::Jeugdhulpaanbieder,
            professional_id: "p".into(),
            role: ProfessionalRole::Casusregisseur,
        };
        let family = FamilyId::new("report").expect("id");
        let member = |id: &str| {
            let added = MemberAdded::adult(id, MemberRole::Parent);
            let event = CaseEvent {
                occurred_at: now,
                subjects: [id.to_string()].into(),
                categories: [InformationCategory::Identity].into(),
                kind: CaseEventKind::MemberAdded(added),
            };
            (uuid::Uuid::new_v4(), event)
        };
        for f in [family.clone(), FamilyId::new("other").expect("id")] {
            let append = CaseAppend {
                family: f,
                expected: ExpectedRevision::Any,
                author: youth.clone().into(),
                events: vec![member("ma")],
            };
            families.append_case_events(append).await.expect("members");
        }
        let basis =
            Basis::Consent { consent_id: "c1".into(), event_id: uuid::Uuid::nil(), event_hash: "00".repeat(32) };
        let record = |n: usize| {
            let event = AccessLogEvent::Disclosed(Disclosure {
                requester: youth.clone(),
                purpose: Purpose::Care,
                at: now,
                family_revision: Some(n as u64),
                shown: [("ma".to_string(), [(InformationCategory::Plan, basis.clone())].into())].into(),
                own_records: 0,
                break_the_glass: None,
                review_required: false,
                authors: Default::default(),
                review_due: None,
                via_feed: false,
            });
            ProposedEvent {
                event_id: uuid::Uuid::new_v4(),
                event_type: event.event_type().into(),
                recorded_at_micros: now.timestamp_micros(),
                payload: serde_json::to_vec(&event).expect("json"),
            }
        };
        // The subject's family, and as much again in another family: ledger size must not matter.
        for target in [family.clone(), FamilyId::new("other").expect("id")] {
            for batch in 0..disclosures / 1000 {
                let events = (0..1000).map(|i| record(batch * 1000 + i)).collect();
                store.append(&disclosure::stream(&target), ExpectedRevision::Any, events).await.expect("append");
            }
        }
        let portal = Caller { actor: youth.clone(), grants: Grants { privacy_office: false, portal: true } };
        let ask = ReportRequest {
            requested_by: "ma",
            subject: "ma",
            member_authentication: Some(MemberAuthentication::DigidSubstantieel),
            checkable_lines: false,
        };
        // The first report reads and opens the family's whole access log into the report
        // index; the others read only what was logged since (their own report events).
        let t = Instant::now();
        let first = families.report(&family, &portal, ask).await.expect("report");
        let cold = t.elapsed().as_secs_f64() * 1e3;
        let mut latencies = Vec::new();
        let mut lines = first.report.entries.len();
        for _ in 0..reports {
            let t = Instant::now();
            let report = families.report(&family, &portal, ask).await.expect("report");
            latencies.push(t.elapsed().as_secs_f64() * 1e3);
            lines = report.report.entries.len();
        }
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| harness::percentile(&latencies, p);
        println!("\n### Report for a member with {disclosures} disclosures ({lines} lines), SQLite\n");
        println!("first report (the index is read from the log): {cold:.1} ms");
        println!("{reports} reports after it: p50 {:.1} ms, p99 {:.1} ms", pct(0.5), pct(0.99));
        store.shutdown().await;
    });
}
