//! Identity comes from the transport: a registered client certificate, plus professional
//! metadata. Anything less is UNAUTHENTICATED.

use crate::support::build::{self, any, append};
use crate::support::{Professional, TestServer, UNREGISTERED, VGGZ};
use gezinsdossier_proto::v1::case_service_client::CaseServiceClient;
use tonic::Code;

async fn try_append<I: tonic::service::Interceptor>(
    mut client: CaseServiceClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, I>>,
) -> tonic::Status {
    client.append_events(append("fam-id", any(), vec![build::parent("p")])).await.expect_err("must be refused")
}

#[tokio::test]
async fn an_unregistered_certificate_is_unauthenticated() {
    let server = TestServer::start().await;
    // Signed by the same CA, so TLS accepts it; the registry does not know it.
    let status = try_append(server.case_client(UNREGISTERED, "p", "regiebehandelaar").await).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("not registered"), "{}", status.message());
    server.stop().await;
}

#[tokio::test]
async fn no_certificate_or_no_professional_is_unauthenticated() {
    let server = TestServer::start().await;
    let anonymous =
        CaseServiceClient::with_interceptor(server.channel(None).await, Professional::new("p", "psychiater"));
    let status = try_append(anonymous).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    let status = try_append(server.case_client(VGGZ, "", "psychiater").await).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("x-professional-id"), "{}", status.message());

    let status = try_append(server.case_client(VGGZ, "p", "").await).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("x-professional-role"), "{}", status.message());

    let status = try_append(server.case_client(VGGZ, "p", "astronaut").await).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("x-professional-role"), "{}", status.message());
    server.stop().await;
}

#[tokio::test]
async fn a_body_cannot_claim_another_organisation_in_mtls_mode() {
    let server = TestServer::start().await;
    // The dev-mode metadata is ignored under mTLS: the certificate decides.
    let client = CaseServiceClient::with_interceptor(
        server.channel(Some(UNREGISTERED)).await,
        Professional::new("p", "psychiater").claiming(VGGZ),
    );
    assert_eq!(try_append(client).await.code(), Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test]
async fn insecure_dev_mode_takes_the_organisation_from_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let config = gezinsdossier_services::config::Config {
        insecure_dev: true,
        data_dir: dir.path().to_owned(),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(gezinsdossier_services::server::serve(config, listener, async {
        let _ = rx.await;
    }));
    let endpoint = format!("http://{addr}");
    crate::support::wait_for_health(endpoint.clone(), None).await;
    let channel = tonic::transport::Endpoint::from_shared(endpoint).unwrap().connect().await.unwrap();

    let mut known =
        CaseServiceClient::with_interceptor(channel.clone(), Professional::new("p", "psychiater").claiming(VGGZ));
    assert!(known.append_events(append("fam-dev", any(), vec![build::parent("p")])).await.is_ok());
    let unknown = CaseServiceClient::with_interceptor(channel, Professional::new("p", "psychiater").claiming("nobody"));
    assert_eq!(try_append(unknown).await.code(), Code::Unauthenticated);
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// A gRPC-aware load balancer terminates the organisation's TLS and forwards, in Envoy's
/// `x-forwarded-client-cert`, the hash of the certificate it verified. The replica accepts
/// that only from a certificate registered as a gateway, and then the forwarded certificate
/// decides the organisation exactly as if the organisation had connected directly.
#[tokio::test]
async fn a_registered_gateway_forwards_the_organisations_certificate_and_nobody_else_may() {
    let server = TestServer::start().await;
    let hash_of = |org: &str| {
        let pem = std::fs::read(server.pki.client(org).0).unwrap();
        let der =
            <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::from_pem_slice(&pem).unwrap();
        hex::encode(gezinsdossier_services::identity::registry::fingerprint(der.as_ref()))
    };
    let via = |channel: tonic::transport::Channel, xfcc: Option<String>| {
        CaseServiceClient::with_interceptor(
            channel,
            Forwarding { professional: Professional::new("p", "psychiater"), xfcc },
        )
    };
    let gateway = server.channel(Some("gateway")).await;

    // Forwarded for VGGZ: accepted, and the event is authored by VGGZ.
    let xfcc = format!("By=spiffe://gezinsdossier/envoy;Hash={};Subject=\"CN={VGGZ}\"", hash_of(VGGZ));
    via(gateway.clone(), Some(xfcc)).append_events(append("fam-gw", any(), vec![build::parent("p")])).await.unwrap();
    let stored = server.family_events("fam-gw").await;
    let Some(gezinsdossier_ledger::codec::FamilyEvent::Case(record)) = server.open(&stored[..1]).await.remove(0) else {
        panic!("not a case event")
    };
    assert_eq!(record.author.organisation_id, VGGZ);

    let refused = |status: tonic::Status, expected: &str| {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert!(status.message().contains(expected), "{}", status.message());
    };
    // The gateway itself is no organisation: without a forwarded certificate it is refused.
    refused(try_append(via(gateway.clone(), None)).await, "must forward the client's certificate");
    // A forwarded certificate the registry does not know.
    refused(try_append(via(gateway.clone(), Some(format!("Hash={}", hash_of(UNREGISTERED))))).await, "not registered");
    // A chain of forwarders, or a malformed value.
    let two = format!("Hash={},Hash={}", hash_of(VGGZ), hash_of(VGGZ));
    refused(try_append(via(gateway.clone(), Some(two))).await, "exactly one");
    refused(try_append(via(gateway.clone(), Some("Hash=abc".into()))).await, "not a SHA-256");
    // An organisation cannot pose as a gateway to act for another organisation.
    let posing = via(server.channel(Some(UNREGISTERED)).await, Some(format!("Hash={}", hash_of(VGGZ))));
    refused(try_append(posing).await, "only from a registered gateway");
    let registered = via(server.channel(Some(VGGZ)).await, Some(format!("Hash={}", hash_of(VGGZ))));
    refused(try_append(registered).await, "only from a registered gateway");
    assert_eq!(server.family_events("fam-gw").await.len(), 1, "nothing refused was written");
    server.stop().await;
}

/// What a gateway adds to the EPD's metadata: the certificate it verified, in XFCC.
#[derive(Clone)]
struct Forwarding {
    professional: Professional,
    xfcc: Option<String>,
}

impl tonic::service::Interceptor for Forwarding {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let mut request = self.professional.call(request)?;
        if let Some(xfcc) = &self.xfcc {
            let value = xfcc.parse().map_err(|_| tonic::Status::invalid_argument("xfcc"))?;
            request.metadata_mut().insert(gezinsdossier_services::identity::interceptor::FORWARDED_CLIENT_CERT, value);
        }
        Ok(request)
    }
}

/// A long asserted role or organisation id comes back as a short prefix, so the error
/// still fits the client's metadata limit and names the problem.
#[tokio::test]
async fn errors_about_metadata_quote_only_a_short_prefix() {
    let server = TestServer::start().await;
    let long_role = format!("regie{}", "x".repeat(4000));
    let mut client =
        CaseServiceClient::with_interceptor(server.channel(Some(VGGZ)).await, Professional::new("p", &long_role));
    let err = client.append_events(append("fam-m", any(), vec![build::parent("mother")])).await.unwrap_err();
    assert_ne!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("x-professional-role") && err.message().len() < 200, "{}", err.message());
    server.stop().await;
}
