//! The report index: reports made from the lines it keeps equal reports built from the
//! whole access log, as the log grows and in a fresh process; a destroyed key takes its
//! lines out of reports the index already held; the index keeps to its bound.

use chrono::{DateTime, Datelike, Utc};
use gezinsdossier_ledger::actor::{Actor, OrganisationType, ProfessionalRole};
use gezinsdossier_ledger::authorisation::{Caller, Grants, MemberAuthentication};
use gezinsdossier_ledger::case::*;
use gezinsdossier_ledger::clock::ManualClock;
use gezinsdossier_ledger::consent::{Basis, DenialReason, LegalBasisKind, Purpose};
use gezinsdossier_ledger::disclosure::{self, AccessLogEvent, Disclosure, Refusal};
use gezinsdossier_ledger::envelope::{ExpectedRevision, ProposedEvent};
use gezinsdossier_ledger::families::{CaseAppend, Families, ReportRequest};
use gezinsdossier_ledger::family::FamilyId;
use gezinsdossier_ledger::report::ReportEntry;
use gezinsdossier_ledger::sealing::{KeyGroup, Keyring, sealed_with};
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::sqlite::SqliteStore;
use std::sync::Arc;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap()
}

fn actor(org: &str) -> Actor {
    Actor {
        organisation_id: org.into(),
        organisation_type: OrganisationType::Jeugdhulpaanbieder,
        professional_id: "p".into(),
        role: ProfessionalRole::Casusregisseur,
    }
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    keys: Arc<Keyring>,
}

impl World {
    fn families(&self) -> Families {
        Families::new(self.store.clone(), Arc::new(ManualClock::new(now())), self.keys.clone())
    }
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    World { _dir: dir, store, keys: Arc::new(Keyring::ephemeral().unwrap()) }
}

/// A mother and her child (under her gezag), recorded by youth care.
async fn family(families: &Arc<Families>, id: &str) -> FamilyId {
    let family = FamilyId::new(id).unwrap();
    let born = chrono::NaiveDate::from_ymd_opt(now().year() - 6, 1, 1).unwrap();
    let member = |subject: &str, added: MemberAdded| {
        let event = CaseEvent {
            occurred_at: now(),
            subjects: [subject.to_string()].into(),
            categories: [InformationCategory::Identity].into(),
            kind: CaseEventKind::MemberAdded(added),
        };
        (uuid::Uuid::new_v4(), event)
    };
    let events = vec![
        member("ma", MemberAdded::adult("ma", MemberRole::Parent)),
        member("kid", MemberAdded::child("kid", born, ["ma".to_string()])),
    ];
    let append =
        CaseAppend { family: family.clone(), expected: ExpectedRevision::Any, author: actor("youth").into(), events };
    families.append_case_events(append).await.unwrap();
    family
}

/// Access-log lines sealed under their year's key, as the service writes them: `n`
/// disclosures by `org` alternating between the mother's plan and both members' data,
/// and a refusal.
async fn log_lines(w: &World, family: &FamilyId, org: &str, n: usize) {
    let consent = Basis::Consent { consent_id: "c1".into(), event_id: uuid::Uuid::nil(), event_hash: "00".repeat(32) };
    let legal = Basis::LegalBasis {
        basis_id: "b1".into(),
        kind: LegalBasisKind::ChildProtectionMeasure,
        event_id: uuid::Uuid::nil(),
        event_hash: "00".repeat(32),
    };
    let mut lines = Vec::new();
    for i in 0..n {
        let mut shown = std::collections::BTreeMap::new();
        shown.insert("ma".to_string(), [(InformationCategory::Plan, consent.clone())].into());
        if i % 2 == 1 {
            shown.insert("kid".to_string(), [(InformationCategory::ChildProtection, legal.clone())].into());
        }
        lines.push(AccessLogEvent::Disclosed(Disclosure {
            requester: actor(org),
            purpose: Purpose::Care,
            at: now(),
            family_revision: Some(i as u64),
            shown,
            own_records: 0,
            break_the_glass: None,
            review_required: false,
            authors: Default::default(),
            review_due: None,
            via_feed: i % 3 == 0,
        }));
    }
    lines.push(AccessLogEvent::Refused(Refusal {
        requester: actor("other"),
        purpose: Purpose::Care,
        at: now(),
        family_revision: None,
        reasons: vec![DenialReason {
            consent_id: None,
            explanation: "no consent".into(),
            must_consent: Default::default(),
        }],
    }));
    let mut events = Vec::new();
    for line in lines {
        let event_id = uuid::Uuid::new_v4();
        let json = serde_json::to_vec(&line).unwrap();
        let group = KeyGroup::access_log(now().year());
        let micros = now().timestamp_micros();
        let payload = w.keys.seal(family.as_str(), &group, &event_id, line.event_type(), &json, micros).await.unwrap();
        events.push(ProposedEvent {
            event_id,
            event_type: line.event_type().into(),
            recorded_at_micros: micros,
            payload,
        });
    }
    w.store.append(&disclosure::stream(family), ExpectedRevision::Any, events).await.unwrap();
}

