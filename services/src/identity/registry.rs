//! The organisation registry: which client certificate belongs to which organisation.
//!
//! Certificates are matched by the SHA-256 fingerprint of their DER bytes, so a certificate
//! that is valid under the CA but not registered is still refused. An organisation may list
//! several fingerprints, which makes certificate rotation an overlap rather than an outage.
//!
//! ```toml
//! [[organisation]]
//! id = "ggz-delfland"
//! name = "GGZ Delfland"
//! type = "v_ggz"
//! certificate_sha256 = ["3f1a…"]
//! # Functions beyond the organisation's own care relationships (optional; none if left
//! # out): "privacy_office" (its privacy officer audits within its own scope) and "portal"
//! # (its client portal fetches who-saw-what reports for members it authenticated).
//! functions = ["privacy_office", "portal"]
//!
//! # A gRPC-aware load balancer that terminates TLS and forwards the organisation's
//! # certificate in `x-forwarded-client-cert` (see `forwarded`). It is not an organisation.
//! [[gateway]]
//! name = "envoy"
//! certificate_sha256 = ["9b0c…"]
//! ```

use gezinsdossier_ledger::actor::OrganisationType;
use gezinsdossier_ledger::authorisation::Grants;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// A registered organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    pub id: String,
    pub name: String,
    pub organisation_type: OrganisationType,
    /// Functions the registry grants beyond the organisation's care relationships.
    pub grants: Grants,
}

/// The registry's name of the privacy-office function.
pub const PRIVACY_OFFICE: &str = "privacy_office";
/// The registry's name of the portal function.
pub const PORTAL: &str = "portal";

