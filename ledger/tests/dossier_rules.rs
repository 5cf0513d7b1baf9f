//! Properties of the dossier against the access rules, over random families, and the
//! cached family state proven equal to a full rebuild from the store.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use gezinsdossier_ledger::actor::{Actor, OrganisationType, ProfessionalRole};
use gezinsdossier_ledger::case::*;
use gezinsdossier_ledger::chain::EventHash;
use gezinsdossier_ledger::clock::{Clock, ManualClock};
use gezinsdossier_ledger::codec::{encode_case, encode_consent};
use gezinsdossier_ledger::consent::*;
use gezinsdossier_ledger::dossier::{self, Shown};
use gezinsdossier_ledger::envelope::{ExpectedRevision, RecordedEvent, StreamId};
use gezinsdossier_ledger::families::{CaseAppend, DossierRequest, Families};
use gezinsdossier_ledger::family::{FamilyId, FamilyState};
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::sqlite::SqliteStore;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use std::collections::BTreeSet;
use std::sync::Arc;

const ORGS: [(&str, OrganisationType); 3] = [
    ("vggz", OrganisationType::VGgz),
    ("youth", OrganisationType::Jeugdhulpaanbieder),
    ("gi", OrganisationType::CertifiedInstitution),
];
const ROLES: [ProfessionalRole; 3] =
    [ProfessionalRole::Psychiater, ProfessionalRole::Casusregisseur, ProfessionalRole::Gezinsvoogd];

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap()
}

fn actor(org: usize, role: usize) -> Actor {
    Actor {
        organisation_id: ORGS[org].0.into(),
        organisation_type: ORGS[org].1,
        professional_id: format!("p{org}{role}"),
        role: ROLES[role],
    }
}

/// Applies records to a family state as a store would hand them out.
struct Builder {
    state: FamilyState,
    revision: u64,
}

impl Builder {
    fn push(&mut self, event_type: String, payload: Vec<u8>, at: DateTime<Utc>) {
        let event = RecordedEvent {
            stream: StreamId::new("family-prop").unwrap(),
            revision: self.revision,
            position: self.revision,
            event_id: uuid::Uuid::new_v4(),
            event_type,
            recorded_at_micros: at.timestamp_micros(),
            payload,
            prev_hash: EventHash::GENESIS,
            hash: EventHash::from_bytes([self.revision as u8; 32]),
        };
        self.state.apply(&event, &gezinsdossier_ledger::sealing::Plaintext).unwrap();
        self.revision += 1;
    }

    fn case(
        &mut self,
        author: Actor,
        subjects: &[String],
        categories: BTreeSet<InformationCategory>,
        kind: CaseEventKind,
    ) {
        let event = CaseEvent { occurred_at: now(), subjects: subjects.iter().cloned().collect(), categories, kind };
        let (t, p) = encode_case(&CaseRecord { author, event });
        self.push(t, p, now());
    }

    fn consent(&mut self, recorded_by: Actor, event: ConsentEvent, at: DateTime<Utc>) {
        let (t, p) = encode_consent(&ConsentRecord { recorded_by, event });
        self.push(t, p, at);
    }
}

/// (author organisation, author role, subject indices, category indices)
type ItemSpec = (usize, usize, Vec<usize>, Vec<usize>);
/// (subject, categories, recipient organisation, purpose, mask of members agreeing,
/// validity in days, withdrawn)
type ConsentSpec = (usize, Vec<usize>, usize, usize, u8, Option<i64>, bool);
/// (recipient organisation, categories, subjects)
type BasisSpec = (usize, Vec<usize>, Vec<usize>);

