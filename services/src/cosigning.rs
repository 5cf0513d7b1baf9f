//! Asks the configured witnesses to cosign each new signed head, with a consistency proof
//! from the size each witness last cosigned, and records every cosignature that verifies in
//! the log ([`gezinsdossier_ledger::cosignatures`]).
//!
//! Every replica runs this. A witness that already holds a newer size (another replica got
//! there first) answers 409 with it; this replica then proves from that size, or waits for a
//! head that reaches it.

use crate::witness_http::{SubmitError, submit};
use gezinsdossier_ledger::cosignatures::{self, Cosignature, WitnessPolicy};
use gezinsdossier_ledger::note::VerifierKey;
use gezinsdossier_ledger::proof_index::LogIndex;
use gezinsdossier_ledger::publisher::{PublisherStatus, latest_head};
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::treehead::SignedTreeHead;
use gezinsdossier_ledger::witness::AddCheckpoint;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A witness in the config: where to submit, and the key its cosignatures verify with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// Its submission prefix, `http://host:port[/prefix]`.
    pub url: String,
    /// Its cosigner vkey, `<name>+<key id>+<base64 of 0x04 and key>`.
    pub vkey: String,
}

/// How long one submission may take.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retry a witness that failed after this long, even without a new head.
const RETRY_EVERY: Duration = Duration::from_secs(5);

struct Target {
    url: String,
    key: VerifierKey,
    /// The size this witness is believed to hold.
    known_size: u64,
    /// The size of the last head it cosigned for us (or we found it held).
    done: u64,
}

/// Runs until the publisher's status channel closes.
pub async fn run(
    store: Arc<dyn EventStore>,
    index: LogIndex,
    witnesses: Vec<(WitnessConfig, VerifierKey)>,
    mut status: watch::Receiver<PublisherStatus>,
) {
    let mut targets: Vec<Target> =
        witnesses.into_iter().map(|(config, key)| Target { url: config.url, key, known_size: 0, done: 0 }).collect();
    if targets.is_empty() {
        return;
    }
    let mut retry = tokio::time::interval(RETRY_EVERY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = status.changed() => if changed.is_err() { return },
            _ = retry.tick() => {}
        }
        let head = match latest_head(&*store).await {
            Ok(Some(head)) if head.checkpoint.is_some() => head,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cosigning: cannot read the latest head");
                continue;
            }
        };
        for target in targets.iter_mut().filter(|t| t.done < head.size) {
            ask(&*store, &index, target, &head).await;
        }
    }
}

/// One witness, one head: submit, follow one 409, verify and record the answer.
async fn ask(store: &dyn EventStore, index: &LogIndex, target: &mut Target, head: &SignedTreeHead) {
    let policy = WitnessPolicy { witnesses: vec![target.key.clone()], required: 1 };
    for _ in 0..2 {
        if target.known_size > head.size {
            // The witness saw a newer head (another replica's); ours will reach it.
            return;
        }
        let proof = match target.known_size {
            0 => Vec::new(),
            old if old == head.size => Vec::new(),
            old => match index.consistency(old, head.size).await {
                Ok(proof) => proof,
                Err(e) => {
                    tracing::debug!(error = %e, "cosigning: no consistency proof yet");
                    return;
                }
            },
        };
        let checkpoint = head.checkpoint.clone().unwrap_or_default();
        let request = AddCheckpoint { old_size: target.known_size, proof, checkpoint };
        match submit(&target.url, &request, SUBMIT_TIMEOUT).await {
            Ok(lines) => {
                let verified: Vec<&str> = lines.lines().filter(|l| policy.check(head, l).is_some()).collect();
                target.known_size = head.size;
                let Some(line) = verified.first() else {
                    tracing::warn!(witness = %target.key.name, "cosigning: the witness answered without a valid cosignature");
                    return;
                };
                let cosignature = Cosignature { head: head.clone(), line: format!("{line}\n") };
                match cosignatures::record(store, &cosignature).await {
                    Ok(()) => {
                        target.done = head.size;
                        tracing::info!(witness = %target.key.name, size = head.size, "checkpoint cosigned");
                    }
                    Err(e) => tracing::warn!(error = %e, "cosigning: cannot record a cosignature"),
                }
                return;
            }
            Err(SubmitError::Conflict(size)) => {
                target.known_size = size;
                if size == head.size {
                    // It already holds this size (another replica); ask again to get our
                    // own copy of its cosignature, with no proof.
                    continue;
                }
            }
            Err(e) => {
                tracing::warn!(witness = %target.key.name, error = %e, "cosigning: no cosignature");
                return;
            }
        }
    }
}
