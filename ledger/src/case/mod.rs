//! Case events: the typed facts EPDs append about a family, and the checks an event must
//! pass against the family as it stands.
//!
//! - [`category`]: information categories.
//! - [`event`]: the event kinds and their parts.
//! - [`validate`]: checks against the family so far (members exist, gezag holders are
//!   adults, a correction points at a real event…).

pub mod category;
pub mod event;
pub mod validate;

pub use category::InformationCategory;
pub use event::*;
