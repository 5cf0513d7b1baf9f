//! FHIR R4 (4.0.1) resources for exchange with other systems: an `AuditEvent` per access-log
//! entry and a `Consent` per consent, each set wrapped in a `collection` Bundle. Members and
//! professionals are identified by namespaced identifiers, never by name.

use crate::audit::AuditRow;
use crate::consent::{Basis, ConsentState, ConsentStatus, Recipient};
use crate::disclosure::{AccessLogEvent, ReviewOutcome};
use crate::envelope::RecordedEvent;
use crate::family::FamilyState;
use crate::sealing::Opener;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

fn member(family: &str, id: &str) -> Value {
    json!({ "identifier": { "system": format!("urn:gezinsdossier:family:{family}:member"), "value": id } })
}

fn professional(organisation: &str, id: &str) -> Value {
    json!({ "identifier": { "system": format!("urn:gezinsdossier:organisation:{organisation}:professional"), "value": id } })
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A `collection` Bundle of `resources`.
pub fn bundle(resources: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "entry": resources.into_iter().map(|r| json!({ "resource": r })).collect::<Vec<_>>(),
    })
}

/// An `AuditEvent` for each access-log event of `family` (checks, queries and reviews too).
pub fn audit_events(family: &str, events: &[RecordedEvent], opener: &dyn Opener) -> Vec<Value> {
    let rows: std::collections::HashMap<_, AuditRow> =
        crate::audit::rows(events, opener, &crate::audit::AuditFilter { include_refusals: true, ..Default::default() })
            .into_iter()
            .map(|r| (r.event_id, r))
            .collect();
    events
        .iter()
        .filter_map(|event| {
            let entry = crate::disclosure::open_line(event, opener)?;
            let (action, subtype, outcome, who, at, purpose, emergency) = match &entry {
                AccessLogEvent::Disclosed(d) => {
                    ("R", "read", "0", &d.requester, d.at, d.purpose.as_str().to_owned(), d.break_the_glass.is_some())
                }
                AccessLogEvent::Refused(r) => ("R", "read", "4", &r.requester, r.at, r.purpose.as_str().to_owned(), false),
                AccessLogEvent::Checked(c) => ("E", "search", "0", &c.requester, c.at, c.purpose.as_str().to_owned(), false),
                AccessLogEvent::Investigated(i) => ("R", "read", "0", &i.privacy_officer, i.at, "investigation".into(), false),
                AccessLogEvent::Audited(a) => ("R", "search", "0", &a.privacy_officer, a.at, "audit".into(), false),
                AccessLogEvent::Reviewed(v) => ("U", "update", "0", &v.reviewer, v.at, "review".into(), false),
                AccessLogEvent::Reported(r) => ("R", "read", "0", &r.portal, r.at, "who-saw-what report".into(), false),
                AccessLogEvent::FunctionRefused(f) => ("E", "operation", "4", &f.caller, f.at, f.function.as_str().into(), false),
                // Notices tell an organisation something; nobody accessed data.
                AccessLogEvent::Notified(_) | AccessLogEvent::NoticeAcknowledged(_) => return None,
            };
            let mut purpose_of_event = vec![json!({ "text": purpose })];
            if emergency {
                purpose_of_event.push(json!({ "coding": [{ "system": ACT_REASON, "code": "ETREAT", "display": "Emergency Treatment" }] }));
            }
            let entities: Vec<Value> = match rows.get(&event.event_id).and_then(|r| r.shown.as_ref()) {
                Some(shown) => shown
                    .iter()
                    .map(|(subject, categories)| {
                        let cats: Vec<String> = categories.keys().map(|c| category_code(*c)).collect();
                        let bases: Vec<String> = categories.values().map(basis_text).collect();
                        json!({
                            "what": member(family, subject),
                            "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person" },
                            "detail": [
                                { "type": "categories", "valueString": cats.join(",") },
                                { "type": "basis", "valueString": bases.join(",") },
                            ],
                        })
                    })
                    .collect(),
                None => vec![json!({ "what": { "identifier": { "system": "urn:gezinsdossier:family", "value": family } } })],
            };
            let mut resource = json!({
                "resourceType": "AuditEvent",
                "id": event.event_id.to_string(),
                "type": { "system": DCM, "code": "110110", "display": "Patient Record" },
                "subtype": [{ "system": "http://hl7.org/fhir/restful-interaction", "code": subtype }],
                "action": action,
                "recorded": time(at),
                "outcome": outcome,
                "purposeOfEvent": purpose_of_event,
                "agent": [{
                    "type": { "text": who.role.as_str() },
                    "who": professional(&who.organisation_id, &who.professional_id),
                    "requestor": true,
                }],
                "source": {
                    "site": "gezinsdossier",
                    "observer": { "display": "gezinsdossier" },
                    "type": [{ "system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server" }],
                },
                "entity": entities,
            });
            if let AccessLogEvent::Reviewed(v) = &entry {
                let verdict = match v.outcome {
                    ReviewOutcome::Justified => "justified",
                    ReviewOutcome::Unjustified => "unjustified",
                    ReviewOutcome::NeedsFollowUp => "needs follow-up",
                };
                resource["outcomeDesc"] = json!(format!("review of {}: {verdict}", v.disclosure_event_id));
            }
            Some(resource)
        })
        .collect()
}