#[derive(Debug, Clone)]
struct Scenario {
    parents: usize,
    child_ages_days: Vec<i64>,
    gezag_mask: Vec<u8>,
    items: Vec<ItemSpec>,
    consents: Vec<ConsentSpec>,
    bases: Vec<BasisSpec>,
    requester: (usize, usize),
    purpose: usize,
    days_later: i64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        1usize..=2,
        prop::collection::vec(0i64..(18 * 365), 0..=3),
        prop::collection::vec(0u8..4, 3),
        prop::collection::vec(
            (0usize..3, 0usize..3, prop::collection::vec(0usize..5, 1..3), prop::collection::vec(0usize..13, 1..3)),
            1..25,
        ),
        prop::collection::vec(
            (
                0usize..5,
                prop::collection::vec(0usize..13, 2..10),
                0usize..5,
                0usize..2,
                // Half the time everyone agrees, so that many consents are complete.
                prop_oneof![Just(0xFFu8), any::<u8>()],
                prop::option::of(1i64..1000),
                prop::bool::weighted(0.2),
            ),
            0..12,
        ),
        prop::collection::vec(
            (0usize..5, prop::collection::vec(0usize..13, 1..6), prop::collection::vec(0usize..5, 1..3)),
            0..3,
        ),
        (0usize..3, 0usize..3),
        0usize..2,
        0i64..1500,
    )
        .prop_map(
            |(parents, child_ages_days, gezag_mask, items, consents, bases, requester, purpose, days_later)| Scenario {
                parents,
                child_ages_days,
                gezag_mask,
                items,
                consents,
                bases,
                requester,
                purpose,
                days_later,
            },
        )
}

/// Builds the family: members, case items, consents (some withdrawn) and break-the-glass
/// style legal bases. Invalid combinations are simply skipped, as validation would.
fn build_family(s: &Scenario) -> FamilyState {
    let mut b = Builder { state: FamilyState::default(), revision: 0 };
    let author = actor(1, 1);
    let mut members: Vec<String> = Vec::new();
    for p in 0..s.parents {
        let id = format!("parent{p}");
        b.case(
            author.clone(),
            std::slice::from_ref(&id),
            [InformationCategory::Identity].into(),
            CaseEventKind::MemberAdded(MemberAdded::adult(&id, MemberRole::Parent)),
        );
        members.push(id);
    }
    for (i, age_days) in s.child_ages_days.iter().enumerate() {
        let id = format!("child{i}");
        let holders = (0..s.parents).filter(|p| s.gezag_mask[i] & (1 << p) != 0).map(|p| format!("parent{p}"));
        let born: NaiveDate = (now() - Duration::days(*age_days)).date_naive();
        b.case(
            author.clone(),
            std::slice::from_ref(&id),
            [InformationCategory::Identity].into(),
            CaseEventKind::MemberAdded(MemberAdded::child(&id, born, holders)),
        );
        members.push(id);
    }
    let member = |i: usize| members[i % members.len()].clone();
    // Indices 3 and up aim at the requester's organisation, so grants often apply.
    let aimed = |org: usize| if org >= 3 { s.requester.0 } else { org };
    for (org, role, subjects, cats) in &s.items {
        let subjects: Vec<String> = subjects.iter().map(|i| member(*i)).collect::<BTreeSet<_>>().into_iter().collect();
        let cats = cats.iter().map(|c| InformationCategory::ALL[*c]).collect();
        b.case(actor(*org, *role), &subjects, cats, CaseEventKind::Note { text: "n".into() });
    }
    for (n, (subject, cats, org, purpose, givers, until_days, withdraw)) in s.consents.iter().enumerate() {
        let subject = member(*subject);
        // Givers: any subset of the family, as validation would have allowed or not.
        let given_by: BTreeSet<String> =
            members.iter().enumerate().filter(|(i, _)| givers & (1 << i) != 0).map(|(_, m)| m.clone()).collect();
        let consent_id = format!("c{n}");
        b.consent(
            actor(1, 1),
            ConsentEvent::Granted(ConsentGranted {
                consent_id: consent_id.clone(),
                subject,
                categories: cats.iter().map(|c| InformationCategory::ALL[*c]).collect(),
                recipients: vec![Recipient::Organisation { organisation_id: ORGS[aimed(*org)].0.into() }],
                purpose: Purpose::ALL[*purpose],
                valid_from: now(),
                valid_until: until_days.map(|d| now() + Duration::days(d)),
                given_by: given_by.clone(),
                method: ConsentMethod::SignedForm { document_reference: "f".into() },
                requested_reason: "r".into(),
            }),
            now(),
        );
        if *withdraw && let Some(by) = given_by.iter().next() {
            b.consent(
                actor(1, 1),
                ConsentEvent::Withdrawn { consent_id, withdrawn_by: by.clone(), reason: String::new() },
                now() + Duration::days(1),
            );
        }
    }
    for (n, (org, cats, subjects)) in s.bases.iter().enumerate() {
        let org = &aimed(*org);
        b.consent(
            actor(*org, 0),
            ConsentEvent::LegalBasis(LegalBasis {
                basis_id: format!("b{n}"),
                kind: LegalBasisKind::BreakTheGlass,
                justification: "acuut".into(),
                responsible: actor(*org, 0),
                measure_id: None,
                subjects: subjects.iter().map(|i| member(*i)).collect(),
                categories: cats.iter().map(|c| InformationCategory::ALL[*c]).collect(),
                recipients: vec![Recipient::Organisation { organisation_id: ORGS[*org].0.into() }],
                valid_from: now(),
                valid_until: Some(now() + Duration::days(30)),
            }),
            now(),
        );
    }
    b.state
}