/// Youth care's portal, through which the mother asks.
fn portal() -> Caller {
    Caller { actor: actor("youth"), grants: Grants { privacy_office: false, portal: true } }
}

/// The mother asks about `subject`, authenticated through DigiD (substantieel).
fn ask(subject: &str, checkable_lines: bool) -> ReportRequest<'_> {
    ReportRequest {
        requested_by: "ma",
        subject,
        member_authentication: Some(MemberAuthentication::DigidSubstantieel),
        checkable_lines,
    }
}

/// The report's lines, from the index (`checkable: false`) or from the whole log (asking
/// for the checkable form takes that path), without that form.
async fn lines(families: &Families, family: &FamilyId, subject: &str, checkable: bool) -> Vec<ReportEntry> {
    let report = families.report(family, &portal(), ask(subject, checkable)).await.unwrap().report;
    report
        .entries
        .iter()
        .cloned()
        .map(|mut entry| {
            match &mut entry {
                ReportEntry::Seen { line, .. } | ReportEntry::Refused { line, .. } => *line = None,
            }
            entry
        })
        .collect()
}

#[tokio::test]
async fn reports_from_the_index_equal_reports_from_the_whole_log_as_it_grows() {
    let w = world();
    let families = Arc::new(w.families());
    let family = family(&families, "f").await;
    log_lines(&w, &family, "ggz", 5).await;
    for subject in ["ma", "kid"] {
        let from_index = lines(&families, &family, subject, false).await;
        assert_eq!(from_index, lines(&families, &family, subject, true).await, "{subject}");
        // ma: 5 disclosures and the refusal; kid: 2 disclosures and the refusal.
        assert_eq!(from_index.len(), if subject == "ma" { 6 } else { 3 });
    }
    // The index takes in what came since (another replica's lines among them).
    log_lines(&w, &family, "wijkteam", 4).await;
    let grown = lines(&families, &family, "kid", false).await;
    assert_eq!(grown, lines(&families, &family, "kid", true).await);
    assert_eq!(grown.len(), 3 + 3);
    assert!(matches!(&grown[5], ReportEntry::Refused { organisation_id, .. } if organisation_id == "other"));
    // A fresh process reads it all at once, to the same report.
    assert_eq!(lines(&w.families(), &family, "kid", false).await, grown);
}

#[tokio::test]
async fn a_destroyed_key_takes_its_lines_out_of_a_report_the_index_already_held() {
    let w = world();
    let families = Arc::new(w.families());
    let family = family(&families, "f").await;
    log_lines(&w, &family, "ggz", 2).await;
    assert_eq!(lines(&families, &family, "ma", false).await.len(), 3);
    // The retention run's step: the year's access-log key goes.
    let first = w.store.read_stream(&disclosure::stream(&family), 0, 1).await.unwrap();
    let key = sealed_with(&first[0].payload).unwrap().expect("sealed");
    w.keys.destroy(&[key], now().timestamp_micros()).await.unwrap();
    assert_eq!(lines(&families, &family, "ma", false).await, Vec::new());
    assert_eq!(families.report_index_size().0, 1);
}

#[tokio::test]
async fn the_index_keeps_to_its_bound_and_reports_stay_whole() {
    let w = world();
    let families = Arc::new(w.families().with_report_index_bound(1));
    let (f, g) = (family(&families, "f").await, family(&families, "g").await);
    log_lines(&w, &f, "ggz", 3).await;
    log_lines(&w, &g, "ggz", 5).await;
    assert_eq!(lines(&families, &f, "ma", false).await.len(), 4);
    assert_eq!(lines(&families, &g, "ma", false).await.len(), 6);
    // Past the bound, the family asked for least recently went.
    assert_eq!(families.report_index_size().0, 1);
    assert_eq!(lines(&families, &f, "ma", false).await.len(), 4);
    // Reports on families that do not exist are refused before the index is touched.
    for n in 0..50 {
        let unknown = FamilyId::new(&format!("none-{n}")).unwrap();
        assert!(families.report(&unknown, &portal(), ask("ma", false)).await.is_err());
    }
    assert_eq!(families.report_index_size().0, 1);
    let unbounded = w.families();
    lines(&unbounded, &f, "ma", false).await;
    lines(&unbounded, &g, "ma", false).await;
    assert_eq!(unbounded.report_index_size().0, 2);
}

#[tokio::test]
async fn a_refused_report_does_no_report_work() {
    let w = world();
    let families = Arc::new(w.families());
    let family = family(&families, "f").await;
    log_lines(&w, &family, "ggz", 3).await;
    // No member authentication: the policy refuses, and records that it did.
    let unauthenticated = ReportRequest { member_authentication: None, ..ask("ma", false) };
    assert!(families.report(&family, &portal(), unauthenticated).await.is_err());
    assert_eq!(families.report_index_size().0, 0, "the family's lines were not read");
    let log = w.store.read_stream(&disclosure::stream(&family), 0, 100).await.unwrap();
    let last = disclosure::open_line(log.last().unwrap(), &*w.keys);
    assert!(matches!(last, Some(AccessLogEvent::FunctionRefused(_))), "{last:?}");
}
