//! The family cache keeps to its bound: families used least recently are dropped, and read
//! from the store again, exactly as they were, on their next use.

use chrono::{DateTime, Utc};
use gezinsdossier_ledger::actor::{Actor, OrganisationType, ProfessionalRole};
use gezinsdossier_ledger::case::*;
use gezinsdossier_ledger::clock::ManualClock;
use gezinsdossier_ledger::consent::Purpose;
use gezinsdossier_ledger::envelope::ExpectedRevision;
use gezinsdossier_ledger::families::{CaseAppend, DossierRequest, Families};
use gezinsdossier_ledger::family::FamilyId;
use gezinsdossier_ledger::sealing::Keyring;
use gezinsdossier_ledger::store::sqlite::SqliteStore;
use std::sync::Arc;

const BOUND: usize = 200_000;
/// What one family of this test holds, estimated: 10 events of at most ~700 bytes.
const ONE_FAMILY: usize = 10 * (700 + gezinsdossier_ledger::family::EVENT_OVERHEAD_BYTES);

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap()
}

fn youth() -> Actor {
    Actor {
        organisation_id: "youth".into(),
        organisation_type: OrganisationType::Jeugdhulpaanbieder,
        professional_id: "p".into(),
        role: ProfessionalRole::Casusregisseur,
    }
}

fn event(kind: CaseEventKind, category: InformationCategory) -> (uuid::Uuid, CaseEvent) {
    let event =
        CaseEvent { occurred_at: now(), subjects: ["ma".to_owned()].into(), categories: [category].into(), kind };
    (uuid::Uuid::new_v4(), event)
}

fn append(family: &FamilyId, expected: ExpectedRevision, events: Vec<(uuid::Uuid, CaseEvent)>) -> CaseAppend {
    CaseAppend { family: family.clone(), expected, author: youth().into(), events }
}

#[tokio::test]
async fn the_cache_keeps_to_its_bound_and_a_dropped_family_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let families = Arc::new(
        Families::new(store, Arc::new(ManualClock::new(now())), Arc::new(Keyring::ephemeral().unwrap()))
            .with_cache_bound(BOUND),
    );
    let ids: Vec<FamilyId> = (0..60).map(|i| FamilyId::new(&format!("f{i}")).unwrap()).collect();
    for family in &ids {
        let mut events = vec![event(
            CaseEventKind::MemberAdded(MemberAdded::adult("ma", MemberRole::Parent)),
            InformationCategory::Identity,
        )];
        events.extend((0..9).map(|i| {
            event(CaseEventKind::Note { text: format!("{i} {}", "x".repeat(600)) }, InformationCategory::TreatmentNotes)
        }));
        families.append_case_events(append(family, ExpectedRevision::NoStream, events)).await.unwrap();
        // The bound is kept as each use begins; the use that just ended may add its own.
        let (_, bytes) = families.cache_size();
        assert!(bytes <= BOUND + ONE_FAMILY, "{bytes} cached bytes against a bound of {BOUND}");
    }
    let (held, bytes) = families.cache_size();
    assert!(held < ids.len() / 2, "{held} of {} families still cached ({bytes} bytes)", ids.len());

    // The first family was dropped long ago: it is read back exactly where it stood.
    let more = event(CaseEventKind::Note { text: "after".into() }, InformationCategory::TreatmentNotes);
    let outcome = families.append_case_events(append(&ids[0], ExpectedRevision::Exact(9), vec![more])).await.unwrap();
    assert_eq!(outcome.stream_revision, 10);
    let (view, _) = families
        .dossier(DossierRequest {
            family: ids[0].clone(),
            requester: youth().into(),
            purpose: Purpose::Care,
            break_the_glass: None,
        })
        .await
        .unwrap();
    assert_eq!(view.family_revision, Some(10));
    assert_eq!(view.timeline.len(), 11, "its author sees every item it wrote");
}
