//! Every error a handler can return, and the one exhaustive mapping to `tonic::Status`.
//! Internals are logged here; clients get what they can act on.

use crate::identity::interceptor::AuthError;
use gezinsdossier_ledger::consent::validate::ConsentRuleError;
use gezinsdossier_ledger::families::FamilyError;
use gezinsdossier_ledger::report::ReportDenied;
use gezinsdossier_ledger::store::StoreError;
use gezinsdossier_proto::convert::FieldError;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A request field is missing or malformed (the message names it).
    #[error("{0}")]
    Field(#[from] FieldError),
    /// The family's rules refused the request, or its stream failed.
    #[error(transparent)]
    Family(#[from] FamilyError),
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
            ServiceError::Field(_) => (Code::InvalidArgument, e.to_string()),
            ServiceError::Family(family) => family_status(family),
            ServiceError::TooLarge { .. } => (Code::ResourceExhausted, e.to_string()),
            ServiceError::Auth(AuthError::BadMetadata { .. }) => (Code::InvalidArgument, e.to_string()),
            ServiceError::Auth(
                AuthError::NoClientCertificate
                | AuthError::UnregisteredCertificate
                | AuthError::ForwardedByNonGateway
                | AuthError::BadForwardedCertificate { .. }
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

fn family_status(e: &FamilyError) -> (Code, String) {
    match e {
        FamilyError::Validation(_) | FamilyError::Consent(ConsentRuleError::Invalid { .. }) => {
            (Code::InvalidArgument, e.to_string())
        }
        FamilyError::Consent(ConsentRuleError::NotAllowed(_))
        | FamilyError::Denied(_)
        | FamilyError::NotAuthorised(_) => (Code::PermissionDenied, e.to_string()),
        FamilyError::UnknownFamily | FamilyError::UnknownDisclosure(_) | FamilyError::UnknownNotice(_) => {
            (Code::NotFound, e.to_string())
        }
        FamilyError::NotReviewable(_) => (Code::FailedPrecondition, e.to_string()),
        FamilyError::ErasureRefused(gezinsdossier_ledger::erasure::ErasureRefused::UnknownMember(_)) => {
            (Code::InvalidArgument, format!("subject_member_id: {e}"))
        }
        FamilyError::ErasureRefused(_) => (Code::FailedPrecondition, e.to_string()),
        FamilyError::RestrictionRefused(_) | FamilyError::UnknownMember { .. } => {
            (Code::InvalidArgument, e.to_string())
        }
        FamilyError::Report(ReportDenied::UnknownMember(_)) => (Code::InvalidArgument, e.to_string()),
        FamilyError::Report(ReportDenied::NotAllowed { .. }) => (Code::PermissionDenied, e.to_string()),
        FamilyError::Store(store) => store_status(store),
        FamilyError::Unreadable(detail) => {
            tracing::error!(error = %detail, "family stream unreadable");
            (Code::Internal, "a family stream could not be read; the incident is logged".to_owned())
        }
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
        StoreError::OutcomeUnknown(detail) => {
            tracing::error!(error = %detail, "store commit outcome unknown");
            (
                Code::Unavailable,
                "the connection to the event store broke while committing: the append may or may not be stored; \
                 retry with the same event ids (a retry of a stored append is recognised and not written twice)"
                    .to_owned(),
            )
        }
        StoreError::Corrupt(detail) => {
            tracing::error!(error = %detail, "store data is inconsistent");
            (Code::Internal, "the event store holds inconsistent data; the incident is logged".to_owned())
        }
    }
}
