//! Identity comes from the transport: a registered client certificate, plus professional
//! metadata. Anything less is UNAUTHENTICATED.

use crate::support::build::{self, any, append};
use crate::support::{CaseClient, Professional, TestServer, UNREGISTERED, VGGZ};
use gezinsdossier_proto::v1::case_service_client::CaseServiceClient;
use tonic::Code;

async fn try_append(mut client: CaseClient) -> tonic::Status {
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