proptest! {
    #![proptest_config(Config { cases: 512, rng_seed: RngSeed::Fixed(0x6765_7a69_6e73), failure_persistence: None, ..Config::default() })]

    #[test]
    fn the_view_never_shows_what_the_rules_deny_and_records_every_basis(s in scenario()) {
        let family = build_family(&s);
        let requester = actor(s.requester.0, s.requester.1);
        let purpose = Purpose::ALL[s.purpose];
        let at = now() + Duration::days(s.days_later);
        let view = dossier::build(&family, &requester, purpose, at);
        let shown_ids: BTreeSet<_> = view.timeline.iter().map(|v| v.item.event_id).collect();

        for v in &view.timeline {
            match &v.shown {
                Shown::OwnRecord => prop_assert_eq!(&v.item.author.organisation_id, &requester.organisation_id),
                Shown::Disclosed => {
                    for subject in &v.item.event.subjects {
                        for category in &v.item.event.categories {
                            let decision = decide(&family, AccessQuery { requester: &requester, purpose, subject, category: *category, at });
                            let Decision::Granted(basis) = decision else {
                                return Err(TestCaseError::fail(format!("{subject}/{category:?} shown but denied")));
                            };
                            prop_assert_eq!(Some(&basis), view.disclosed.get(subject).and_then(|c| c.get(category)));
                        }
                    }
                }
            }
        }
        // Whatever is left out had at least one pair the rules deny.
        for item in family.items.iter().filter(|i| !shown_ids.contains(&i.event_id)) {
            prop_assert_ne!(&item.author.organisation_id, &requester.organisation_id);
            let denied = item.event.subjects.iter().any(|subject| {
                item.event.categories.iter().any(|c| {
                    decide(&family, AccessQuery { requester: &requester, purpose, subject, category: *c, at }).basis().is_none()
                })
            });
            prop_assert!(denied, "item hidden although every pair is granted");
        }
        // Nothing is recorded as disclosed that the rules would not grant.
        for (subject, categories) in &view.disclosed {
            for (category, basis) in categories {
                let decision = decide(&family, AccessQuery { requester: &requester, purpose, subject, category: *category, at });
                prop_assert_eq!(decision.basis(), Some(basis));
            }
        }
    }
}

/// (which item, corrected by its author or by another organisation, retracted)
type CorrectionSpec = (usize, bool, bool);

/// Appends corrections (and retractions) of the family's notes, some by their authors (which
/// count) and some by others (which do not).
fn with_corrections(mut family: FamilyState, corrections: &[CorrectionSpec]) -> FamilyState {
    let notes: Vec<_> =
        family.items.iter().filter(|i| matches!(i.event.kind, CaseEventKind::Note { .. })).cloned().collect();
    let mut b = Builder { revision: family.revision.map_or(0, |r| r + 1), state: std::mem::take(&mut family) };
    for (n, (which, by_author, retract)) in corrections.iter().enumerate() {
        let Some(original) = notes.get(which % notes.len().max(1)) else { break };
        let author = if *by_author {
            original.author.clone()
        } else {
            actor((ORGS.iter().position(|o| o.0 == original.author.organisation_id).unwrap_or(0) + 1) % 3, 0)
        };
        let replacement = (!retract).then(|| Box::new(CaseEventKind::Note { text: format!("corrected {n}") }));
        let kind =
            CaseEventKind::Correction(Correction { corrects: original.event_id, reason: "typo".into(), replacement });
        let subjects: Vec<String> = original.event.subjects.iter().cloned().collect();
        b.case(author, &subjects, original.event.categories.clone(), kind);
    }
    b.state
}

