//! Who is calling. The organisation comes from the transport (its mTLS client certificate,
//! looked up in the [`registry`]); the professional and role come from metadata the
//! organisation's EPD asserts and is accountable for. Handlers receive a checked
//! [`Requester`] and never read identity from a request body.
//!
//! - [`registry`]: the organisation registry (certificate fingerprint → organisation).
//! - [`interceptor`]: turns each call's certificate and metadata into a [`Requester`].
//! - [`forwarded`]: the organisation certificate a registered gateway forwards (XFCC).
//! - [`tls`]: the server's TLS configuration.
//! - [`dev_ca`]: a development CA and organisation certificates.

pub mod dev_ca;
pub mod forwarded;
pub mod interceptor;
pub mod registry;
pub mod tls;

pub use interceptor::{Authenticator, Requester};
pub use registry::{Organisation, OrganisationRegistry};
