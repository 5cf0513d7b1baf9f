//! Authentication of every call to the gezinsdossier services, in one interceptor.

use super::registry::OrganisationRegistry;
use gezinsdossier_ledger::actor::{Actor, ProfessionalRole};
use std::sync::Arc;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Metadata key: the professional's id in the calling organisation's EPD.
pub const PROFESSIONAL_ID: &str = "x-professional-id";
/// Metadata key: the professional's role (e.g. `regiebehandelaar`).
pub const PROFESSIONAL_ROLE: &str = "x-professional-role";
/// Metadata key, `--insecure-dev` only: the organisation id the caller claims to be.
pub const DEV_ORGANISATION_ID: &str = "x-organisation-id";

const MAX_PROFESSIONAL_ID_LEN: usize = 128;

/// The authenticated caller, placed in each request's extensions for handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    pub actor: Actor,
    pub organisation_name: String,
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

    fn authenticate<T>(&self, request: &Request<T>) -> Result<Requester, Status> {
        let organisation = match self.mode {
            IdentityMode::MutualTls => {
                let certs = request.peer_certs().ok_or_else(|| {
                    Status::unauthenticated("no client certificate: connect with your organisation's certificate")
                })?;
                let leaf = certs.first().ok_or_else(|| Status::unauthenticated("empty client certificate chain"))?;
                self.registry.by_certificate(leaf.as_ref()).ok_or_else(|| {
                    Status::unauthenticated("the client certificate is not registered to any organisation")
                })?
            }
            IdentityMode::InsecureDev => {
                let id = metadata(request, DEV_ORGANISATION_ID)?;
                tracing::warn!(organisation_id = id, "INSECURE DEV MODE: organisation taken from metadata, not proven");
                self.registry.by_id(id).ok_or_else(|| {
                    Status::unauthenticated(format!("{DEV_ORGANISATION_ID}: organisation {id:?} is not registered"))
                })?
            }
        };
        let professional_id = metadata(request, PROFESSIONAL_ID)?;
        if professional_id.len() > MAX_PROFESSIONAL_ID_LEN || professional_id.chars().any(char::is_control) {
            return Err(Status::invalid_argument(format!(
                "{PROFESSIONAL_ID}: at most {MAX_PROFESSIONAL_ID_LEN} printable characters"
            )));
        }
        let role_name = metadata(request, PROFESSIONAL_ROLE)?;
        let role = ProfessionalRole::parse(role_name)
            .ok_or_else(|| Status::invalid_argument(format!("{PROFESSIONAL_ROLE}: unknown role {role_name:?}")))?;
        Ok(Requester {
            actor: Actor {
                organisation_id: organisation.id.clone(),
                organisation_type: organisation.organisation_type,
                professional_id: professional_id.to_owned(),
                role,
            },
            organisation_name: organisation.name.clone(),
        })
    }
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let requester = self.authenticate(&request)?;
        request.extensions_mut().insert(requester);
        Ok(request)
    }
}

fn metadata<'a, T>(request: &'a Request<T>, key: &str) -> Result<&'a str, Status> {
    let value = request
        .metadata()
        .get(key)
        .ok_or_else(|| Status::unauthenticated(format!("missing request metadata {key}")))?;
    let value = value.to_str().map_err(|_| Status::invalid_argument(format!("{key}: not printable ASCII")))?;
    if value.trim().is_empty() {
        return Err(Status::unauthenticated(format!("empty request metadata {key}")));
    }
    Ok(value)
}

/// The requester the interceptor attached to this call.
///
/// # Errors
/// `Internal` when a service was mounted without the interceptor: a wiring fault.
pub fn requester<T>(request: &Request<T>) -> Result<Requester, Status> {
    request.extensions().get::<Requester>().cloned().ok_or_else(|| {
        tracing::error!("service reached without authentication");
        Status::internal("internal error; the incident is logged")
    })
}
