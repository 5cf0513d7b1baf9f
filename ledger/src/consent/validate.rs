//! Checks a consent-ledger event against the family before it is recorded. This is where
//! "who may consent" is enforced at the moment a consent is given: a party who has no say
//! over the subject's data cannot agree, refuse or withdraw for it. A consent that lacks a
//! required party is *not* an error: it is recorded as incomplete.

use super::authority::{guardian_organisation, who_must_consent};
use super::model::{ConsentEvent, ConsentRecord, LegalBasis, LegalBasisKind, Recipient};
use crate::actor::OrganisationType;
use crate::family::FamilyState;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentRuleError {
    /// A field is wrong for this family (the message names the field).
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    /// The recording organisation may not record this.
    #[error("{0}")]
    NotAllowed(String),
}

fn invalid(field: &str, problem: impl Into<String>) -> ConsentRuleError {
    ConsentRuleError::Invalid { field: field.to_owned(), problem: problem.into() }
}

/// # Errors
/// The first rule the event breaks.
pub fn validate(family: &FamilyState, record: &ConsentRecord, now: DateTime<Utc>) -> Result<(), ConsentRuleError> {
    let may_speak_for = |subject: &str, member: &str, field: &str| -> Result<(), ConsentRuleError> {
        let subject_member =
            family.members.get(subject).ok_or_else(|| invalid(field, format!("{subject:?} is not a member")))?;
        let authority = who_must_consent(subject_member, now.date_naive());
        if let Some(guardian) = guardian_organisation(member)
            && guardian != record.recorded_by.organisation_id
        {
            return Err(invalid(
                field,
                "a guardian organisation gives or refuses its consent itself, through its gezinsvoogd",
            ));
        }
        if authority.must_agree.contains(member) {
            Ok(())
        } else {
            Err(invalid(
                field,
                format!(
                    "{member:?} may not consent for {subject:?} under the {} rule; {}",
                    authority.rule.as_str(),
                    authority.describe()
                ),
            ))
        }
    };
    let existing = |id: &str| {
        family.consents.get(id).ok_or_else(|| invalid("consent_id", format!("no consent {id:?} in this family")))
    };
    match &record.event {
        ConsentEvent::Granted(g) => {
            non_empty(&g.consent_id, "consent_id")?;
            if family.consents.contains_key(&g.consent_id) {
                return Err(invalid("consent_id", format!("{:?} is already used in this family", g.consent_id)));
            }
            if !family.members.contains_key(&g.subject) {
                return Err(invalid("subject_member_id", format!("{:?} is not a member of this family", g.subject)));
            }
            if g.categories.is_empty() {
                return Err(invalid("categories", "name at least one information category"));
            }
            check_recipients(&g.recipients)?;
            if g.given_by.is_empty() {
                return Err(invalid("given_by_member_ids", "name at least one member who agrees"));
            }
            for member in &g.given_by {
                may_speak_for(&g.subject, member, "given_by_member_ids")?;
            }
            check_period(g.valid_from, g.valid_until)?;
            non_empty(&g.requested_reason, "requested_reason")?;
        }
        ConsentEvent::AgreementAdded { consent_id, given_by, .. } => {
            let c = existing(consent_id)?;
            if c.withdrawn.is_some() {
                return Err(invalid("consent_id", format!("consent {consent_id:?} is withdrawn; record a new one")));
            }
            if c.agreements.contains_key(given_by) {
                return Err(invalid("given_by_member_id", format!("{given_by:?} has already agreed")));
            }
            may_speak_for(&c.grant.subject, given_by, "given_by_member_id")?;
        }
        ConsentEvent::Refused { consent_id, refused_by, .. } => {
            let c = existing(consent_id)?;
            may_speak_for(&c.grant.subject, refused_by, "refused_by_member_id")?;
        }
        ConsentEvent::Withdrawn { consent_id, withdrawn_by, .. } => {
            let c = existing(consent_id)?;
            if c.withdrawn.is_some() {
                return Err(invalid("consent_id", format!("consent {consent_id:?} is already withdrawn")));
            }
            // Whoever agreed may take it back, and so may anyone who must consent now.
            if !c.agreements.contains_key(withdrawn_by) {
                may_speak_for(&c.grant.subject, withdrawn_by, "withdrawn_by_member_id")?;
            }
        }
        ConsentEvent::LegalBasis(basis) => validate_legal_basis(family, record, basis, now)?,
    }
    Ok(())
}

