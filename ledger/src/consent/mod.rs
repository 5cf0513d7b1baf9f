//! The consent ledger and the access rules: who may consent, whether a consent is in force,
//! legal bases for sharing without consent, and the access decision itself.
//!
//! - [`model`]: consent and legal-basis events.
//! - [`authority`]: who must consent for whom (age and gezag).
//! - [`status`]: one consent's state and its status at a moment.
//! - [`validate`]: checks a consent-ledger event against the family before it is recorded.
//! - [`access`]: the decision, returning its basis or its reasons.

pub mod access;
pub mod authority;
pub mod model;
pub mod status;
pub mod validate;

pub use access::{AccessQuery, Basis, Decision, DenialReason, decide};
pub use model::{
    ConsentEvent, ConsentGranted, ConsentMethod, ConsentRecord, LegalBasis, LegalBasisKind, Purpose, Recipient,
};
pub use status::{ConsentState, ConsentStatus};
