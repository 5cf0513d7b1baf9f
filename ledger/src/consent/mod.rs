//! The consent ledger and the access rules: who may consent, whether a consent is in force,
//! legal bases for sharing without consent, and the access decision itself.
//!
//! The rules, with the law they follow (each has a scenario test in `tests/e2e/law.rs` or
//! `tests/e2e/consent_dossier.rs`):
//! - **Who consents** ([`authority`]): a parent or carer for their own data; for a child
//!   under 12 every holder of gezag; from 12 to 15 the child too; from 16 the young person
//!   alone (WGBO 7:450, 7:465). Under voogdij the guardian organisation holds gezag and
//!   consents through its gezinsvoogd (BW 1:245, 1:337a). Before birth there is no gezag:
//!   the mother who carries the child consents for it; a birth event records gezag from
//!   then on (BW 1:251, 1:252, 1:253b), and consents given before are re-evaluated, as at
//!   the 12th and 16th birthday. A contact ban or "gezag but no contact" never changes who
//!   consents. Where nobody can consent under the recorded facts, the answer says which
//!   fact is missing.
//! - **In force** ([`status`]): purpose, period, recipient (an organisation, a type and
//!   role, or one role at one organisation), withdrawal, refusal.
//! - **Legal bases** ([`validate`], [`access`]): a child protection basis gives information
//!   only to the GI that carries out the measure (Jeugdwet 7.3.11); a meldcode report goes
//!   to one named Veilig Thuis (BW 1:240, Wmo 2015 4.1.8); break-the-glass opens the record
//!   for the recording organisation only, tells the organisations whose data was seen, and
//!   waits for review within a deadline (overdue after it).
//! - Corrections (AVG art. 16, 19) are in `crate::correction`; minimal disclosure of
//!   organisations named in items in `crate::dossier`; shielding from a parent (WGBO 7:457)
//!   in `crate::report`.
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
