//! `ConsentService`: decode, hand to the ledger, encode. The rules live in
//! `gezinsdossier_ledger::consent`.

use crate::error::ServiceError;
use crate::identity::OrganisationRegistry;
use crate::identity::interceptor::{Requester, requester};
use gezinsdossier_ledger::actor::OrganisationType;
use gezinsdossier_ledger::consent::authority::guardian_party;
use gezinsdossier_ledger::consent::{ConsentEvent, ConsentGranted, Decision, LegalBasis, LegalBasisKind, Recipient};
use gezinsdossier_ledger::families::Families;
use gezinsdossier_ledger::family::FamilyId;
use gezinsdossier_ledger::store::AppendOutcome;
use gezinsdossier_proto::convert::consent::{legal_basis_kind, method, optional_timestamp, purpose, recipients};
use gezinsdossier_proto::convert::views::consent_summary;
use gezinsdossier_proto::convert::{self, FieldError, identifier, outbound};
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::consent_service_server::ConsentService;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct ConsentApi {
    families: Arc<Families>,
    clock: Arc<dyn gezinsdossier_ledger::clock::Clock>,
    registry: Arc<OrganisationRegistry>,
}

impl ConsentApi {
    pub fn new(
        families: Arc<Families>,
        clock: Arc<dyn gezinsdossier_ledger::clock::Clock>,
        registry: Arc<OrganisationRegistry>,
    ) -> Self {
        Self { families, clock, registry }
    }

