//! Every error a handler can return, and the one exhaustive mapping to `tonic::Status`.
//! Internals are logged here; clients get what they can act on.

use crate::identity::interceptor::AuthError;
use gezinsdossier_ledger::case::validate::ValidationError;
use gezinsdossier_ledger::store::StoreError;
use gezinsdossier_proto::convert::FieldError;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A request field is missing or malformed (the message names it).
    #[error("{0}")]
    Field(#[from] FieldError),
    /// An event breaks a rule against the family as it stands.
    #[error("{0}")]
    Validation(#[from] ValidationError),
    /// The request is larger than this server accepts.
    #[error("{what}: {got} given, at most {max} per request")]
    TooLarge { what: &'static str, got: usize, max: usize },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The caller's identity could not be established.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A fault in this service itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        let (code, message) = match &e {
            ServiceError::Field(_) | ServiceError::Validation(_) => (Code::InvalidArgument, e.to_string()),
            ServiceError::TooLarge { .. } => (Code::ResourceExhausted, e.to_string()),
            ServiceError::Auth(AuthError::BadMetadata { .. }) => (Code::InvalidArgument, e.to_string()),
            ServiceError::Auth(
                AuthError::NoClientCertificate
                | AuthError::UnregisteredCertificate
                | AuthError::UnknownOrganisation(_)
                | AuthError::MissingMetadata(_),
            ) => (Code::Unauthenticated, e.to_string()),
            ServiceError::Store(store) => store_status(store),
            ServiceError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                (Code::Internal, "internal error; the incident is logged".to_owned())
            }
        };
        Status::new(code, message)
    }
}

fn store_status(e: &StoreError) -> (Code, String) {
    match e {
        StoreError::WrongExpectedRevision { .. } => (Code::FailedPrecondition, e.to_string()),
        StoreError::EventIdConflict { .. } => (Code::AlreadyExists, e.to_string()),
        StoreError::InvalidAppend(_) => (Code::InvalidArgument, e.to_string()),
        StoreError::Closed => (Code::Unavailable, "the service is shutting down; retry on another replica".to_owned()),
        StoreError::Backend(detail) => {
            tracing::error!(error = %detail, "store backend failed");
            (Code::Unavailable, "the event store is unavailable; nothing was written, retry later".to_owned())
        }
        StoreError::Corrupt(detail) => {
            tracing::error!(error = %detail, "store data is inconsistent");
            (Code::Internal, "the event store holds inconsistent data; the incident is logged".to_owned())
        }
    }
}
