//! The who-saw-what report, served to a registered portal for a member it authenticated.
//! Every request is written to the access log, granted or refused.

use super::{Families, FamilyError, Target};
use crate::authorisation::{Action, Caller, Function, MemberAuthentication, Refused, authorise};
use crate::case::MemberId;
use crate::disclosure::{AccessLogEvent, ReportAccess};
use crate::family::FamilyId;
use crate::report::{self, AccessReport};
use std::collections::HashMap;

/// A report and how the family names its members (for the rendered page).
#[derive(Debug, Clone)]
pub struct MemberReport {
    pub report: AccessReport,
    /// Member id to display name (the id where no name is known).
    pub names: HashMap<MemberId, String>,
}

/// Who asks for whose report, and how the portal authenticated them.
#[derive(Debug, Clone, Copy)]
pub struct ReportRequest<'a> {
    pub requested_by: &'a str,
    pub subject: &'a str,
    pub member_authentication: Option<MemberAuthentication>,
    /// Give each line's checkable form ([`report::CheckableLine`]).
    pub checkable_lines: bool,
}

impl Families {
    /// The who-saw-what report about `subject`, asked for by `requested_by` through a
    /// portal. The request is logged, and so is a refusal.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded) when the caller is no portal of this
    /// family, the member's authentication is missing or too weak, or the member may not
    /// see this report; a store failure.
    pub async fn report(
        &self,
        family: &FamilyId,
        portal: &Caller,
        request: ReportRequest<'_>,
    ) -> Result<MemberReport, FamilyError> {
        let at = self.clock.now();
        let target = |exists| {
            Target::family(family, exists).with(format!(
                "report on {:?} for {:?}",
                prefix(request.subject),
                prefix(request.requested_by)
            ))
        };
        // The policy decides before any report work is done (a refusal is recorded).
        let (exists, decision, _) = self.decide_report(family, portal, &request, at, Source::Nothing).await?;
        self.enforce(portal, target(exists), decision).await?;
        // The index's lines make most reports; one they cannot make (a parent's shield, the
        // lines' checkable form) is built from the whole log. Each decides again, on the
        // state it is built from.
        let lines = self.report_lines(family).await?;
        let (mut exists, mut decision, mut built) =
            self.decide_report(family, portal, &request, at, Source::Lines(&lines)).await?;
        drop(lines);
        if decision.is_ok() && built.is_none() {
            let log = self.access_log(family).await?;
            (exists, decision, built) = self.decide_report(family, portal, &request, at, Source::Log(&log)).await?;
        }
        self.enforce(portal, target(exists), decision).await?;
        let built = built.ok_or(FamilyError::UnknownFamily)?;
        let access = ReportAccess {
            portal: portal.actor.clone(),
            at,
            requested_by: request.requested_by.to_owned(),
            subject: request.subject.to_owned(),
            member_authentication: request.member_authentication,
        };
        self.commit_access_log_event(family, AccessLogEvent::Reported(access)).await?;
        Ok(built)
    }

    /// Whether the portal may have this report, and the report when it may and `source`
    /// can make it; also whether the family exists.
    async fn decide_report(
        &self,
        family: &FamilyId,
        portal: &Caller,
        request: &ReportRequest<'_>,
        at: chrono::DateTime<chrono::Utc>,
        source: Source<'_>,
    ) -> Result<(bool, Result<crate::authorisation::Grant, Refused>, Option<MemberReport>), FamilyError> {
        self.with_state_or_empty(family, |state| {
            let action =
                Action::GetAccessReport { family: state, member_authentication: request.member_authentication };
            let decision = authorise(portal, &action).and_then(|grant| {
                // Which member may see whose report is the report's own rule.
                report::may_request(state, request.requested_by, request.subject, at).map(|()| grant).map_err(
                    |denied| Refused { function: Function::GetAccessReport, reasons: vec![denied.to_string()] },
                )
            });
            let report = match source {
                _ if decision.is_err() => None,
                Source::Nothing => None,
                Source::Lines(lines) => lines.report(state, request, at),
                Source::Log(log) => Some(report::build(state, log, &*self.keys, request, at)),
            };
            let built = report.map(|report| MemberReport {
                report,
                names: state
                    .members
                    .values()
                    .map(|m| {
                        let name = if m.display_name.is_empty() { &m.id } else { &m.display_name };
                        (m.id.clone(), name.clone())
                    })
                    .collect(),
            });
            (state.revision.is_some(), decision, built)
        })
        .await
    }
}

/// What a report is made from.
enum Source<'a> {
    /// Only the decision is wanted.
    Nothing,
    Lines(&'a report::ReportLines),
    Log(&'a [crate::envelope::RecordedEvent]),
}

/// At most a short prefix of a caller-chosen id, for a refusal record.
fn prefix(s: &str) -> &str {
    let end = s.char_indices().nth(64).map_or(s.len(), |(i, _)| i);
    &s[..end]
}
