//! Writes the starting corpus for the `requests` target: one valid request per method
//! (a family, a consent, dossier reads, proofs, …), each prefixed with the method's index,
//! an organisation and a role. `cargo run --example seeds` (from fuzz/); the output is
//! checked in under corpus/requests.

use gezinsdossier_fuzz::methods;
use gezinsdossier_proto::v1 as pb;
use pb::case_event::Kind;
use prost::Message;

fn event(subjects: &[&str], category: pb::InformationCategory, kind: Kind) -> pb::CaseEvent {
    pb::CaseEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        occurred_at: Some(prost_types::Timestamp { seconds: 1_760_000_000, nanos: 0 }),
        subject_member_ids: subjects.iter().map(|s| s.to_string()).collect(),
        categories: vec![category as i32],
        kind: Some(kind),
    }
}

fn main() {
    let family = "fam-fuzz".to_string();
    let member = |id: &str, role: pb::MemberRole, birth: Option<pb::CalendarDate>, gezag: &[&str]| {
        event(
            &[],
            pb::InformationCategory::Identity,
            Kind::MemberAdded(pb::MemberAdded {
                member_id: id.into(),
                role: role as i32,
                display_name: "Naam".into(),
                birth_date: birth,
                gezag: (!gezag.is_empty())
                    .then(|| pb::Gezag { holder_member_ids: gezag.iter().map(|s| s.to_string()).collect(), ..Default::default() }),
                ..Default::default()
            }),
        )
    };
    let append = pb::AppendEventsRequest {
        family_id: family.clone(),
        expected_revision: Some(pb::ExpectedRevision { expectation: Some(pb::expected_revision::Expectation::Any(())) }),
        events: vec![
            member("mother", pb::MemberRole::Parent, None, &[]),
            member("child", pb::MemberRole::Child, Some(pb::CalendarDate { year: 2012, month: 3, day: 4 }), &["mother"]),
            event(&["mother"], pb::InformationCategory::TreatmentNotes, Kind::Note(pb::Note { text: "notitie".into() })),
        ],
    };
    let grant = pb::GrantConsentRequest {
        family_id: family.clone(),
        event_id: uuid::Uuid::new_v4().to_string(),
        consent_id: "c-1".into(),
        subject_member_id: "mother".into(),
        categories: vec![pb::InformationCategory::TreatmentNotes as i32],
        recipients: vec![pb::Recipient { recipient: Some(pb::recipient::Recipient::OrganisationId("jeugdhulp-haaglanden".into())) }],
        purpose: pb::Purpose::Care as i32,
        given_by_member_ids: vec!["mother".into()],
        ..Default::default()
    };
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("/gezinsdossier.v1.CaseService/AppendEvents", append.encode_to_vec()),
        ("/gezinsdossier.v1.ConsentService/GrantConsent", grant.encode_to_vec()),
        (
            "/gezinsdossier.v1.ConsentService/CheckAccess",
            pb::CheckAccessRequest {
                family_id: family.clone(),
                subject_member_id: "mother".into(),
                category: pb::InformationCategory::TreatmentNotes as i32,
                purpose: pb::Purpose::Care as i32,
                at: None,
            }
            .encode_to_vec(),
        ),
        (
            "/gezinsdossier.v1.ConsentService/ListConsents",
            pb::ListConsentsRequest { family_id: family.clone(), ..Default::default() }.encode_to_vec(),
        ),
        (
            "/gezinsdossier.v1.DossierService/GetDossier",
            pb::GetDossierRequest { family_id: family.clone(), purpose: pb::Purpose::Care as i32, break_the_glass: None }
                .encode_to_vec(),
        ),
        (
            "/gezinsdossier.v1.LogService/GetInclusionProof",
            pb::GetInclusionProofRequest { position: 1, tree_size: 3, include_event_bytes: true }.encode_to_vec(),
        ),
        ("/gezinsdossier.v1.LogService/GetLatestTreeHead", Vec::new()),
    ];
    let dir = std::path::Path::new("corpus/requests");
    std::fs::create_dir_all(dir).expect("corpus dir");
    let methods = methods();
    for (n, (path, body)) in seeds.into_iter().enumerate() {
        let index = methods.iter().position(|m| m.path == path).unwrap_or_else(|| panic!("no method {path}"));
        let mut bytes = vec![u8::try_from(index).expect("few methods"), 0, 0];
        bytes.extend(body);
        std::fs::write(dir.join(format!("seed-{n:02}")), bytes).expect("write seed");
    }
    // Every other method at least once, with an empty message.
    for (index, method) in methods.iter().enumerate() {
        let name = method.path.rsplit('/').next().unwrap_or("method");
        std::fs::write(dir.join(format!("empty-{name}")), [u8::try_from(index).expect("few methods"), 0, 1])
            .expect("write seed");
    }
}
