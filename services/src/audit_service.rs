//! `AuditService`: the privacy officer's queries over the access log and the review queue.
//! The rows and their rules live in `gezinsdossier_ledger::audit`.

use crate::consent_service::family_id;
use crate::error::ServiceError;
use crate::identity::interceptor::requester;
use crate::proofs::Prover;
use gezinsdossier_ledger::audit::{AuditFilter, BasisType};
use gezinsdossier_ledger::authorisation::Caller;
use gezinsdossier_ledger::case::InformationCategory;
use gezinsdossier_ledger::consent::LegalBasisKind;
use gezinsdossier_ledger::disclosure::ReviewOutcome;
use gezinsdossier_ledger::erasure::{ErasureGround, RequestedBy};
use gezinsdossier_ledger::families::{ErasureRequest, Families, Restricted, RestrictionStep};
use gezinsdossier_ledger::proof_index::LogIndex;
use gezinsdossier_proto::convert::consent::{optional_timestamp, purpose};
use gezinsdossier_proto::convert::views::access_log_entry;
use gezinsdossier_proto::convert::{self, FieldError};
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::audit_service_server::AuditService;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Largest page.
const MAX_PAGE: usize = 1000;

pub struct AuditApi {
    families: Arc<Families>,
    index: LogIndex,
}

impl AuditApi {
    pub fn new(families: Arc<Families>, index: LogIndex) -> Self {
        Self { families, index }
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    type QueryAccessLogStream = Pin<Box<dyn Stream<Item = Result<pb::AccessLogEntry, Status>> + Send>>;

    #[tracing::instrument(name = "QueryAccessLog", skip_all)]
    async fn query_access_log(
        &self,
        request: Request<pb::QueryAccessLogRequest>,
    ) -> Result<Response<Self::QueryAccessLogStream>, Status> {
        let who = requester(&request)?.caller();
        let r = request.into_inner();
        let family = if r.family_id.is_empty() { None } else { Some(family_id(&r.family_id)?) };
        let filter = AuditFilter {
            subject: non_empty(r.subject_member_id),
            organisation_id: non_empty(r.organisation_id),
            basis: basis_type(r.basis_type)?,
            purpose: if r.purpose == 0 {
                None
            } else {
                Some(purpose(r.purpose, "purpose").map_err(ServiceError::from)?)
            },
            from: optional_timestamp(r.from, "from").map_err(ServiceError::from)?,
            until: optional_timestamp(r.until, "until").map_err(ServiceError::from)?,
            include_refusals: r.include_refusals,
            pending_review_only: r.pending_review_only,
            overdue_at: r.overdue_only.then(|| self.families.now()),
        };
        let now = self.families.now();
        let limit = if r.limit == 0 { MAX_PAGE } else { (r.limit as usize).min(MAX_PAGE) };
        let query = format!("{filter:?}, after position {:?}, limit {limit}", r.after_position);
        let rows = match &family {
            Some(family) => self.families.audit(family, &who, &filter, query).await,
            None => self.families.audit_all(&who, &filter, query).await,
        }
        .map_err(ServiceError::from)?;
        let prover = if r.include_proofs {
            Some(Prover::latest(&**self.families.store(), self.index.clone()).await.map_err(ServiceError::from)?)
        } else {
            None
        };
        let mut page = Vec::new();
        for row in rows.iter().filter(|row| r.after_position.is_none_or(|after| row.position > after)).take(limit) {
            let mut e = access_log_entry(row, now);
            if let Some(p) = &prover {
                e.inclusion_proof = p.path(row.position).await;
                e.tree_head = p.head_message();
            }
            page.push(e);
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(page.into_iter().map(Ok)))))
    }

    #[tracing::instrument(name = "RecordReview", skip_all)]
    async fn record_review(
        &self,
        request: Request<pb::RecordReviewRequest>,
    ) -> Result<Response<pb::ReviewRecorded>, Status> {
        let who = requester(&request)?.caller();
        let r = request.into_inner();
        let family = family_id(&r.family_id)?;
        let disclosure =
            convert::event_id(&r.disclosure_event_id, "disclosure_event_id").map_err(ServiceError::from)?;
        let outcome = match pb::ReviewOutcome::try_from(r.outcome) {
            Ok(pb::ReviewOutcome::Justified) => ReviewOutcome::Justified,
            Ok(pb::ReviewOutcome::Unjustified) => ReviewOutcome::Unjustified,
            Ok(pb::ReviewOutcome::NeedsFollowUp) => ReviewOutcome::NeedsFollowUp,
            _ => {
                return Err(ServiceError::from(FieldError::new(
                    "outcome",
                    "required: justified, unjustified or needs_follow_up",
                ))
                .into());
            }
        };
        let note = convert::required(r.note, "note").map_err(ServiceError::from)?;
        let logged =
            self.families.review(&family, &who, disclosure, outcome, note).await.map_err(ServiceError::from)?;
        Ok(Response::new(pb::ReviewRecorded { event_id: logged.event_id.to_string() }))
    }

    #[tracing::instrument(name = "RestrictRecords", skip_all)]
    async fn restrict_records(
        &self,
        request: Request<pb::RestrictRecordsRequest>,
    ) -> Result<Response<pb::RestrictionRecorded>, Status> {
        let who = requester(&request)?.caller();
        let r = request.into_inner();
        let family = family_id(&r.family_id)?;
        let subject = convert::identifier(r.subject_member_id, "subject_member_id").map_err(ServiceError::from)?;
        let categories = categories(&r.categories)?;
        let step = RestrictionStep::Apply { subject, categories };
        let done = self.families.restrict(&family, &who, step).await.map_err(ServiceError::from)?;
        Ok(Response::new(restriction_recorded(done)))
    }

    #[tracing::instrument(name = "LiftRestriction", skip_all)]
    async fn lift_restriction(
        &self,
        request: Request<pb::LiftRestrictionRequest>,
    ) -> Result<Response<pb::RestrictionRecorded>, Status> {
        let who = requester(&request)?.caller();
        let r = request.into_inner();
        let family = family_id(&r.family_id)?;
        let restriction_id = convert::event_id(&r.restriction_id, "restriction_id").map_err(ServiceError::from)?;
        let done = self
            .families
            .restrict(&family, &who, RestrictionStep::Lift { restriction_id })
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(restriction_recorded(done)))
    }

    #[tracing::instrument(name = "EraseRecords", skip_all)]
    async fn erase_records(
        &self,
        request: Request<pb::EraseRecordsRequest>,
    ) -> Result<Response<pb::ErasureRecorded>, Status> {
        let who = requester(&request)?.caller();
        Ok(Response::new(self.erase(who, request.into_inner()).await?))
    }
}

