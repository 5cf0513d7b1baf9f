//! A development certificate authority: one CA, one server certificate, and one client
//! certificate per organisation, plus a registry file that maps them. For local use, demos
//! and tests; production certificates come from the organisations' PKI.

use super::registry::fingerprint;
use gezinsdossier_ledger::actor::OrganisationType;
use gezinsdossier_ledger::authorisation::Grants;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// An organisation to issue a client certificate for.
#[derive(Debug, Clone)]
pub struct DevOrganisation {
    pub id: String,
    pub name: String,
    pub organisation_type: OrganisationType,
    /// The functions to grant it in the registry.
    pub grants: Grants,
}

impl DevOrganisation {
    /// An organisation with its care relationships only.
    pub fn new(id: &str, name: &str, organisation_type: OrganisationType) -> Self {
        Self { id: id.into(), name: name.into(), organisation_type, grants: Grants::default() }
    }

    pub fn granted(mut self, grants: Grants) -> Self {
        self.grants = grants;
        self
    }

    /// Its `[[organisation]]` entry in `organisations.toml`.
    pub fn registry_entry(&self, certificate_sha256: Option<&str>) -> String {
        let mut functions = Vec::new();
        if self.grants.privacy_office {
            functions.push(super::registry::PRIVACY_OFFICE);
        }
        if self.grants.portal {
            functions.push(super::registry::PORTAL);
        }
        let mut entry = format!(
            "[[organisation]]\nid = {:?}\nname = {:?}\ntype = {:?}\nfunctions = {functions:?}\n",
            self.id,
            self.name,
            self.organisation_type.as_str()
        );
        if let Some(fp) = certificate_sha256 {
            entry.push_str(&format!("certificate_sha256 = [{fp:?}]\n"));
        }
        entry
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct DevPki {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub registry: PathBuf,
}

impl DevPki {
    /// Client certificate and key of one organisation.
    pub fn client(&self, organisation_id: &str) -> (PathBuf, PathBuf) {
        (self.dir.join(format!("{organisation_id}.crt")), self.dir.join(format!("{organisation_id}.key")))
    }

    /// The server's TLS files, with this CA for client certificates.
    pub fn server_tls(&self) -> super::tls::TlsFiles {
        super::tls::TlsFiles {
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            client_ca: self.ca_cert.clone(),
        }
    }

    /// Client TLS for `localhost` trusting this CA, presenting `organisation`'s certificate
    /// (or none, as a health probe would).
    ///
    /// # Errors
    /// A certificate or key file that cannot be read.
    pub fn client_tls(&self, organisation: Option<&str>) -> anyhow::Result<tonic::transport::ClientTlsConfig> {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        super::tls::use_ring_crypto();
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(std::fs::read(&self.ca_cert)?))
            .domain_name("localhost");
        if let Some(org) = organisation {
            let (cert, key) = self.client(org);
            tls = tls.identity(Identity::from_pem(std::fs::read(cert)?, std::fs::read(key)?));
        }
        Ok(tls)
    }
}

/// Writes `ca.crt`, `server.crt`/`server.key` (for `localhost`, 127.0.0.1 and the
/// deploy/ host names), `<org>.crt`/`<org>.key` per organisation, `gateway.crt`/`gateway.key`
/// for a TLS-terminating load balancer (server and client use, registered as a gateway), and
/// `organisations.toml` into `dir`.
/// `unregistered` names extra certificates that are signed by the CA but left out of the
/// registry, to show that a valid certificate alone is not enough.
///
/// # Errors
/// Key generation, signing or writing failed.
pub fn generate(dir: &Path, organisations: &[DevOrganisation], unregistered: &[&str]) -> anyhow::Result<DevPki> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(DnType::CommonName, "gezinsdossier dev CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key)?;
    write(dir, "ca.crt", &ca.pem())?;

    let issue = |name: &str,
                 sans: Vec<String>,
                 usage: &[ExtendedKeyUsagePurpose]|
     -> anyhow::Result<(String, String, Vec<u8>)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = usage.to_vec();
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        Ok((cert.pem(), key.serialize_pem(), cert.der().to_vec()))
    };

