//! `LogService`: signed tree heads and Merkle proofs for auditors. The proofs come from the
//! publisher's in-memory index (`gezinsdossier_ledger::publisher::LogIndex`).

use crate::error::ServiceError;
use crate::identity::interceptor::requester;
use gezinsdossier_ledger::actor::ProfessionalRole;
use gezinsdossier_ledger::merkle::TreeHash;
use gezinsdossier_ledger::publisher::{IndexError, LogIndex, latest_head};
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::log_service_server::LogService;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct LogApi {
    store: Arc<dyn EventStore>,
    index: LogIndex,
}

impl LogApi {
    pub fn new(store: Arc<dyn EventStore>, index: LogIndex) -> Self {
        Self { store, index }
    }
}

fn officer_only<T>(request: &Request<T>) -> Result<(), ServiceError> {
    if requester(request)?.actor.role == ProfessionalRole::PrivacyOfficer {
        Ok(())
    } else {
        Err(ServiceError::PermissionDenied("log proofs are for privacy officers".into()))
    }
}

fn index_status(e: IndexError) -> Status {
    match e {
        IndexError::NotYetIndexed { .. } => Status::unavailable(e.to_string()),
        IndexError::Proof(p) => Status::invalid_argument(p.to_string()),
    }
}

fn hashes(proof: Vec<TreeHash>) -> Vec<Vec<u8>> {
    proof.into_iter().map(|h| h.0.to_vec()).collect()
}

#[tonic::async_trait]
impl LogService for LogApi {
    async fn get_latest_tree_head(
        &self,
        request: Request<pb::GetLatestTreeHeadRequest>,
    ) -> Result<Response<pb::TreeHead>, Status> {
        officer_only(&request)?;
        let head = latest_head(&*self.store)
            .await
            .map_err(ServiceError::from)?
            .ok_or_else(|| Status::not_found("no tree head has been published yet"))?;
        Ok(Response::new(pb::TreeHead {
            size: head.size,
            root: head.root,
            timestamp_micros: head.timestamp_micros,
            key_id: head.key_id,
            signature: head.signature,
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        officer_only(&request)?;
        let r = request.into_inner();
        let proof = self.index.inclusion(r.position, r.tree_size).map_err(index_status)?;
        let root = self.index.root(r.tree_size).map_err(index_status)?;
        let event = self
            .store
            .read_all(r.position, 1)
            .await
            .map_err(ServiceError::from)?
            .pop()
            .ok_or_else(|| Status::not_found(format!("no event at position {}", r.position)))?;
        Ok(Response::new(pb::InclusionProof {
            position: r.position,
            tree_size: r.tree_size,
            hashes: hashes(proof),
            canonical_event: event.canonical_bytes(),
            root: root.to_hex(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        officer_only(&request)?;
        let r = request.into_inner();
        let proof = self.index.consistency(r.first_size, r.second_size).map_err(index_status)?;
        Ok(Response::new(pb::ConsistencyProof {
            first_size: r.first_size,
            second_size: r.second_size,
            hashes: hashes(proof),
        }))
    }
}
