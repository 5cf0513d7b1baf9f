//! Authentication of every call to the gezinsdossier services, in one interceptor.

use super::registry::OrganisationRegistry;
use crate::error::ServiceError;
use crate::request_log::CallOrigin;
use gezinsdossier_ledger::actor::{Actor, ProfessionalRole};
use gezinsdossier_ledger::authorisation::{Caller, Grants, MemberAuthentication};
use std::sync::Arc;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Metadata key: the professional's id in the calling organisation's EPD.
pub const PROFESSIONAL_ID: &str = "x-professional-id";
/// Metadata key: the professional's role (e.g. `regiebehandelaar`).
pub const PROFESSIONAL_ROLE: &str = "x-professional-role";
/// Metadata key, `--insecure-dev` only: the organisation id the caller claims to be.
pub const DEV_ORGANISATION_ID: &str = "x-organisation-id";
/// Metadata key, from a portal: how it authenticated the member it asks for
/// (`digid_substantieel`, `digid_hoog`, `eidas_substantial`, `eidas_high`; lower levels are
/// recorded and refused).
pub const MEMBER_AUTHENTICATION: &str = "x-member-authentication";
/// Metadata key, from a registered gateway only: the certificate it verified (Envoy's XFCC).
pub const FORWARDED_CLIENT_CERT: &str = "x-forwarded-client-cert";

const MAX_PROFESSIONAL_ID_LEN: usize = 128;

/// Why a call could not be tied to a registered organisation and professional.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no client certificate: connect with your organisation's certificate")]
    NoClientCertificate,
    #[error("the client certificate is not registered to any organisation")]
    UnregisteredCertificate,
    #[error("{FORWARDED_CLIENT_CERT} is accepted only from a registered gateway")]
    ForwardedByNonGateway,
    #[error("gateway {gateway:?}: {FORWARDED_CLIENT_CERT}: {problem}")]
    BadForwardedCertificate { gateway: String, problem: String },
    #[error("{DEV_ORGANISATION_ID}: organisation {0:?} is not registered")]
    UnknownOrganisation(String),
    #[error("missing request metadata {0}")]
    MissingMetadata(&'static str),
    #[error("{key}: {problem}")]
    BadMetadata { key: &'static str, problem: String },
}

/// The authenticated caller, placed in each request's extensions for handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    pub actor: Actor,
    pub organisation_name: String,
    /// What the registry grants the organisation (never what the caller asserts).
    pub grants: Grants,
}

impl Requester {
    /// The caller as the authorisation policy sees it.
    pub fn caller(&self) -> Caller {
        Caller { actor: self.actor.clone(), grants: self.grants }
    }
}

/// How the organisation is established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityMode {
    /// From the verified mTLS client certificate.
    MutualTls,
    /// From the `x-organisation-id` metadata, without any proof. Development only.
    InsecureDev,
}

/// Turns certificate and metadata into a [`Requester`], or refuses the call.
#[derive(Clone)]
pub struct Authenticator {
    registry: Arc<OrganisationRegistry>,
    mode: IdentityMode,
}

impl Authenticator {
    pub fn new(registry: Arc<OrganisationRegistry>, mode: IdentityMode) -> Self {
        Self { registry, mode }
    }

    fn authenticate<T>(&self, request: &Request<T>) -> Result<Requester, AuthError> {
        let organisation = match self.mode {
            IdentityMode::MutualTls => {
                let certs = request.peer_certs().ok_or(AuthError::NoClientCertificate)?;
                let leaf = certs.first().ok_or(AuthError::NoClientCertificate)?;
                match self.registry.gateway_by_certificate(leaf.as_ref()) {
                    Some(gateway) => {
                        let bad = |problem: String| AuthError::BadForwardedCertificate {
                            gateway: gateway.to_owned(),
                            problem,
                        };
                        let forwarded = metadata(request, FORWARDED_CLIENT_CERT)
                            .map_err(|_| bad("missing: the gateway must forward the client's certificate".into()))?;
                        let fingerprint = super::forwarded::forwarded_certificate_hash(forwarded).map_err(bad)?;
                        self.registry.by_fingerprint(&fingerprint).ok_or(AuthError::UnregisteredCertificate)?
                    }
                    None if request.metadata().contains_key(FORWARDED_CLIENT_CERT) => {
                        return Err(AuthError::ForwardedByNonGateway);
                    }
                    None => self.registry.by_certificate(leaf.as_ref()).ok_or(AuthError::UnregisteredCertificate)?,
                }
            }
            IdentityMode::InsecureDev => {
                // Said once at start-up and in every response's headers, not per call.
                let id = metadata(request, DEV_ORGANISATION_ID)?;
                self.registry.by_id(id).ok_or_else(|| AuthError::UnknownOrganisation(prefix(id)))?
            }
        };
        let professional_id = metadata(request, PROFESSIONAL_ID)?;
        if professional_id.len() > MAX_PROFESSIONAL_ID_LEN {
            return Err(AuthError::BadMetadata {
                key: PROFESSIONAL_ID,
                problem: format!("at most {MAX_PROFESSIONAL_ID_LEN} characters"),
            });
        }
        let role_name = metadata(request, PROFESSIONAL_ROLE)?;
        let role = ProfessionalRole::parse(role_name).ok_or_else(|| AuthError::BadMetadata {
            key: PROFESSIONAL_ROLE,
            problem: format!("unknown role {:?}", prefix(role_name)),
        })?;
        Ok(Requester {
            actor: Actor {
                organisation_id: organisation.id.clone(),
                organisation_type: organisation.organisation_type,
                professional_id: professional_id.to_owned(),
                role,
            },
            organisation_name: organisation.name.clone(),
            grants: organisation.grants,
        })
    }
}