proptest! {
    #![proptest_config(Config { cases: 256, rng_seed: RngSeed::Fixed(0x6665_6564), failure_persistence: None, ..Config::default() })]

    /// What the feed sends after any revision is exactly the dossier's items recorded or
    /// corrected after it, shown the same way, with the same bases covered.
    #[test]
    fn changes_after_a_revision_are_the_dossier_items_recorded_or_corrected_after_it(
        s in scenario(),
        corrections in prop::collection::vec((0usize..25, any::<bool>(), prop::bool::weighted(0.3)), 0..6),
    ) {
        let family = with_corrections(build_family(&s), &corrections);
        let requester = actor(s.requester.0, s.requester.1);
        let purpose = Purpose::ALL[s.purpose];
        let at = now() + Duration::days(s.days_later);
        let view = dossier::build(&family, &requester, purpose, at);
        let last = family.revision.unwrap_or(0);
        for after in std::iter::once(None).chain((0..=last).map(Some)) {
            let newer = |r: u64| after.is_none_or(|a| r > a);
            let expected: Vec<_> = view
                .timeline
                .iter()
                .filter(|v| newer(v.item.revision) || v.corrected.as_ref().is_some_and(|c| newer(c.revision)))
                .map(|v| (v.item.event_id, v.shown, v.show_author, v.corrected.as_ref().map(|c| c.correction_event_id), v.event().clone()))
                .collect();
            let changes = dossier::changes_after(&family, &requester, purpose, at, after);
            let got: Vec<_> = changes
                .timeline
                .iter()
                .map(|v| (v.item.event_id, v.shown, v.show_author, v.corrected.as_ref().map(|c| c.correction_event_id), v.event().clone()))
                .collect();
            prop_assert_eq!(got, expected, "after {:?}", after);
            prop_assert_eq!(&changes.covered, &view.covered);
            prop_assert_eq!(changes.any_basis, view.any_basis);
            // Every pair the changes disclose has the basis the rules give it.
            for (subject, categories) in &changes.disclosed {
                for (category, basis) in categories {
                    let decision = decide(&family, AccessQuery { requester: &requester, purpose, subject, category: *category, at });
                    prop_assert_eq!(decision.basis(), Some(basis));
                }
            }
        }
    }
}

