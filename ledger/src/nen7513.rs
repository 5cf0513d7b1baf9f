//! NEN 7513:2018 access records (chapter 7) from the access log: one record per client per
//! logged access, with event, action, date-time, outcome, user, responsible user, role,
//! purpose of use, client, organisation, authorisation or consent profile, and emergency.

use crate::consent::Basis;
use crate::disclosure::{self, AccessLogEvent};
use crate::envelope::RecordedEvent;
use crate::sealing::Opener;
use serde::Serialize;
use std::collections::BTreeSet;

/// One NEN 7513 log line. Field names follow the standard's terms in English.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nen7513Record {
    /// The access-log event id.
    pub event_id: String,
    /// What happened: `disclosure`, `refusal`, `access_check`, `investigation`,
    /// `audit_query`, `review`, `report`.
    pub event: &'static str,
    /// The action on the record: `read`, `search` or `update`.
    pub action: &'static str,
    /// RFC 3339, UTC.
    pub date_time: String,
    /// `success` or `refused`.
    pub outcome: &'static str,
    /// The professional, by id in their organisation's EPD.
    pub user: String,
    /// Who answers for the access: the organisation that asserted the professional.
    pub responsible_user: String,
    pub role: &'static str,
    pub purpose_of_use: String,
    /// The client: `<family>/<member>`, or `<family>` when the access concerned no one member.
    pub client: String,
    pub organisation: String,
    /// The consents and legal bases used, e.g. `consent:c-1;legal_basis:break_the_glass:btg-9`.
    pub authorisation_profile: String,
    /// Break-the-glass.
    pub emergency: bool,
}

/// The records for every access-log event of `family`, in log order.
pub fn records(family: &str, events: &[RecordedEvent], opener: &dyn Opener) -> Vec<Nen7513Record> {
    let mut out = Vec::new();
    for event in events {
        let Some(entry) = crate::disclosure::open_line(event, opener) else { continue };
        let base = |kind: &'static str,
                    action,
                    outcome,
                    actor: &crate::actor::Actor,
                    at: chrono::DateTime<chrono::Utc>,
                    purpose: String| {
            Nen7513Record {
                event_id: event.event_id.to_string(),
                event: kind,
                action,
                date_time: at.to_rfc3339(),
                outcome,
                user: actor.professional_id.clone(),
                responsible_user: actor.organisation_id.clone(),
                role: actor.role.as_str(),
                purpose_of_use: purpose,
                client: family.to_owned(),
                organisation: actor.organisation_id.clone(),
                authorisation_profile: String::new(),
                emergency: false,
            }
        };
        match entry {
            AccessLogEvent::Disclosed(d) => {
                let template = base("disclosure", "read", "success", &d.requester, d.at, d.purpose.as_str().into());
                for (subject, categories) in &d.shown {
                    let profile: BTreeSet<String> = categories.values().map(profile_of).collect();
                    out.push(Nen7513Record {
                        client: format!("{family}/{subject}"),
                        authorisation_profile: profile.into_iter().collect::<Vec<_>>().join(";"),
                        emergency: d.break_the_glass.is_some(),
                        ..template.clone()
                    });
                }
                if d.shown.is_empty() {
                    out.push(Nen7513Record { emergency: d.break_the_glass.is_some(), ..template });
                }
            }
            AccessLogEvent::Refused(r) => {
                out.push(base("refusal", "read", "refused", &r.requester, r.at, r.purpose.as_str().into()));
            }
            AccessLogEvent::Checked(c) => out.push(Nen7513Record {
                client: format!("{family}/{}", c.subject),
                authorisation_profile: c.granted.as_ref().map(profile_of).unwrap_or_default(),
                ..base(
                    "access_check",
                    "search",
                    if c.granted.is_some() { "success" } else { "refused" },
                    &c.requester,
                    c.at,
                    c.purpose.as_str().into(),
                )
            }),
            AccessLogEvent::Investigated(i) => out.push(base(
                "investigation",
                "read",
                "success",
                &i.privacy_officer,
                i.at,
                format!("investigation of {} as of {}", i.investigated.organisation_id, i.as_of.to_rfc3339()),
            )),
            AccessLogEvent::Audited(a) => {
                out.push(base("audit_query", "search", "success", &a.privacy_officer, a.at, "audit".into()));
            }
            AccessLogEvent::Reported(r) => out.push(Nen7513Record {
                client: format!("{family}/{}", r.subject),
                ..base(
                    "report",
                    "read",
                    "success",
                    &r.portal,
                    r.at,
                    format!("who-saw-what report for {}", r.requested_by),
                )
            }),
            AccessLogEvent::FunctionRefused(f) => {
                out.push(base("function_refused", f.function.as_str(), "refused", &f.caller, f.at, f.target.clone()));
            }
            // Notices are not access to data (NEN 7513 logs access).
            AccessLogEvent::Notified(_) | AccessLogEvent::NoticeAcknowledged(_) => {}
            AccessLogEvent::Reviewed(v) => {
                out.push(base(
                    "review",
                    "update",
                    "success",
                    &v.reviewer,
                    v.at,
                    "review of sharing without consent".into(),
                ));
            }
        }
    }
    out
}

fn profile_of(basis: &Basis) -> String {
    match basis {
        Basis::Consent { consent_id, .. } => format!("consent:{consent_id}"),
        Basis::LegalBasis { basis_id, kind, .. } => format!("legal_basis:{}:{basis_id}", kind.as_str()),
    }
}

/// The family whose access log `stream` is, if it is one.
pub fn family_of_access_log(stream: &str) -> Option<&str> {
    stream.strip_prefix(disclosure::STREAM_PREFIX)
}