/// What an error may quote of a metadata value: its first 16 characters.
fn prefix(value: &str) -> String {
    value.chars().take(16).collect()
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let requester = self.authenticate(&request);
        if let (Ok(requester), Some(origin)) = (&requester, request.extensions().get::<CallOrigin>()) {
            origin.set_organisation(&requester.actor.organisation_id);
        }
        let requester = requester.map_err(ServiceError::from)?;
        request.extensions_mut().insert(requester);
        Ok(request)
    }
}

fn metadata<'a, T>(request: &'a Request<T>, key: &'static str) -> Result<&'a str, AuthError> {
    let value = request.metadata().get(key).ok_or(AuthError::MissingMetadata(key))?;
    let value = value.to_str().map_err(|_| AuthError::BadMetadata { key, problem: "not printable ASCII".into() })?;
    if value.trim().is_empty() {
        return Err(AuthError::MissingMetadata(key));
    }
    Ok(value)
}

/// The requester the interceptor attached to this call.
///
/// # Errors
/// [`ServiceError::Internal`] when a service was mounted without the interceptor: a wiring
/// fault, never the caller's.
pub fn requester<T>(request: &Request<T>) -> Result<Requester, ServiceError> {
    request
        .extensions()
        .get::<Requester>()
        .cloned()
        .ok_or_else(|| ServiceError::Internal("service reached without authentication".into()))
}

/// How the calling portal says it authenticated the member: `None` when it does not say.
///
/// # Errors
/// [`AuthError::BadMetadata`] for a value that names no known means.
pub fn member_authentication<T>(request: &Request<T>) -> Result<Option<MemberAuthentication>, AuthError> {
    if !request.metadata().contains_key(MEMBER_AUTHENTICATION) {
        return Ok(None);
    }
    let value = metadata(request, MEMBER_AUTHENTICATION)?;
    MemberAuthentication::parse(value).map(Some).ok_or_else(|| AuthError::BadMetadata {
        key: MEMBER_AUTHENTICATION,
        problem: format!(
            "unknown means {:?}; one of: {}",
            value.chars().take(32).collect::<String>(),
            MemberAuthentication::ALL.map(MemberAuthentication::as_str).join(", ")
        ),
    })
}

/// The client side of the same contract: adds the metadata an EPD asserts on every call
/// (professional and role, and in `--insecure-dev` the claimed organisation). For the
/// demo, examples and tests.
#[derive(Debug, Clone)]
pub struct ProfessionalMetadata {
    id: String,
    role: String,
    organisation: Option<String>,
    member_authentication: Option<String>,
}

impl ProfessionalMetadata {
    pub fn new(id: &str, role: &str) -> Self {
        Self { id: id.into(), role: role.into(), organisation: None, member_authentication: None }
    }

    /// For `--insecure-dev`: also claims an organisation in metadata.
    pub fn claiming(mut self, organisation: &str) -> Self {
        self.organisation = Some(organisation.into());
        self
    }

    /// For a portal: says how it authenticated the member (`digid_substantieel`…).
    pub fn member_authenticated_by(mut self, means: &str) -> Self {
        self.member_authentication = Some(means.into());
        self
    }
}

impl Interceptor for ProfessionalMetadata {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let invalid = |key: &str| Status::invalid_argument(format!("{key}: not valid metadata"));
        let md = request.metadata_mut();
        if !self.id.is_empty() {
            md.insert(PROFESSIONAL_ID, self.id.parse().map_err(|_| invalid(PROFESSIONAL_ID))?);
        }
        if !self.role.is_empty() {
            md.insert(PROFESSIONAL_ROLE, self.role.parse().map_err(|_| invalid(PROFESSIONAL_ROLE))?);
        }
        if let Some(org) = &self.organisation {
            md.insert(DEV_ORGANISATION_ID, org.parse().map_err(|_| invalid(DEV_ORGANISATION_ID))?);
        }
        if let Some(means) = &self.member_authentication {
            md.insert(MEMBER_AUTHENTICATION, means.parse().map_err(|_| invalid(MEMBER_AUTHENTICATION))?);
        }
        Ok(request)
    }
}
