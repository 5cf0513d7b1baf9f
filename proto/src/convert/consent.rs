//! Inbound consent-ledger and dossier fields.

use super::{FieldError, Result, organisation_type, professional_role};
use crate::v1 as pb;
use chrono::{DateTime, Utc};
use gezinsdossier_ledger::consent::{ConsentMethod, LegalBasisKind, Purpose, Recipient};

/// # Errors
/// When unspecified or unknown.
pub fn purpose(raw: i32, field: &str) -> Result<Purpose> {
    pb::Purpose::try_from(raw)
        .ok()
        .and_then(|p| {
            let name = p.as_str_name().trim_start_matches("PURPOSE_").to_ascii_lowercase();
            Purpose::ALL.into_iter().find(|q| q.as_str() == name)
        })
        .ok_or_else(|| {
            FieldError::new(
                field,
                format!("required: care, coordination, child_protection or safety_assessment (got {raw})"),
            )
        })
}

/// # Errors
/// When unspecified or unknown.
pub fn legal_basis_kind(raw: i32, field: &str) -> Result<LegalBasisKind> {
    match pb::LegalBasisKind::try_from(raw) {
        Ok(pb::LegalBasisKind::ChildProtectionMeasure) => Ok(LegalBasisKind::ChildProtectionMeasure),
        Ok(pb::LegalBasisKind::Meldcode) => Ok(LegalBasisKind::Meldcode),
        Ok(pb::LegalBasisKind::BreakTheGlass) => Ok(LegalBasisKind::BreakTheGlass),
        _ => Err(FieldError::new(field, format!("required: a known legal basis kind (got {raw})"))),
    }
}

/// # Errors
/// The first recipient that is empty or malformed.
pub fn recipients(raw: Vec<pb::Recipient>, field: &str) -> Result<Vec<Recipient>> {
    use pb::recipient::Recipient as R;
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| {
            let at = format!("{field}[{i}]");
            match r.recipient {
                Some(R::OrganisationId(id)) if !id.trim().is_empty() => Ok(Recipient::Organisation {
                    organisation_id: super::identifier(id, &format!("{at}.organisation_id"))?,
                }),
                Some(R::TypeAndRole(t)) => Ok(Recipient::TypeAndRole {
                    organisation_type: organisation_type(
                        t.organisation_type,
                        &format!("{at}.type_and_role.organisation_type"),
                    )?,
                    role: if t.role == 0 {
                        None
                    } else {
                        Some(professional_role(t.role, &format!("{at}.type_and_role.role"))?)
                    },
                }),
                Some(R::OrganisationAndRole(o)) if !o.organisation_id.trim().is_empty() => {
                    Ok(Recipient::OrganisationRole {
                        organisation_id: super::identifier(
                            o.organisation_id,
                            &format!("{at}.organisation_and_role.organisation_id"),
                        )?,
                        role: professional_role(o.role, &format!("{at}.organisation_and_role.role"))?,
                    })
                }
                _ => Err(FieldError::new(at, "set organisation_id, type_and_role or organisation_and_role")),
            }
        })
        .collect()
}

/// # Errors
/// When missing or empty.
pub fn method(raw: Option<pb::ConsentMethod>, field: &str) -> Result<ConsentMethod> {
    use pb::consent_method::Method as M;
    match raw.and_then(|m| m.method) {
        Some(M::SignedFormReference(r)) if !r.trim().is_empty() => Ok(ConsentMethod::SignedForm {
            document_reference: super::identifier(r, &format!("{field}.signed_form_reference"))?,
        }),
        Some(M::VerbalRecordedByProfessionalId(p)) if !p.trim().is_empty() => Ok(ConsentMethod::Verbal {
            recorded_by_professional_id: super::identifier(p, &format!("{field}.verbal_recorded_by_professional_id"))?,
        }),
        _ => Err(FieldError::new(field, "required: a signed form reference, or who recorded a verbal consent")),
    }
}

/// An optional timestamp; `None` when absent.
///
/// # Errors
/// When present but out of range.
pub fn optional_timestamp(raw: Option<prost_types::Timestamp>, field: &str) -> Result<Option<DateTime<Utc>>> {
    raw.map(|t| super::timestamp(Some(t), field)).transpose()
}
