//! # gezinsdossier-ledger
//!
//! The core of gezinsdossier: every fact is an immutable event in a hash-chained stream, and
//! every view is rebuilt from those events.
//!
//! The rule on gRPC, as it really is: this crate serves no gRPC and has no tonic or prost
//! types in its API or its code. Its KurrentDB backend talks to the cluster through the
//! official `kurrentdb` client, which brings tonic in as that client's own dependency.
//! `.ci/run` checks that neither tonic nor prost is a direct dependency, nor named in
//! `ledger/src`.
//!
//! ## Layout
//! - [`envelope`]: the stored event, stream ids, expected revisions, canonical bytes.
//! - [`chain`]: the per-stream hash chain and its verifier.
//! - [`store`]: the [`store::EventStore`] trait and its backends ([`store::sqlite`],
//!   [`store::postgres`], [`store::kurrent`]).
//! - [`case`]: the case events of a family's life (registration … case closed), their
//!   information categories, and how they are checked against the family so far.
//! - [`consent`]: the consent ledger, legal bases, who may consent, and the access
//!   decision (basis or reasons).
//! - [`dossier`]: one requester's view of a family, filtered per subject and category.
//! - [`correction`]: rectification and retraction (AVG art. 16, 19): corrected views and
//!   the notices to earlier recipients.
//! - [`erasure`]: erasure and the end of retention: what may be shredded, and its record.
//! - [`retention`]: the retention clocks and what a retention run shreds.
//! - [`restriction`]: restriction of processing (AVG art. 18) and what it still allows.
//! - [`report`]: the who-saw-what report for a family member (who may ask, what it lists).
//! - [`sealing`]: payloads encrypted per subject key; erasure by destroying keys.
//! - [`fhir`]: FHIR R4 AuditEvent and Consent resources.
//! - [`nen7513`]: NEN 7513 access records from the access log.
//! - [`audit`]: the access log as rows for privacy officers (filters, review state).
//! - [`disclosure`]: the access log (disclosures, refusals, checks, investigations).
//! - [`family`]: the family as rebuilt from its stream (members, gezag, events by id).
//! - [`families`]: the checked write path of family streams over a store.
//! - [`merkle`]: the RFC 6962 Merkle log: hashing, compact ranges, proofs, verification.
//! - [`publisher`]: signs and publishes tree heads while the service runs.
//! - [`proof_index`]: the tree as persisted tiles; proofs with start-up and memory flat in
//!   the log's size.
//! - [`treehead`]: Ed25519-signed tree heads, published as events.
//! - [`note`], [`checkpoint`]: C2SP signed notes and checkpoints (tree heads in the format
//!   standard tlog tools and witnesses read), witness cosignatures.
//! - [`witness`]: the tlog-witness protocol's checks and state, without HTTP.
//! - [`cosignatures`]: witnesses' cosignatures of our checkpoints, kept in the log, and
//!   when a head counts as published.
//! - [`verify`]: the offline verifier (positions, chains, Merkle roots, signatures).
//! - [`actor`]: organisations, professionals and roles.
//! - [`authorisation`]: the one policy on who may call which function on what (grant or
//!   reasons); registry grants and scopes, never asserted roles, widen access.
//! - [`codec`]: domain events to envelope payloads and back.
//! - [`clock`]: time as a parameter.

pub mod actor;
pub mod audit;
pub mod authorisation;
pub mod case;
pub mod chain;
pub mod checkpoint;
pub mod clock;
pub mod codec;
pub mod consent;
pub mod correction;
pub mod cosignatures;
pub mod disclosure;
pub mod dossier;
pub mod envelope;
pub mod erasure;
pub mod families;
pub mod family;
pub mod fhir;
pub mod merkle;
pub mod nen7513;
pub mod note;
pub mod proof_index;
pub mod publisher;
pub mod report;
pub mod restriction;
pub mod retention;
pub mod sealing;
pub mod store;
pub mod treehead;
pub mod twin_sha256;
pub mod verify;
pub mod witness;
