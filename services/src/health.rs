//! The client side of gRPC health, for `gezinsdossier health`: container health checks and
//! probes without a separate probe binary.

use std::path::Path;
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// What a probe asks.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// A gRPC service name (e.g. `gezinsdossier.v1.LogService`); empty for the whole server.
    pub service: String,
    /// Liveness: any answer will do, SERVING or NOT_SERVING (the process is alive; a replica
    /// that cannot write is taken out of rotation by readiness, not restarted).
    pub alive: bool,
}

/// Succeeds only when the server at `endpoint` reports SERVING (or, with `probe.alive`,
/// answers at all).
///
/// # Errors
/// Unreachable, not serving, or a bad CA file; the message says which.
pub async fn check(endpoint: &str, ca: Option<&Path>, server_name: &str, probe: &Probe) -> anyhow::Result<()> {
    let mut ep = Endpoint::from_shared(endpoint.to_owned())?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(3));
    if let Some(ca) = ca {
        crate::identity::tls::use_ring_crypto();
        let pem = std::fs::read(ca).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", ca.display()))?;
        ep =
            ep.tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)).domain_name(server_name))?;
    }
    let channel = ep.connect().await.map_err(|e| anyhow::anyhow!("cannot reach {endpoint}: {e}"))?;
    let request = HealthCheckRequest { service: probe.service.clone() };
    let status = HealthClient::new(channel).check(request).await?.into_inner().status();
    if status == ServingStatus::Serving || probe.alive {
        println!("{}", status.as_str_name());
        Ok(())
    } else {
        anyhow::bail!("{}", status.as_str_name())
    }
}
