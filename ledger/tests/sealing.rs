//! Encryption at rest and retention over a real store: a retention run decades later shreds
//! the case record but keeps the child protection record on its own clock; a dry run
//! changes nothing; keys survive a KEK rotation and a backup restore; old plaintext data
//! keeps reading.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use gezinsdossier_ledger::actor::{Actor, OrganisationType, ProfessionalRole};
use gezinsdossier_ledger::authorisation::{Caller, Grants};
use gezinsdossier_ledger::case::*;
use gezinsdossier_ledger::clock::ManualClock;
use gezinsdossier_ledger::codec::encode_case;
use gezinsdossier_ledger::consent::Purpose;
use gezinsdossier_ledger::disclosure::{self, AccessLogEvent};
use gezinsdossier_ledger::envelope::{ExpectedRevision, ProposedEvent};
use gezinsdossier_ledger::erasure::{ErasureGround, Kept, RequestedBy};
use gezinsdossier_ledger::families::{CaseAppend, DossierRequest, ErasureRequest, Families};
use gezinsdossier_ledger::family::{FamilyId, FamilyState};
use gezinsdossier_ledger::retention::{RetentionClock, RetentionPeriods};
use gezinsdossier_ledger::sealing::{Kek, Keyring};
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::keys::KeyStore;
use gezinsdossier_ledger::store::keys::sqlite::SqliteKeyStore;
use gezinsdossier_ledger::store::sqlite::SqliteStore;
use std::sync::Arc;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap()
}

fn actor(org: &str, t: OrganisationType, role: ProfessionalRole) -> Actor {
    Actor { organisation_id: org.into(), organisation_type: t, professional_id: "p".into(), role }
}