/// The cached family state (kept current by taking in what this process appends, from the
/// records it encoded rather than the stored payloads) is exactly the state a full rebuild
/// from the store gives, and so gives the same dossier.
#[tokio::test]
async fn the_cached_state_equals_a_full_rebuild_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let clock = Arc::new(ManualClock::new(now()));
    let families = Arc::new(Families::new(
        store.clone(),
        clock.clone(),
        Arc::new(gezinsdossier_ledger::sealing::Keyring::ephemeral().unwrap()),
    ));
    let family = FamilyId::new("cache").unwrap();
    let youth = actor(1, 1);
    let gi = actor(2, 2);
    let member = |added: MemberAdded| {
        let subjects = [added.member_id.clone()].into();
        let event = CaseEvent {
            occurred_at: now(),
            subjects,
            categories: [InformationCategory::Identity].into(),
            kind: CaseEventKind::MemberAdded(added),
        };
        (uuid::Uuid::new_v4(), event)
    };
    let note = |subject: &str, cat| {
        (
            uuid::Uuid::new_v4(),
            CaseEvent {
                occurred_at: now(),
                subjects: [subject.to_string()].into(),
                categories: [cat].into(),
                kind: CaseEventKind::Note { text: "n".into() },
            },
        )
    };
    families
        .append_case_events(CaseAppend {
            family: family.clone(),
            expected: ExpectedRevision::NoStream,
            author: youth.clone().into(),
            events: vec![
                member(MemberAdded::adult("ma", MemberRole::Parent)),
                member(MemberAdded::child("kid", NaiveDate::from_ymd_opt(2019, 4, 1).unwrap(), ["ma".to_string()])),
            ],
        })
        .await
        .unwrap();
    for round in 0..40 {
        let cat = InformationCategory::ALL[round % 13];
        families
            .append_case_events(CaseAppend {
                family: family.clone(),
                expected: ExpectedRevision::Any,
                author: if round % 3 == 0 { gi.clone() } else { youth.clone() }.into(),
                events: vec![
                    note(if round % 2 == 0 { "ma" } else { "kid" }, cat),
                    note("kid", InformationCategory::Plan),
                ],
            })
            .await
            .unwrap();
        if round % 10 == 5 {
            let grant = ConsentGranted {
                consent_id: format!("c{round}"),
                subject: if round % 20 == 5 { "ma".into() } else { "kid".into() },
                categories: [InformationCategory::Plan, InformationCategory::Identity, cat].into(),
                recipients: vec![Recipient::Organisation { organisation_id: "gi".into() }],
                purpose: Purpose::Care,
                valid_from: now(),
                valid_until: None,
                given_by: ["ma".to_string()].into(),
                method: ConsentMethod::SignedForm { document_reference: "f".into() },
                requested_reason: "r".into(),
            };
            families
                .append_consent_event(&family, &gi.clone().into(), uuid::Uuid::new_v4(), ConsentEvent::Granted(grant))
                .await
                .unwrap();
        }
        if round % 10 == 8 {
            // The author corrects (or, every other time, retracts) its note of this round.
            let (original, by_gi) = families
                .with_fresh_state(&family, |s| {
                    let item = &s.items[s.items.len() - 2];
                    (item.event_id, item.author.organisation_id == gi.organisation_id)
                })
                .await
                .unwrap();
            let replacement = (round % 20 == 8).then(|| Box::new(CaseEventKind::Note { text: "corrected".into() }));
            let mut correction = note("kid", InformationCategory::Plan);
            correction.1.kind =
                CaseEventKind::Correction(Correction { corrects: original, reason: "typo".into(), replacement });
            families
                .append_case_events(CaseAppend {
                    family: family.clone(),
                    expected: ExpectedRevision::Any,
                    author: if by_gi { gi.clone() } else { youth.clone() }.into(),
                    events: vec![correction],
                })
                .await
                .unwrap();
        }
        clock.set(clock.now() + Duration::minutes(1));
    }
    // Appends that arrive together are committed together, and taken in together.
    let together = (0..16).map(|i| {
        families.append_case_events(CaseAppend {
            family: family.clone(),
            expected: ExpectedRevision::Any,
            author: if i % 2 == 0 { gi.clone() } else { youth.clone() }.into(),
            events: vec![note("ma", InformationCategory::ALL[i % 13]), note("kid", InformationCategory::Plan)],
        })
    });
    for outcome in futures::future::join_all(together).await {
        outcome.unwrap();
    }
    let (cached, _) = families
        .dossier(DossierRequest {
            family: family.clone(),
            requester: gi.clone().into(),
            purpose: Purpose::Care,
            break_the_glass: None,
        })
        .await
        .unwrap();

    let mut rebuilt = FamilyState::default();
    for event in store.read_stream(&family.stream(), 0, 100_000).await.unwrap() {
        rebuilt.apply(&event, &*families.keys().clone()).unwrap();
    }
    let cached_state = families.with_fresh_state(&family, FamilyState::clone).await.unwrap();
    assert_eq!(cached_state.revision, Some(40 * 2 + 4 + 4 + 16 * 2 + 1));
    assert_eq!(cached_state, rebuilt, "the cached state differs from the rebuilt one");
    let full = dossier::build(&rebuilt, &gi, Purpose::Care, clock.now());
    let ids = |v: &dossier::DossierView| {
        v.timeline.iter().map(|i| (i.item.event_id, i.shown, i.show_author)).collect::<Vec<_>>()
    };
    assert!(!cached.timeline.is_empty());
    assert_eq!(ids(&cached), ids(&full));
    assert_eq!(cached.disclosed, full.disclosed);
    assert_eq!(cached.members, full.members);
    assert_eq!(cached.family_revision, full.family_revision);
    store.shutdown().await;
}