impl AuditApi {
    async fn erase(&self, who: Caller, r: pb::EraseRecordsRequest) -> Result<pb::ErasureRecorded, ServiceError> {
        let family = family_id(&r.family_id)?;
        let subject = convert::identifier(r.subject_member_id, "subject_member_id")?;
        let categories = categories(&r.categories)?;
        let ground = match pb::ErasureGround::try_from(r.ground) {
            Ok(pb::ErasureGround::Avg17) => ErasureGround::Avg17,
            Ok(pb::ErasureGround::Jeugdwet739) => ErasureGround::Jeugdwet739,
            Ok(pb::ErasureGround::Wgbo7455) => ErasureGround::Wgbo7455,
            _ => return Err(FieldError::new("ground", "required: avg_17, jeugdwet_7_3_9 or wgbo_7_455").into()),
        };
        let requested_by = match pb::ErasureRequestedBy::try_from(r.requested_by) {
            Ok(pb::ErasureRequestedBy::Subject) => RequestedBy::Subject,
            Ok(pb::ErasureRequestedBy::GezagHolder) => RequestedBy::GezagHolder,
            Ok(pb::ErasureRequestedBy::LegalRepresentative) => RequestedBy::LegalRepresentative,
            _ => {
                return Err(
                    FieldError::new("requested_by", "required: subject, gezag_holder or legal_representative").into()
                );
            }
        };
        let request = ErasureRequest { family, officer: who, subject, categories, ground, requested_by };
        let outcome = self.families.erase(request).await?;
        Ok(pb::ErasureRecorded {
            erasure_event_id: outcome.record.erasure_id.to_string(),
            global_position: outcome.position,
            keys_destroyed: u32::try_from(outcome.record.destroyed_keys.len()).unwrap_or(u32::MAX),
            events_shredded: outcome.record.shredded_events,
            events_kept: outcome.record.kept_events,
            kept_reasons: outcome.kept.keys().map(|k| k.explanation().to_owned()).collect(),
            notices_sent: u32::try_from(outcome.notices_sent).unwrap_or(u32::MAX),
        })
    }
}

fn categories(raw: &[i32]) -> Result<std::collections::BTreeSet<InformationCategory>, ServiceError> {
    Ok(raw
        .iter()
        .enumerate()
        .map(|(i, c)| convert::category(*c, &format!("categories[{i}]")))
        .collect::<Result<_, _>>()?)
}

fn restriction_recorded(done: Restricted) -> pb::RestrictionRecorded {
    pb::RestrictionRecorded {
        restriction_id: done.restriction_id.to_string(),
        event_id: done.logged.event_id.to_string(),
        global_position: done.logged.position,
    }
}

fn non_empty(s: String) -> Option<String> {
    if s.trim().is_empty() { None } else { Some(s) }
}

fn basis_type(raw: i32) -> Result<Option<BasisType>, ServiceError> {
    Ok(match pb::BasisType::try_from(raw) {
        Ok(pb::BasisType::Unspecified) => None,
        Ok(pb::BasisType::Consent) => Some(BasisType::Consent),
        Ok(pb::BasisType::ChildProtectionMeasure) => Some(BasisType::Legal(LegalBasisKind::ChildProtectionMeasure)),
        Ok(pb::BasisType::Meldcode) => Some(BasisType::Legal(LegalBasisKind::Meldcode)),
        Ok(pb::BasisType::BreakTheGlass) => Some(BasisType::Legal(LegalBasisKind::BreakTheGlass)),
        Err(_) => return Err(FieldError::new("basis_type", format!("unknown basis type {raw}")).into()),
    })
}