/// A `Consent` for each consent of the family, with its status at `at`.
pub fn consents(family: &str, state: &FamilyState, at: DateTime<Utc>) -> Vec<Value> {
    state.consents.values().filter_map(|c| consent(family, state, c, at)).collect()
}

fn consent(family: &str, state: &FamilyState, c: &ConsentState, at: DateTime<Utc>) -> Option<Value> {
    let subject = state.members.get(&c.grant.subject)?;
    let status = match c.status_at(subject, at) {
        ConsentStatus::Active => "active",
        ConsentStatus::Incomplete { .. } | ConsentStatus::NotYetValid { .. } => "proposed",
        ConsentStatus::Refused { .. } => "rejected",
        ConsentStatus::Withdrawn { .. } | ConsentStatus::Expired { .. } | ConsentStatus::AgeRuleChanged { .. } => {
            "inactive"
        }
    };
    let mut period = json!({ "start": time(c.grant.valid_from) });
    if let Some(until) = c.grant.valid_until {
        period["end"] = json!(time(until));
    }
    let actors: Vec<Value> = c
        .grant
        .recipients
        .iter()
        .map(|r| {
            let reference = match r {
                Recipient::Organisation { organisation_id } => {
                    json!({ "identifier": { "system": "urn:gezinsdossier:organisation", "value": organisation_id } })
                }
                Recipient::OrganisationRole { organisation_id, role } => json!({
                    "identifier": { "system": "urn:gezinsdossier:organisation", "value": organisation_id },
                    "display": format!("{organisation_id} / {}", role.as_str()),
                }),
                Recipient::TypeAndRole { organisation_type, role } => json!({
                    "display": format!("{}{}", organisation_type.as_str(), role.map(|r| format!(" / {}", r.as_str())).unwrap_or_default())
                }),
            };
            json!({
                "role": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP", "display": "information recipient" }] },
                "reference": reference,
            })
        })
        .collect();
    Some(json!({
        "resourceType": "Consent",
        "id": c.grant.consent_id,
        "status": status,
        "scope": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy" }] },
        "category": [{ "coding": [{ "system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent" }] }],
        "patient": member(family, &c.grant.subject),
        "dateTime": time(c.given_at),
        "performer": c.agreements.keys().map(|m| member(family, m)).collect::<Vec<_>>(),
        "policyRule": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN" }] },
        "provision": {
            "type": "permit",
            "period": period,
            "actor": actors,
            "purpose": [{ "system": "urn:gezinsdossier:purpose", "code": c.grant.purpose.as_str() }],
            "code": c.grant.categories.iter().map(|cat| json!({ "coding": [{ "system": "urn:gezinsdossier:category", "code": category_code(*cat) }] })).collect::<Vec<_>>(),
        },
    }))
}

fn basis_text(b: &Basis) -> String {
    match b {
        Basis::Consent { consent_id, .. } => format!("consent:{consent_id}"),
        Basis::LegalBasis { basis_id, kind, .. } => format!("{}:{basis_id}", kind.as_str()),
    }
}

/// The category's name as stored (its serde name, e.g. `safety_plan`).
fn category_code(c: crate::case::InformationCategory) -> String {
    serde_json::to_value(c).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}