    let (cert, key, _) = issue(
        "gezinsdossier server",
        // Local use, plus the host names of deploy/compose and the Kubernetes service.
        [
            "localhost",
            "127.0.0.1",
            "postgres",
            "gezinsdossier",
            "gezinsdossier-1",
            "gezinsdossier-2",
            "gezinsdossier-3",
        ]
        .map(String::from)
        .to_vec(),
        &[ExtendedKeyUsagePurpose::ServerAuth],
    )?;
    write(dir, "server.crt", &cert)?;
    write_private(dir, "server.key", &key)?;

    // The gateway serves clients (server use) and calls the replicas (client use).
    let (cert, key, gateway_der) = issue(
        "gezinsdossier gateway",
        ["localhost", "127.0.0.1", "envoy", "gezinsdossier"].map(String::from).to_vec(),
        &[ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
    )?;
    write(dir, "gateway.crt", &cert)?;
    write_private(dir, "gateway.key", &key)?;

    let mut registry = String::from("# Generated by `gezinsdossier dev-ca`: development only.\n");
    for org in organisations {
        let (cert, key, der) = issue(&org.id, vec![], &[ExtendedKeyUsagePurpose::ClientAuth])?;
        write(dir, &format!("{}.crt", org.id), &cert)?;
        write_private(dir, &format!("{}.key", org.id), &key)?;
        writeln!(registry, "\n{}", org.registry_entry(Some(&hex::encode(fingerprint(&der)))))?;
    }
    for name in unregistered {
        let (cert, key, _) = issue(name, vec![], &[ExtendedKeyUsagePurpose::ClientAuth])?;
        write(dir, &format!("{name}.crt"), &cert)?;
        write_private(dir, &format!("{name}.key"), &key)?;
    }
    writeln!(
        registry,
        "\n[[gateway]]\nname = \"envoy\"\ncertificate_sha256 = [{:?}]",
        hex::encode(fingerprint(&gateway_der))
    )?;
    write(dir, "organisations.toml", &registry)?;
    Ok(DevPki {
        dir: dir.to_owned(),
        ca_cert: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        registry: dir.join("organisations.toml"),
    })
}

/// A small cast of organisations covering the main types, for demos and local runs.
pub fn sample_organisations() -> Vec<DevOrganisation> {
    let office = Grants { privacy_office: true, portal: false };
    let office_and_portal = Grants { privacy_office: true, portal: true };
    vec![
        DevOrganisation::new("ggz-delfland", "GGZ Delfland", OrganisationType::VGgz).granted(office_and_portal),
        DevOrganisation::new("jeugdhulp-haaglanden", "Jeugdhulp Haaglanden", OrganisationType::Jeugdhulpaanbieder)
            .granted(office_and_portal),
        DevOrganisation::new("jeugdbescherming-west", "Jeugdbescherming west", OrganisationType::CertifiedInstitution)
            .granted(office),
        // No functions: its privacy officer and portal are refused, as in a registry that
        // predates function grants.
        DevOrganisation::new("wijkteam-delft", "Wijkteam Delft", OrganisationType::Wijkteam),
        DevOrganisation::new("veilig-thuis-haaglanden", "Veilig Thuis Haaglanden", OrganisationType::VeiligThuis)
            .granted(office),
    ]
}

fn write(dir: &Path, name: &str, contents: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// A private key: readable by the owner alone (0600), which PostgreSQL and OpenSSH insist
/// on, also when an earlier run left the file with wider permissions.
fn write_private(dir: &Path, name: &str, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = dir.join(name);
    let fail = |e: std::io::Error| anyhow::anyhow!("cannot write {}: {e}", path.display());
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path).map_err(fail)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    file.write_all(contents.as_bytes()).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_keys_are_readable_by_their_owner_alone_and_certificates_by_all() {
        let dir = tempfile::tempdir().unwrap();
        // An earlier run's world-readable key is tightened, not kept.
        std::fs::write(dir.path().join("server.key"), "old").unwrap();
        std::fs::set_permissions(dir.path().join("server.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        generate(dir.path(), &sample_organisations()[..1], &["stranger"]).unwrap();
        let mode = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
        for key in ["server.key", "gateway.key", "ggz-delfland.key", "stranger.key"] {
            assert_eq!(mode(key), 0o600, "{key}");
        }
        assert_eq!(mode("server.crt") & 0o044, 0o044, "certificates stay readable");
    }
}