    /// Every organisation a consent or basis names must be in the registry: data promised
    /// to an organisation nobody can authenticate as is a mistake (a typo, a stale id). A
    /// meldcode report goes to a registered Veilig Thuis organisation (BW 1:240); the ledger
    /// checks that exactly one organisation is named.
    fn check_recipients(&self, recipients: &[Recipient], meldcode: bool) -> Result<(), ServiceError> {
        for (i, recipient) in recipients.iter().enumerate() {
            let Some(id) = recipient.organisation_id() else { continue };
            let shown: String = id.chars().take(64).collect();
            let field = format!("recipients[{i}].organisation_id");
            match self.registry.by_id(id) {
                None => {
                    return Err(FieldError::new(field, format!("{shown:?} is not a registered organisation")).into());
                }
                Some(o) if meldcode && o.organisation_type != OrganisationType::VeiligThuis => {
                    return Err(FieldError::new(
                        field,
                        format!("{shown:?} is not a Veilig Thuis organisation in the registry"),
                    )
                    .into());
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    async fn record(
        &self,
        request_family: &str,
        request_event_id: &str,
        who: &crate::identity::Requester,
        event: ConsentEvent,
    ) -> Result<Response<pb::ConsentRecorded>, Status> {
        let family = family_id(request_family)?;
        let event_id = convert::event_id(request_event_id, "event_id").map_err(ServiceError::from)?;
        let outcome = self
            .families
            .append_consent_event(&family, &who.caller(), event_id, event)
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(recorded(&outcome)))
    }
}

pub(crate) fn family_id(raw: &str) -> Result<FamilyId, ServiceError> {
    FamilyId::new(raw).map_err(|e| FieldError::new("family_id", e.to_string()).into())
}

/// Who speaks: a member, or (voogdij) the calling organisation as guardian.
fn party(member_id: String, by_guardian: bool, field: &str, who: &Requester) -> Result<String, ServiceError> {
    match (member_id.trim().is_empty(), by_guardian) {
        (true, true) => Ok(guardian_party(&who.actor.organisation_id)),
        (false, false) => Ok(identifier(member_id, field)?),
        (false, true) => Err(FieldError::new(field, "leave empty when by_guardian is set").into()),
        (true, false) => Err(FieldError::new(field, "required (or set by_guardian under voogdij)").into()),
    }
}

fn recorded(outcome: &AppendOutcome) -> pb::ConsentRecorded {
    pb::ConsentRecorded {
        stream_revision: outcome.stream_revision,
        global_position: outcome.positions.first().copied().unwrap_or_default(),
        deduplicated: outcome.deduplicated,
    }
}

fn categories(
    raw: &[i32],
) -> Result<std::collections::BTreeSet<gezinsdossier_ledger::case::InformationCategory>, ServiceError> {
    raw.iter()
        .enumerate()
        .map(|(i, c)| convert::category(*c, &format!("categories[{i}]")).map_err(ServiceError::from))
        .collect()
}

#[tonic::async_trait]
impl ConsentService for ConsentApi {
    #[tracing::instrument(name = "GrantConsent", skip_all)]
    async fn grant_consent(
        &self,
        request: Request<pb::GrantConsentRequest>,
    ) -> Result<Response<pb::ConsentRecorded>, Status> {
        let who = requester(&request)?;
        let r = request.into_inner();
        let grant = ConsentGranted {
            consent_id: identifier(r.consent_id, "consent_id").map_err(ServiceError::from)?,
            subject: identifier(r.subject_member_id, "subject_member_id").map_err(ServiceError::from)?,
            categories: categories(&r.categories)?,
            recipients: recipients(r.recipients, "recipients").map_err(ServiceError::from)?,
            purpose: purpose(r.purpose, "purpose").map_err(ServiceError::from)?,
            valid_from: optional_timestamp(r.valid_from, "valid_from")
                .map_err(ServiceError::from)?
                .unwrap_or_else(|| self.clock.now()),
            valid_until: optional_timestamp(r.valid_until, "valid_until").map_err(ServiceError::from)?,
            given_by: r
                .given_by_member_ids
                .into_iter()
                .enumerate()
                .map(|(i, m)| identifier(m, &format!("given_by_member_ids[{i}]")))
                .collect::<Result<std::collections::BTreeSet<_>, _>>()
                .map_err(ServiceError::from)?
                .into_iter()
                .chain(r.given_by_guardian.then(|| guardian_party(&who.actor.organisation_id)))
                .collect(),
            method: method(r.method, "method").map_err(ServiceError::from)?,
            requested_reason: convert::text(r.requested_reason, "requested_reason").map_err(ServiceError::from)?,
        };
        self.check_recipients(&grant.recipients, false)?;
        self.record(&r.family_id, &r.event_id, &who, ConsentEvent::Granted(grant)).await
    }

    #[tracing::instrument(name = "AddAgreement", skip_all)]
    async fn add_agreement(
        &self,
        request: Request<pb::AddAgreementRequest>,
    ) -> Result<Response<pb::ConsentRecorded>, Status> {
        let who = requester(&request)?;
        let r = request.into_inner();
        let event = ConsentEvent::AgreementAdded {
            consent_id: identifier(r.consent_id, "consent_id").map_err(ServiceError::from)?,
            given_by: party(r.given_by_member_id, r.by_guardian, "given_by_member_id", &who)?,
            method: method(r.method, "method").map_err(ServiceError::from)?,
        };
        self.record(&r.family_id, &r.event_id, &who, event).await
    }

    #[tracing::instrument(name = "RecordRefusal", skip_all)]
    async fn record_refusal(
        &self,
        request: Request<pb::RecordRefusalRequest>,
    ) -> Result<Response<pb::ConsentRecorded>, Status> {
        let who = requester(&request)?;
        let r = request.into_inner();
        let event = ConsentEvent::Refused {
            consent_id: identifier(r.consent_id, "consent_id").map_err(ServiceError::from)?,
            refused_by: party(r.refused_by_member_id, r.by_guardian, "refused_by_member_id", &who)?,
            reason: convert::text(r.reason, "reason").map_err(ServiceError::from)?,
        };
        self.record(&r.family_id, &r.event_id, &who, event).await
    }

    #[tracing::instrument(name = "WithdrawConsent", skip_all)]
    async fn withdraw_consent(
        &self,
        request: Request<pb::WithdrawConsentRequest>,
    ) -> Result<Response<pb::ConsentRecorded>, Status> {
        let who = requester(&request)?;
        let r = request.into_inner();
        let event = ConsentEvent::Withdrawn {
            consent_id: identifier(r.consent_id, "consent_id").map_err(ServiceError::from)?,
            withdrawn_by: party(r.withdrawn_by_member_id, r.by_guardian, "withdrawn_by_member_id", &who)?,
            reason: convert::text(r.reason, "reason").map_err(ServiceError::from)?,
        };
        self.record(&r.family_id, &r.event_id, &who, event).await
    }

    #[tracing::instrument(name = "ListConsents", skip_all)]
    async fn list_consents(
        &self,
        request: Request<pb::ListConsentsRequest>,
    ) -> Result<Response<pb::ListConsentsResponse>, Status> {
        let who = requester(&request)?;
        let r = request.into_inner();
        let family = family_id(&r.family_id)?;
        let at = optional_timestamp(r.at, "at").map_err(ServiceError::from)?.unwrap_or_else(|| self.clock.now());
        let subject = if r.subject_member_id.is_empty() { None } else { Some(r.subject_member_id.as_str()) };
        let consents = self
            .families
            .list_consents(&family, &who.caller(), subject, at)
            .await
            .map_err(ServiceError::from)?
            .iter()
            .map(consent_summary)
            .collect();
        Ok(Response::new(pb::ListConsentsResponse { consents }))
    }

    #[tracing::instrument(name = "RecordLegalBasis", skip_all)]
    async fn record_legal_basis(
        &self,
        request: Request<pb::RecordLegalBasisRequest>,
    ) -> Result<Response<pb::ConsentRecorded>, Status> {
        let who = requester(&request)?;
        let r = request.into_inner();
        let basis = LegalBasis {
            basis_id: identifier(r.basis_id, "basis_id").map_err(ServiceError::from)?,
            kind: legal_basis_kind(r.kind, "kind").map_err(ServiceError::from)?,
            justification: convert::text(r.justification, "justification").map_err(ServiceError::from)?,
            responsible: who.actor.clone(),
            measure_id: if r.measure_id.trim().is_empty() { None } else { Some(r.measure_id) },
            subjects: r
                .subject_member_ids
                .into_iter()
                .enumerate()
                .map(|(i, m)| identifier(m, &format!("subject_member_ids[{i}]")))
                .collect::<Result<_, _>>()
                .map_err(ServiceError::from)?,
            categories: categories(&r.categories)?,
            recipients: recipients(r.recipients, "recipients").map_err(ServiceError::from)?,
            valid_from: optional_timestamp(r.valid_from, "valid_from")
                .map_err(ServiceError::from)?
                .unwrap_or_else(|| self.clock.now()),
            valid_until: optional_timestamp(r.valid_until, "valid_until").map_err(ServiceError::from)?,
        };
        self.check_recipients(&basis.recipients, basis.kind == LegalBasisKind::Meldcode)?;
        self.record(&r.family_id, &r.event_id, &who, ConsentEvent::LegalBasis(basis)).await
    }

    #[tracing::instrument(name = "CheckAccess", skip_all)]
    async fn check_access(
        &self,
        request: Request<pb::CheckAccessRequest>,
    ) -> Result<Response<pb::CheckAccessResponse>, Status> {
        let who = requester(&request)?;
        let r = request.into_inner();
        let family = family_id(&r.family_id)?;
        let subject = identifier(r.subject_member_id, "subject_member_id").map_err(ServiceError::from)?;
        let category = convert::category(r.category, "category").map_err(ServiceError::from)?;
        let purpose = purpose(r.purpose, "purpose").map_err(ServiceError::from)?;
        let as_of = optional_timestamp(r.at, "at").map_err(ServiceError::from)?;
        if as_of.is_some_and(|t| t > self.clock.now()) {
            return Err(ServiceError::from(FieldError::new("at", "must not be in the future")).into());
        }
        let decision = self
            .families
            .check_access(&family, &who.caller(), purpose, &subject, category, as_of)
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(match decision {
            Decision::Granted(basis) => {
                pb::CheckAccessResponse { granted: true, basis: Some(outbound::basis(&basis)), reasons: vec![] }
            }
            Decision::Denied(reasons) => pb::CheckAccessResponse {
                granted: false,
                basis: None,
                reasons: reasons.iter().map(outbound::denial_reason).collect(),
            },
        }))
    }
}
