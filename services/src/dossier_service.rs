//! `DossierService`: the requester's gezinsdossier, and a privacy officer's investigation
//! of what someone could have seen. The view and its rules live in
//! `gezinsdossier_ledger::dossier`.

use crate::consent_service::family_id;
use crate::error::ServiceError;
use crate::identity::OrganisationRegistry;
use crate::identity::interceptor::requester;
use gezinsdossier_ledger::actor::{Actor, ProfessionalRole};
use gezinsdossier_ledger::dossier::{DossierView, Shown, VisibleItem};
use gezinsdossier_ledger::families::{DossierRequest, Families};
use gezinsdossier_proto::convert::consent::purpose;
use gezinsdossier_proto::convert::{self, FieldError, outbound};
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::dossier_service_server::DossierService;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct DossierApi {
    families: Arc<Families>,
    registry: Arc<OrganisationRegistry>,
}

impl DossierApi {
    pub fn new(families: Arc<Families>, registry: Arc<OrganisationRegistry>) -> Self {
        Self { families, registry }
    }
}

#[tonic::async_trait]
impl DossierService for DossierApi {
    #[tracing::instrument(name = "GetDossier", skip_all, fields(organisation_id, family_id))]
    async fn get_dossier(&self, request: Request<pb::GetDossierRequest>) -> Result<Response<pb::Dossier>, Status> {
        let who = requester(&request)?;
        let r = request.into_inner();
        let family = family_id(&r.family_id)?;
        tracing::Span::current().record("organisation_id", who.actor.organisation_id.as_str());
        tracing::Span::current().record("family_id", family.as_str());
        let purpose = purpose(r.purpose, "purpose").map_err(ServiceError::from)?;
        let break_the_glass = match r.break_the_glass {
            Some(b) if b.reason.trim().is_empty() => {
                return Err(ServiceError::from(FieldError::new(
                    "break_the_glass.reason",
                    "say why there is acute danger",
                ))
                .into());
            }
            Some(b) => Some(b.reason),
            None => None,
        };
        let btg = break_the_glass.is_some();
        let (view, logged) = self
            .families
            .dossier(DossierRequest { family, requester: who.actor, purpose, break_the_glass })
            .await
            .map_err(ServiceError::from)?;
        tracing::info!(items = view.timeline.len(), break_the_glass = btg, "dossier disclosed");
        Ok(Response::new(dossier(&r.family_id, &view, logged.event_id.to_string())))
    }

    #[tracing::instrument(name = "InvestigateDossier", skip_all)]
    async fn investigate_dossier(
        &self,
        request: Request<pb::InvestigateDossierRequest>,
    ) -> Result<Response<pb::Dossier>, Status> {
        let who = requester(&request)?;
        if who.actor.role != ProfessionalRole::PrivacyOfficer {
            return Err(
                ServiceError::PermissionDenied("only a privacy officer may investigate a dossier".into()).into()
            );
        }
        let r = request.into_inner();
        let family = family_id(&r.family_id)?;
        let organisation = self
            .registry
            .by_id(&r.organisation_id)
            .ok_or_else(|| ServiceError::from(FieldError::new("organisation_id", "not a registered organisation")))?;
        let investigated = Actor {
            organisation_id: organisation.id.clone(),
            organisation_type: organisation.organisation_type,
            professional_id: r.professional_id,
            role: convert::professional_role(r.role, "role").map_err(ServiceError::from)?,
        };
        let purpose = purpose(r.purpose, "purpose").map_err(ServiceError::from)?;
        let as_of = convert::timestamp(r.as_of, "as_of").map_err(ServiceError::from)?;
        let view = self
            .families
            .investigate(&family, &who.actor, &investigated, purpose, as_of)
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(dossier(&r.family_id, &view, String::new())))
    }
}

fn dossier(family_id: &str, view: &DossierView, disclosure_event_id: String) -> pb::Dossier {
    let item = |v: &VisibleItem| pb::DossierItem {
        event_id: v.item.event_id.to_string(),
        revision: v.item.revision,
        recorded_at: Some(outbound::timestamp(v.item.recorded_at)),
        event: Some(outbound::case_event(&v.item.event_id, &v.item.event)),
        author_organisation_id: if v.show_author { v.item.author.organisation_id.clone() } else { String::new() },
        author_role: if v.show_author { outbound::role(v.item.author.role) } else { 0 },
        own_record: v.shown == Shown::OwnRecord,
        superseded_by_event_id: v.superseded_by.map(|id| id.to_string()).unwrap_or_default(),
    };
    let by_id = |id: &uuid::Uuid| view.timeline.iter().find(|v| v.item.event_id == *id).map(item);
    pb::Dossier {
        family_id: family_id.to_owned(),
        family_revision: view.family_revision.unwrap_or_default(),
        disclosure_event_id,
        members: view
            .members
            .iter()
            .map(|m| pb::VisibleMember {
                member_id: m.id.clone(),
                role: outbound::member_role(m.role),
                birth_date: m.birth_date.map(outbound::date),
                gezag: m.gezag.as_ref().map(outbound::gezag),
            })
            .collect(),
        plans: view.plans.iter().filter_map(|p| by_id(&p.event_id)).collect(),
        roster: view
            .roster
            .iter()
            .map(|r| pb::RosterEntry {
                organisation_id: r.organisation_id.clone(),
                roles: r.roles.iter().map(|x| outbound::role(*x)).collect(),
            })
            .collect(),
        coordinator: view.coordinator.as_ref().map(outbound::participant),
        open_referrals: view.open_referrals.iter().filter_map(|p| by_id(&p.event_id)).collect(),
        timeline: view.timeline.iter().map(item).collect(),
        disclosed: view
            .disclosed
            .iter()
            .flat_map(|(subject, categories)| {
                categories.iter().map(move |(c, b)| pb::DisclosedCategory {
                    subject_member_id: subject.clone(),
                    category: outbound::category(*c),
                    basis: Some(outbound::basis(b)),
                })
            })
            .collect(),
        review_required: view.needs_review(),
        notices: view.notices.iter().map(outbound::denial_reason).collect(),
    }
}