#[derive(Debug, Clone, Default)]
pub struct OrganisationRegistry {
    by_id: HashMap<String, Organisation>,
    by_fingerprint: HashMap<[u8; 32], String>,
    /// Certificate fingerprint to gateway name.
    gateways: HashMap<[u8; 32], String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read organisation registry {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("organisation registry is not valid TOML: {0}")]
    Parse(String),
    #[error("organisation {id:?}: {problem}")]
    Entry { id: String, problem: String },
    #[error("gateway {name:?}: {problem}")]
    Gateway { name: String, problem: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    organisation: Vec<Entry>,
    #[serde(default)]
    gateway: Vec<GatewayEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayEntry {
    name: String,
    certificate_sha256: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    name: String,
    #[serde(rename = "type")]
    organisation_type: String,
    #[serde(default)]
    certificate_sha256: Vec<String>,
    #[serde(default)]
    functions: Vec<String>,
}

impl OrganisationRegistry {
    /// # Errors
    /// [`RegistryError`] when the file cannot be read or an entry is wrong.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| RegistryError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    /// # Errors
    /// [`RegistryError`] for bad TOML, an unknown type, a bad or reused fingerprint, or a
    /// repeated id.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let file: File = toml::from_str(text).map_err(|e| RegistryError::Parse(e.to_string()))?;
        let mut registry = Self::default();
        for entry in file.organisation {
            let problem = |p: String| RegistryError::Entry { id: entry.id.chars().take(64).collect(), problem: p };
            let organisation_type = OrganisationType::parse(&entry.organisation_type)
                .ok_or_else(|| problem(format!("unknown type {:?}", entry.organisation_type)))?;
            // Consents and bases name recipients by this id, so it must be one a request can carry.
            if let Err(e) = gezinsdossier_proto::convert::identifier(entry.id.clone(), "id") {
                return Err(problem(e.to_string()));
            }
            for fp in &entry.certificate_sha256 {
                let bytes =
                    parse_fingerprint(fp).ok_or_else(|| problem(format!("fingerprint {fp:?} is not 64 hex digits")))?;
                if registry.by_fingerprint.insert(bytes, entry.id.clone()).is_some() {
                    return Err(problem(format!("fingerprint {fp} is registered twice")));
                }
            }
            let mut grants = Grants::default();
            for function in &entry.functions {
                match function.as_str() {
                    PRIVACY_OFFICE => grants.privacy_office = true,
                    PORTAL => grants.portal = true,
                    other => {
                        return Err(problem(format!(
                            "unknown function {:?}: use {PRIVACY_OFFICE:?} or {PORTAL:?}",
                            other.chars().take(32).collect::<String>()
                        )));
                    }
                }
            }
            let org = Organisation { id: entry.id.clone(), name: entry.name.clone(), organisation_type, grants };
            if registry.by_id.insert(entry.id.clone(), org).is_some() {
                return Err(problem("id is registered twice".into()));
            }
        }
        for gateway in file.gateway {
            let problem = |p: String| RegistryError::Gateway { name: gateway.name.clone(), problem: p };
            if gateway.certificate_sha256.is_empty() {
                return Err(problem("no certificate_sha256".into()));
            }
            for fp in &gateway.certificate_sha256 {
                let bytes =
                    parse_fingerprint(fp).ok_or_else(|| problem(format!("fingerprint {fp:?} is not 64 hex digits")))?;
                // One certificate, one role: a gateway must not also act as an organisation.
                if registry.by_fingerprint.contains_key(&bytes)
                    || registry.gateways.insert(bytes, gateway.name.clone()).is_some()
                {
                    return Err(problem(format!("fingerprint {fp} is registered twice")));
                }
            }
        }
        Ok(registry)
    }

    /// The organisation a client certificate (DER) belongs to.
    pub fn by_certificate(&self, der: &[u8]) -> Option<&Organisation> {
        self.by_fingerprint(&fingerprint(der))
    }

    /// The organisation whose certificate has this SHA-256 fingerprint.
    pub fn by_fingerprint(&self, fingerprint: &[u8; 32]) -> Option<&Organisation> {
        self.by_fingerprint.get(fingerprint).and_then(|id| self.by_id.get(id))
    }

    /// The registered gateway a client certificate (DER) belongs to.
    pub fn gateway_by_certificate(&self, der: &[u8]) -> Option<&str> {
        self.gateways.get(&fingerprint(der)).map(String::as_str)
    }

    pub fn by_id(&self, id: &str) -> Option<&Organisation> {
        self.by_id.get(id)
    }

    /// Every registered organisation.
    pub fn organisations(&self) -> impl Iterator<Item = &Organisation> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// SHA-256 of a certificate's DER bytes.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let cleaned: String = s.chars().filter(|c| *c != ':').collect();
    hex::decode(cleaned).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn parses_entries_and_refuses_mistakes() {
        let ok = format!("[[organisation]]\nid='a'\nname='A'\ntype='v_ggz'\ncertificate_sha256=['{FP}']\n");
        let reg = OrganisationRegistry::parse(&ok).unwrap();
        assert_eq!(reg.by_id("a").unwrap().organisation_type, OrganisationType::VGgz);

        assert_eq!(reg.by_id("a").unwrap().grants, Grants::default(), "no functions unless granted");
        let granted = ok.replace("type='v_ggz'", "type='v_ggz'\nfunctions=['privacy_office','portal']");
        let reg = OrganisationRegistry::parse(&granted).unwrap();
        assert_eq!(reg.by_id("a").unwrap().grants, Grants { privacy_office: true, portal: true });
        let unknown = ok.replace("type='v_ggz'", "type='v_ggz'\nfunctions=['superuser']");
        assert!(OrganisationRegistry::parse(&unknown).unwrap_err().to_string().contains("unknown function"));

        let bad_type = ok.replace("v_ggz", "bakery");
        assert!(OrganisationRegistry::parse(&bad_type).unwrap_err().to_string().contains("unknown type"));
        let twice = format!("{ok}{}", ok.replace("id='a'", "id='b'"));
        assert!(OrganisationRegistry::parse(&twice).unwrap_err().to_string().contains("registered twice"));
        let short = ok.replace(FP, "abcd");
        assert!(OrganisationRegistry::parse(&short).is_err());
        // The registry fuzz target checks this too: an id no consent could name as recipient.
        for id in ["", "a b", "ggz\\u0000x"] {
            let bad_id = ok.replace("id='a'", &format!("id=\"{id}\""));
            let err = OrganisationRegistry::parse(&bad_id).unwrap_err().to_string();
            assert!(err.contains("id:"), "{id:?}: {err}");
        }
        let long = OrganisationRegistry::parse(&ok.replace("id='a'", &format!("id='{}'", "x".repeat(10_000))));
        assert!(long.unwrap_err().to_string().len() < 400, "the error quotes a prefix, not the whole id");
    }

    #[test]
    fn gateways_are_registered_apart_from_organisations() {
        const GW: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
        let org = format!("[[organisation]]\nid='a'\nname='A'\ntype='v_ggz'\ncertificate_sha256=['{FP}']\n");
        let reg =
            OrganisationRegistry::parse(&format!("{org}[[gateway]]\nname='envoy'\ncertificate_sha256=['{GW}']\n"))
                .unwrap();
        let gw: [u8; 32] = parse_fingerprint(GW).unwrap();
        assert!(reg.by_fingerprint(&gw).is_none(), "a gateway is not an organisation");
        assert_eq!(reg.gateways.get(&gw).map(String::as_str), Some("envoy"));
        assert_eq!(reg.by_fingerprint(&parse_fingerprint(FP).unwrap()).map(|o| o.id.as_str()), Some("a"));

        let shared = format!("{org}[[gateway]]\nname='envoy'\ncertificate_sha256=['{FP}']\n");
        let err = OrganisationRegistry::parse(&shared).unwrap_err().to_string();
        assert!(err.contains("gateway \"envoy\"") && err.contains("registered twice"), "{err}");
        let none = format!("{org}[[gateway]]\nname='envoy'\ncertificate_sha256=[]\n");
        assert!(OrganisationRegistry::parse(&none).unwrap_err().to_string().contains("no certificate_sha256"));
    }
}
