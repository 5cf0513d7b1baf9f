//! Attaching inclusion proofs to what the services return (audit rows, report lines), so
//! that a reader can check each against a signed tree head without trusting the server.

use gezinsdossier_ledger::proof_index::LogIndex;
use gezinsdossier_ledger::publisher::latest_head;
use gezinsdossier_ledger::store::{EventStore, StoreError};
use gezinsdossier_ledger::treehead::SignedTreeHead;
use gezinsdossier_proto::v1 as pb;

/// The latest signed head, and a way to prove positions against it.
pub struct Prover {
    pub head: Option<SignedTreeHead>,
    index: LogIndex,
}

impl Prover {
    /// # Errors
    /// A store failure reading the latest head.
    pub async fn latest(store: &dyn EventStore, index: LogIndex) -> Result<Self, StoreError> {
        Ok(Self { head: latest_head(store).await?, index })
    }

    /// The head as sent on the wire.
    pub fn head_message(&self) -> Option<pb::TreeHead> {
        self.head.as_ref().map(tree_head_message)
    }

    /// The audit path of `position` in the latest head's tree; empty when the position is
    /// not yet covered by a signed head (ask again after the next one).
    pub async fn path(&self, position: u64) -> Vec<Vec<u8>> {
        let Some(head) = &self.head else { return Vec::new() };
        if position >= head.size {
            return Vec::new();
        }
        match self.index.inclusion(position, head.size).await {
            Ok(path) => path.into_iter().map(|h| h.0.to_vec()).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "no inclusion proof for an audit row or report line");
                Vec::new()
            }
        }
    }
}

/// A signed head as sent on the wire, without its cosignatures (GetLatestTreeHead adds them).
pub fn tree_head_message(head: &SignedTreeHead) -> pb::TreeHead {
    pb::TreeHead {
        size: head.size,
        root: head.root.clone(),
        timestamp_micros: head.timestamp_micros,
        key_id: head.key_id.clone(),
        signature: head.signature.clone(),
        checkpoint: head.checkpoint.clone().unwrap_or_default(),
        ..Default::default()
    }
}
