//! `LogService`: signed tree heads and Merkle proofs for auditors. The proofs come from the
//! proof index (`gezinsdossier_ledger::proof_index::LogIndex`, tiles); who may have
//! an event's bytes is the authorisation policy's answer (`Families::event_bytes`).

use crate::error::ServiceError;
use crate::identity::interceptor::requester;
use gezinsdossier_ledger::cosignatures::{WitnessPolicy, recent};
use gezinsdossier_ledger::families::Families;
use gezinsdossier_ledger::merkle::{TreeHash, leaf_hash};
use gezinsdossier_ledger::proof_index::{IndexError, LogIndex};
use gezinsdossier_ledger::publisher::latest_head;
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::log_service_server::LogService;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct LogApi {
    families: Arc<Families>,
    index: LogIndex,
    witnesses: WitnessPolicy,
}

impl LogApi {
    pub fn new(families: Arc<Families>, index: LogIndex, witnesses: WitnessPolicy) -> Self {
        Self { families, index, witnesses }
    }

    async fn authorise_proofs<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let caller = requester(request)?.caller();
        Ok(self.families.authorise_proofs(&caller).await.map_err(ServiceError::from)?)
    }
}

impl LogApi {
    /// A tree larger than the log is the caller's mistake (OUT_OF_RANGE, with the size);
    /// one the index has not reached yet is worth a retry (UNAVAILABLE).
    async fn index_status(&self, e: IndexError) -> Status {
        match e {
            IndexError::NotYetIndexed { indexed, wanted } => {
                let beyond = match self.families.store().read_all(wanted.saturating_sub(1), 1).await {
                    Ok(events) => events.is_empty(),
                    Err(_) => false,
                };
                if beyond {
                    Status::out_of_range(format!("the log holds fewer than {wanted} events (signed up to {indexed})"))
                } else {
                    Status::unavailable(e.to_string())
                }
            }
            IndexError::Proof(p) => Status::invalid_argument(p.to_string()),
            IndexError::Tiles(e) => Status::unavailable(format!("the proof index cannot read its tiles: {e}")),
        }
    }
}

fn hashes(proof: Vec<TreeHash>) -> Vec<Vec<u8>> {
    proof.into_iter().map(|h| h.0.to_vec()).collect()
}

#[tonic::async_trait]
impl LogService for LogApi {
    #[tracing::instrument(name = "GetLatestTreeHead", skip_all)]
    async fn get_latest_tree_head(
        &self,
        request: Request<pb::GetLatestTreeHeadRequest>,
    ) -> Result<Response<pb::TreeHead>, Status> {
        self.authorise_proofs(&request).await?;
        let store = &**self.families.store();
        let recorded = if self.witnesses.witnesses.is_empty() {
            Vec::new()
        } else {
            recent(store).await.map_err(ServiceError::from)?
        };
        let cosigned = if request.get_ref().published_only && self.witnesses.required > 0 {
            self.witnesses
                .latest_published(&recorded)
                .ok_or_else(|| Status::not_found("no tree head has been cosigned by enough witnesses yet"))?
        } else {
            let head = latest_head(store)
                .await
                .map_err(ServiceError::from)?
                .ok_or_else(|| Status::not_found("no tree head has been published yet"))?;
            self.witnesses.cosign(&head, &recorded)
        };
        let mut message = crate::proofs::tree_head_message(&cosigned.head);
        message.cosigned_checkpoint = cosigned.note;
        message.cosignatures = u32::try_from(cosigned.cosignatures).unwrap_or(u32::MAX);
        message.required_cosignatures = u32::try_from(self.witnesses.required).unwrap_or(u32::MAX);
        message.published = cosigned.published;
        Ok(Response::new(message))
    }

    #[tracing::instrument(name = "GetInclusionProof", skip_all, fields(position))]
    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        let caller = requester(&request)?.caller();
        let r = request.into_inner();
        tracing::Span::current().record("position", r.position);
        // Whether the caller may have this event's proof (and its bytes) is settled before
        // any proof work is done for it.
        let event = if r.include_event_bytes {
            self.families.event_bytes(&caller, r.position).await.map_err(ServiceError::from)?
        } else {
            self.families.authorise_proofs(&caller).await.map_err(ServiceError::from)?;
            self.families.store().read_all(r.position, 1).await.map_err(ServiceError::from)?.pop()
        };
        let proof = match self.index.inclusion(r.position, r.tree_size).await {
            Ok(proof) => proof,
            Err(e) => return Err(self.index_status(e).await),
        };
        let root = match self.index.root(r.tree_size).await {
            Ok(root) => root,
            Err(e) => return Err(self.index_status(e).await),
        };
        let event = event.ok_or_else(|| Status::not_found(format!("no event at position {}", r.position)))?;
        let bytes = event.canonical_bytes();
        Ok(Response::new(pb::InclusionProof {
            position: r.position,
            tree_size: r.tree_size,
            hashes: hashes(proof),
            leaf_hash: leaf_hash(&bytes).to_hex(),
            canonical_event: if r.include_event_bytes { bytes } else { Vec::new() },
            root: root.to_hex(),
        }))
    }

    #[tracing::instrument(name = "GetConsistencyProof", skip_all)]
    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        self.authorise_proofs(&request).await?;
        let r = request.into_inner();
        let proof = match self.index.consistency(r.first_size, r.second_size).await {
            Ok(proof) => proof,
            Err(e) => return Err(self.index_status(e).await),
        };
        Ok(Response::new(pb::ConsistencyProof {
            first_size: r.first_size,
            second_size: r.second_size,
            hashes: hashes(proof),
        }))
    }
}
