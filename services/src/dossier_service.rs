//! `DossierService`: the requester's gezinsdossier, and a privacy officer's investigation
//! of what someone could have seen. The view and its rules live in
//! `gezinsdossier_ledger::dossier`.

use crate::consent_service::family_id;
use crate::error::ServiceError;
use crate::identity::OrganisationRegistry;
use crate::identity::interceptor::requester;
use gezinsdossier_ledger::actor::Actor;
use gezinsdossier_ledger::families::{DossierRequest, Families};
use gezinsdossier_proto::convert::consent::purpose;
use gezinsdossier_proto::convert::views::dossier;
use gezinsdossier_proto::convert::{self, FieldError};
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
        let (view, logged) = self
            .families
            .dossier(DossierRequest { family, requester: who.caller(), purpose, break_the_glass })
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(dossier(&r.family_id, &view, logged.event_id.to_string())))
    }

    #[tracing::instrument(name = "InvestigateDossier", skip_all)]
    async fn investigate_dossier(
        &self,
        request: Request<pb::InvestigateDossierRequest>,
    ) -> Result<Response<pb::Dossier>, Status> {
        let who = requester(&request)?;
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
            .investigate(&family, &who.caller(), &investigated, purpose, as_of)
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(dossier(&r.family_id, &view, String::new())))
    }
}