fn event(subjects: &[&str], categories: &[InformationCategory], kind: CaseEventKind) -> (uuid::Uuid, CaseEvent) {
    let event = CaseEvent {
        occurred_at: now(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        categories: categories.iter().copied().collect(),
        kind,
    };
    (uuid::Uuid::new_v4(), event)
}

struct World {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    store: Arc<SqliteStore>,
    keys: Arc<dyn KeyStore>,
    clock: Arc<ManualClock>,
    families: Arc<Families>,
    kek: String,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let keys: Arc<dyn KeyStore> = Arc::new(SqliteKeyStore::open(&path).unwrap());
    let kek = Kek::generate_hex().unwrap();
    let keyring = Arc::new(Keyring::new(keys.clone(), vec![Kek::from_hex(&kek).unwrap()]).unwrap());
    let clock = Arc::new(ManualClock::new(now()));
    let families = Arc::new(Families::new(store.clone(), clock.clone(), keyring));
    World { _dir: dir, dir: path, store, keys, clock, families, kek }
}

const YOUTH: &str = "youth";
const GI: &str = "gi";

/// A family with a 6-year-old under an OTS (recorded by the GI) and youth care's notes.
async fn family_with_ots(w: &World) -> FamilyId {
    let family = FamilyId::new("ret").unwrap();
    let youth = actor(YOUTH, OrganisationType::Jeugdhulpaanbieder, ProfessionalRole::Casusregisseur);
    let gi = actor(GI, OrganisationType::CertifiedInstitution, ProfessionalRole::Gezinsvoogd);
    let born = NaiveDate::from_ymd_opt(now().year() - 6, 1, 1).unwrap();
    let events = vec![
        event(
            &["ma"],
            &[InformationCategory::Identity],
            CaseEventKind::MemberAdded(MemberAdded::adult("ma", MemberRole::Parent)),
        ),
        event(
            &["kid"],
            &[InformationCategory::Identity],
            CaseEventKind::MemberAdded(MemberAdded::child("kid", born, ["ma".to_string()])),
        ),
        event(&["ma"], &[InformationCategory::TreatmentNotes], CaseEventKind::Note { text: "zorgnotitie".into() }),
    ];
    let append = |author: &Actor, events| CaseAppend {
        family: family.clone(),
        expected: ExpectedRevision::Any,
        author: author.clone().into(),
        events,
    };
    w.families.append_case_events(append(&youth, events)).await.unwrap();
    let ots = event(
        &["kid"],
        &[InformationCategory::ChildProtection],
        CaseEventKind::MeasureImposed(MeasureImposed {
            measure_id: "ots-1".into(),
            measure: MeasureKind::Ots,
            child: "kid".into(),
            certified_institution_id: GI.into(),
            valid_from: now().date_naive(),
            valid_until: Some(now().date_naive() + Duration::days(365)),
        }),
    );
    w.families.append_case_events(append(&gi, vec![ots])).await.unwrap();
    family
}

async fn rebuilt(w: &World, family: &FamilyId, kek: &str) -> FamilyState {
    let keyring = Keyring::new(w.keys.clone(), vec![Kek::from_hex(kek).unwrap()]).unwrap();
    let events = w.store.read_stream(&family.stream(), 0, 10_000).await.unwrap();
    keyring.prefetch(&events).await.unwrap();
    let mut state = FamilyState::default();
    for e in &events {
        state.apply(e, &keyring).unwrap();
        if state.needs_rebuild {
            panic!("a fresh keyring reads destroyed keys as shredded from the start");
        }
    }
    state
}

#[tokio::test]
async fn a_retention_run_21_years_on_shreds_the_case_record_and_keeps_child_protection() {
    let w = world();
    let family = family_with_ots(&w).await;
    let periods = RetentionPeriods::default();

    // Nothing is due now.
    assert!(w.families.run_retention(&periods, false).await.unwrap().is_empty());

    w.clock.set(now() + Duration::days(365 * 21 + 6));
    let dry = w.families.run_retention(&periods, true).await.unwrap();
    assert_eq!(dry.len(), 1);
    assert!(dry[0].erasure_id.is_none());
    assert!(dry[0].plan.expired.iter().all(|(_, clock)| *clock == RetentionClock::CaseRecord));
    assert_eq!(dry[0].plan.shredded_events, 2, "the mother and the note; the child's identity stays with the OTS");
    let before = rebuilt(&w, &family, &w.kek).await;
    assert_eq!(before.items.len(), 4, "a dry run changes nothing");

    let done = w.families.run_retention(&periods, false).await.unwrap();
    assert!(done[0].erasure_id.is_some());
    let after = rebuilt(&w, &family, &w.kek).await;
    assert_eq!(after.erased.len(), 2);
    assert_eq!(after.items.len(), 2, "the OTS record and the child it is about stay");
    assert!(after.items.iter().any(|i| matches!(i.event.kind, CaseEventKind::MeasureImposed(_))));
    assert!(after.members.contains_key("kid") && !after.members.contains_key("ma"));
    assert_eq!(
        w.store.read_stream(&family.stream(), 0, 100).await.unwrap().last().unwrap().event_type,
        "erasure.recorded",
        "the run logs what it did as an event"
    );

    // 30 years after the child turns 18, the child protection record goes too.
    w.clock.set(now() + Duration::days(365 * 43));
    let later = w.families.run_retention(&periods, false).await.unwrap();
    assert!(later[0].plan.expired.iter().any(|(_, c)| *c == RetentionClock::ChildProtection));
    assert!(rebuilt(&w, &family, &w.kek).await.items.is_empty());
}

/// The family's access-log lines as a fresh process reads them: opened, or `None` where
/// the retention run destroyed their year's key.
async fn access_log_lines(w: &World, family: &FamilyId) -> Vec<Option<AccessLogEvent>> {
    let keyring = Keyring::new(w.keys.clone(), vec![Kek::from_hex(&w.kek).unwrap()]).unwrap();
    let lines = w.store.read_stream(&disclosure::stream(family), 0, 10_000).await.unwrap();
    keyring.prefetch(&lines).await.unwrap();
    lines.iter().map(|line| disclosure::open_line(line, &keyring)).collect()
}

#[tokio::test]
async fn access_log_lines_go_by_their_own_clock_a_year_at_a_time() {
    let w = world();
    let family = family_with_ots(&w).await;
    let gi = actor(GI, OrganisationType::CertifiedInstitution, ProfessionalRole::Gezinsvoogd);
    let read = || DossierRequest {
        family: family.clone(),
        requester: gi.clone().into(),
        purpose: Purpose::Care,
        break_the_glass: None,
    };
    let year = now().year();
    w.families.dossier(read()).await.unwrap();
    w.clock.set(now() + Duration::days(2 * 365));
    w.families.dossier(read()).await.unwrap();
    let raw = w.store.read_stream(&disclosure::stream(&family), 0, 100).await.unwrap();
    assert_eq!(raw.len(), 2);
    assert!(raw.iter().all(|l| !l.payload.starts_with(b"{")), "access-log lines are sealed at rest");
    assert!(access_log_lines(&w, &family).await.iter().all(Option::is_some));

    let periods = RetentionPeriods::default();
    // The last day on which the first year's lines must still be kept (5 years after the
    // year's last day): nothing of the access log goes.
    let last_kept = NaiveDate::from_ymd_opt(year + 5, 12, 31).unwrap().and_hms_opt(23, 0, 0).unwrap().and_utc();
    w.clock.set(last_kept);
    let kept = w.families.run_retention(&periods, false).await.unwrap();
    assert!(kept.iter().all(|o| o.plan.expired.is_empty()), "{kept:?}");
    assert!(access_log_lines(&w, &family).await.iter().all(Option::is_some));

    // A day later the first year's key goes; the later year's line, and the case record, stay.
    w.clock.set(last_kept + Duration::days(1));
    let dry = w.families.run_retention(&periods, true).await.unwrap();
    assert_eq!(dry.len(), 1);
    assert_eq!(dry[0].plan.expired.len(), 1);
    assert_eq!(dry[0].plan.expired[0].1, RetentionClock::AccessLog);
    assert_eq!(dry[0].access_log_lines_shredded, 1);
    assert!(access_log_lines(&w, &family).await.iter().all(Option::is_some), "a dry run shreds nothing");

    let done = w.families.run_retention(&periods, false).await.unwrap();
    assert_eq!((done[0].access_log_lines_shredded, done[0].plan.shredded_events), (1, 0));
    assert!(done[0].erasure_id.is_some(), "the run records what it did");
    let lines = access_log_lines(&w, &family).await;
    assert!(lines[0].is_none(), "the first year's line is shredded");
    assert!(matches!(lines[1], Some(AccessLogEvent::Disclosed(_))), "the later line is kept");
    assert_eq!(rebuilt(&w, &family, &w.kek).await.items.len(), 4, "the case record keeps its own clock");
    // This process reads it as gone too, and the family's reports and audits leave it out.
    let raw = w.store.read_stream(&disclosure::stream(&family), 0, 100).await.unwrap();
    assert!(disclosure::open_line(&raw[0], &**w.families.keys()).is_none());
}

#[tokio::test]
async fn keys_survive_a_kek_rotation_and_a_backup_restore_without_rewriting_events() {
    let w = world();
    let family = family_with_ots(&w).await;
    let events_before = w.store.read_all(0, 10_000).await.unwrap();

    let new_kek = Kek::generate_hex().unwrap();
    let rotating =
        Keyring::new(w.keys.clone(), vec![Kek::from_hex(&new_kek).unwrap(), Kek::from_hex(&w.kek).unwrap()]).unwrap();
    assert!(rotating.rotate().await.unwrap() >= 3);
    assert_eq!(w.store.read_all(0, 10_000).await.unwrap(), events_before, "no event is rewritten");
    assert_eq!(rebuilt(&w, &family, &new_kek).await.items.len(), 4, "the new KEK alone reads everything");
    let old = Keyring::new(w.keys.clone(), vec![Kek::from_hex(&w.kek).unwrap()]).unwrap();
    let events = w.store.read_stream(&family.stream(), 0, 100).await.unwrap();
    assert!(old.prefetch(&events).await.is_err(), "the old KEK no longer unwraps");

    // A backup of the key file restores the record; without it nothing opens.
    let backup = tempfile::tempdir().unwrap();
    std::fs::copy(w.dir.join("keys.sqlite3"), backup.path().join("keys.sqlite3")).unwrap();
    let restored: Arc<dyn KeyStore> = Arc::new(SqliteKeyStore::open(backup.path()).unwrap());
    let keyring = Keyring::new(restored, vec![Kek::from_hex(&new_kek).unwrap()]).unwrap();
    keyring.prefetch(&events).await.unwrap();
    let mut state = FamilyState::default();
    for e in &events {
        state.apply(e, &keyring).unwrap();
    }
    assert_eq!(state.items.len(), 4);
    let empty = tempfile::tempdir().unwrap();
    let lost =
        Keyring::new(Arc::new(SqliteKeyStore::open(empty.path()).unwrap()), vec![Kek::from_hex(&new_kek).unwrap()])
            .unwrap();
    lost.prefetch(&events).await.unwrap();
    let mut state = FamilyState::default();
    for e in &events {
        state.apply(e, &lost).unwrap();
    }
    assert!(state.items.is_empty(), "losing the key store loses the record");
}

#[tokio::test]
async fn plaintext_events_from_before_encryption_still_read() {
    let w = world();
    let family = FamilyId::new("old").unwrap();
    let youth = actor(YOUTH, OrganisationType::Jeugdhulpaanbieder, ProfessionalRole::Casusregisseur);
    // As an earlier build wrote them: plain JSON payloads.
    let (id, member) = event(
        &["ma"],
        &[InformationCategory::Identity],
        CaseEventKind::MemberAdded(MemberAdded::adult("ma", MemberRole::Parent)),
    );
    let (event_type, payload) = encode_case(&CaseRecord { author: youth.clone(), event: member });
    let old = ProposedEvent { event_id: id, event_type, recorded_at_micros: now().timestamp_micros(), payload };
    w.store.append(&family.stream(), ExpectedRevision::NoStream, vec![old]).await.unwrap();
    // New events beside them are sealed; both read.
    let note = event(&["ma"], &[InformationCategory::TreatmentNotes], CaseEventKind::Note { text: "nieuw".into() });
    w.families
        .append_case_events(CaseAppend {
            family: family.clone(),
            expected: ExpectedRevision::Any,
            author: youth.into(),
            events: vec![note],
        })
        .await
        .unwrap();
    let state = rebuilt(&w, &family, &w.kek).await;
    assert_eq!(state.items.len(), 2);
    let stored = w.store.read_stream(&family.stream(), 0, 10).await.unwrap();
    assert_eq!(stored[0].payload.first(), Some(&b'{'));
    assert_eq!(stored[1].payload.first(), Some(&0), "the new one is sealed");

    // Erasing her shreds the sealed note and says the old record cannot be.
    let officer = Caller {
        actor: actor(YOUTH, OrganisationType::Jeugdhulpaanbieder, ProfessionalRole::PrivacyOfficer),
        grants: Grants { privacy_office: true, portal: false },
    };
    let request = ErasureRequest {
        family: family.clone(),
        officer,
        subject: "ma".into(),
        categories: Default::default(),
        ground: ErasureGround::Avg17,
        requested_by: RequestedBy::Subject,
    };
    let done = w.families.erase(request).await.unwrap();
    assert_eq!(done.record.shredded_events, 1);
    assert_eq!(done.kept.get(&Kept::StoredBeforeEncryption), Some(&1));
    let state = rebuilt(&w, &family, &w.kek).await;
    assert_eq!((state.items.len(), state.erased.len()), (1, 1), "the old record stays readable");
}
