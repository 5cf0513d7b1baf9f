//! `CaseService`: decode, hand to the ledger, encode. No rules live here.

use crate::error::ServiceError;
use crate::identity::interceptor::requester;
use gezinsdossier_ledger::families::{CaseAppend, Families};
use gezinsdossier_ledger::family::FamilyId;
use gezinsdossier_proto::convert::{self, FieldError};
use gezinsdossier_proto::v1::case_service_server::CaseService;
use gezinsdossier_proto::v1::{AppendEventsRequest, AppendEventsResponse};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct CaseApi {
    families: Arc<Families>,
    max_events_per_request: usize,
}

impl CaseApi {
    pub fn new(families: Arc<Families>, max_events_per_request: usize) -> Self {
        Self { families, max_events_per_request }
    }
}

#[tonic::async_trait]
impl CaseService for CaseApi {
    #[tracing::instrument(name = "AppendEvents", skip_all, fields(organisation_id, family_id, events))]
    async fn append_events(
        &self,
        request: Request<AppendEventsRequest>,
    ) -> Result<Response<AppendEventsResponse>, Status> {
        let who = requester(&request)?;
        let span = tracing::Span::current();
        span.record("organisation_id", who.actor.organisation_id.as_str());
        let body = request.into_inner();
        span.record("events", body.events.len());
        let family = FamilyId::new(&body.family_id)
            .map_err(|e| ServiceError::from(FieldError::new("family_id", e.to_string())))?;
        span.record("family_id", family.as_str());
        if body.events.is_empty() {
            return Err(ServiceError::from(FieldError::new("events", "at least one event is required")).into());
        }
        if body.events.len() > self.max_events_per_request {
            return Err(ServiceError::TooLarge {
                what: "events",
                got: body.events.len(),
                max: self.max_events_per_request,
            }
            .into());
        }
        let expected = convert::expected_revision(body.expected_revision).map_err(ServiceError::from)?;
        let mut events = Vec::with_capacity(body.events.len());
        for (i, raw) in body.events.into_iter().enumerate() {
            let event = convert::case_event(raw).map_err(|e| ServiceError::from(e.within(&format!("events[{i}]."))))?;
            events.push(event);
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(i) = events.iter().position(|(id, _)| !seen.insert(*id)) {
            return Err(ServiceError::from(FieldError::new(
                format!("events[{i}].event_id"),
                "used twice in one request",
            ))
            .into());
        }

        let outcome = self
            .families
            .append_case_events(CaseAppend { family, expected, author: who.caller(), events })
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(AppendEventsResponse {
            stream_revision: outcome.stream_revision,
            last_event_hash: outcome.last_hash().to_hex(),
            global_positions: outcome.positions,
            deduplicated: outcome.deduplicated,
        }))
    }
}