fn validate_legal_basis(
    family: &FamilyState,
    record: &ConsentRecord,
    b: &LegalBasis,
    now: DateTime<Utc>,
) -> Result<(), ConsentRuleError> {
    non_empty(&b.basis_id, "basis_id")?;
    if family.legal_bases.contains_key(&b.basis_id) {
        return Err(invalid("basis_id", format!("{:?} is already used in this family", b.basis_id)));
    }
    non_empty(&b.justification, "justification")?;
    if b.subjects.is_empty() {
        return Err(invalid("subject_member_ids", "name at least one subject"));
    }
    if let Some(s) = b.subjects.iter().find(|s| !family.members.contains_key(*s)) {
        return Err(invalid("subject_member_ids", format!("{s:?} is not a member of this family")));
    }
    if b.categories.is_empty() {
        return Err(invalid("categories", "name at least one information category"));
    }
    check_recipients(&b.recipients)?;
    check_period(b.valid_from, b.valid_until)?;
    let recorder = &record.recorded_by;
    match b.kind {
        LegalBasisKind::ChildProtectionMeasure => {
            if recorder.organisation_type != OrganisationType::CertifiedInstitution {
                return Err(ConsentRuleError::NotAllowed(
                    "only a certified institution (GI) records a child protection basis".into(),
                ));
            }
            let measure_id = b
                .measure_id
                .as_deref()
                .ok_or_else(|| invalid("measure_id", "required for a child protection basis"))?;
            let measure = family
                .measures
                .get(measure_id)
                .ok_or_else(|| invalid("measure_id", format!("no measure {measure_id:?} in this family")))?;
            if !family.measure_in_force(measure_id, now) {
                return Err(invalid("measure_id", format!("measure {measure_id:?} is not in force")));
            }
            if measure.certified_institution_id != recorder.organisation_id {
                return Err(ConsentRuleError::NotAllowed(format!(
                    "measure {measure_id:?} is carried out by another institution"
                )));
            }
            // Jeugdwet 7.3.11: the right to information is the GI's that carries out the
            // measure, and no one else's.
            if b.recipients.iter().any(|r| r.organisation_id() != Some(measure.certified_institution_id.as_str())) {
                return Err(invalid(
                    "recipients",
                    format!(
                        "a child protection basis gives information only to the GI that carries out the measure \
                         ({:?}, Jeugdwet 7.3.11); record a consent for anyone else",
                        measure.certified_institution_id
                    ),
                ));
            }
        }
        LegalBasisKind::Meldcode => {
            // BW 1:240, Wmo 2015 4.1.8: a report goes to the one Veilig Thuis it is made to,
            // not to every Veilig Thuis in the country. (That the organisation is a Veilig
            // Thuis is checked against the registry by the service.)
            if !matches!(b.recipients.as_slice(), [Recipient::Organisation { .. }]) {
                return Err(invalid(
                    "recipients",
                    "a meldcode report goes to one named Veilig Thuis organisation (BW 1:240): give exactly one \
                     organisation_id",
                ));
            }
        }
        LegalBasisKind::BreakTheGlass => {
            let only_self = b.recipients.iter().all(|r| {
                matches!(r, Recipient::Organisation { organisation_id } if *organisation_id == recorder.organisation_id)
            });
            if !only_self {
                return Err(invalid("recipients", "break-the-glass opens access for the recording organisation only"));
            }
        }
    }
    Ok(())
}

fn check_recipients(recipients: &[Recipient]) -> Result<(), ConsentRuleError> {
    if recipients.is_empty() {
        return Err(invalid("recipients", "name at least one recipient"));
    }
    if recipients.iter().any(|r| r.organisation_id().is_some_and(|id| id.trim().is_empty())) {
        return Err(invalid("recipients", "an organisation recipient needs an organisation id"));
    }
    Ok(())
}

fn check_period(from: DateTime<Utc>, until: Option<DateTime<Utc>>) -> Result<(), ConsentRuleError> {
    if until.is_some_and(|u| u <= from) {
        return Err(invalid("valid_until", "ends before it starts"));
    }
    Ok(())
}

fn non_empty(value: &str, field: &str) -> Result<(), ConsentRuleError> {
    if value.trim().is_empty() { Err(invalid(field, "required")) } else { Ok(()) }
}
