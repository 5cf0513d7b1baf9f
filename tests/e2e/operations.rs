//! What an operator sees: one log line per call, and (see below) the metrics endpoint.

use crate::support::build::{self, any, append};
use crate::support::{Binary, Professional, VGGZ};

/// In the binary's built-in sample registry.
const WIJKTEAM: &str = "wijkteam-delft";
use gezinsdossier_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use pb::dossier_service_client::DossierServiceClient;

fn lines(log: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn rpc_lines(log: &std::path::Path) -> Vec<serde_json::Value> {
    lines(log).into_iter().filter(|l| l["message"] == "rpc").collect()
}

/// Waits until the server has written `n` request lines (a line is written when its call's
/// response ends, which may be just after the client has its answer).
async fn wait_for_rpc_lines(log: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..200 {
        let found = rpc_lines(log);
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("expected {n} request lines, log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

#[tokio::test]
async fn every_call_leaves_one_line_with_method_status_latency_request_id_and_organisation_and_no_personal_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let (_server, endpoint) = Binary::start_logging(&["--data-dir", dir.to_str().unwrap()], &log, "info");
    crate::support::wait_for_health(endpoint.clone(), None).await;
    let channel = tonic::transport::Endpoint::from_shared(endpoint).unwrap().connect().await.unwrap();
    let health_lines = rpc_lines(&log).len();
    assert_eq!(health_lines, 0, "health probes are logged at DEBUG, not INFO");

    // A write, with the caller's own request id.
    let mut case =
        CaseServiceClient::with_interceptor(channel.clone(), Professional::new("p", "regiebehandelaar").claiming(VGGZ));
    let mut request = tonic::Request::new(append("fam-log", any(), vec![build::parent("mother-secret-id")]));
    request.metadata_mut().insert("x-request-id", "epd-7f3a:42".parse().unwrap());
    let response = case.append_events(request).await.unwrap();
    assert_eq!(response.metadata().get("x-request-id").unwrap(), "epd-7f3a:42");
    assert_eq!(response.metadata().get("x-gezinsdossier-insecure-dev").unwrap(), "true");

    // A refusal: the wijkteam has no basis in this family.
    let mut dossier = DossierServiceClient::with_interceptor(
        channel.clone(),
        Professional::new("w", "wijkteam_medewerker").claiming(WIJKTEAM),
    );
    let refused = dossier
        .get_dossier(pb::GetDossierRequest {
            family_id: "fam-log".into(),
            purpose: pb::Purpose::Care as i32,
            ..Default::default()
        })
        .await;
    let refused = refused.expect_err("no basis");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let refused_id = refused.metadata().get("x-request-id").unwrap().to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&refused_id).is_ok(), "a request id is made when none was sent: {refused_id}");

    // Failed authentication: an organisation that is not registered.
    let mut stranger =
        CaseServiceClient::with_interceptor(channel, Professional::new("x", "regiebehandelaar").claiming("nobody-org"));
    let err = stranger.append_events(append("fam-log", any(), vec![build::parent("other")])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    let found = wait_for_rpc_lines(&log, 3).await;
    assert_eq!(found.len(), 3, "one line per call: {found:#?}");
    let append_line = &found[0];
    assert_eq!(append_line["level"], "INFO");
    assert_eq!(append_line["method"], "/gezinsdossier.v1.CaseService/AppendEvents");
    assert_eq!(append_line["status"], "OK");
    assert_eq!(append_line["request_id"], "epd-7f3a:42");
    assert_eq!(append_line["organisation_id"], VGGZ);
    assert!(append_line["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{append_line}");

    let refusal_line = &found[1];
    assert_eq!(refusal_line["method"], "/gezinsdossier.v1.DossierService/GetDossier");
    assert_eq!(refusal_line["request_id"], refused_id.as_str());
    assert_eq!(refusal_line["organisation_id"], WIJKTEAM);
    assert_eq!(
        (refusal_line["level"].as_str(), refusal_line["status"].as_str()),
        (Some("WARN"), Some("PERMISSION_DENIED"))
    );

    let auth_line = &found[2];
    assert_eq!((auth_line["level"].as_str(), auth_line["status"].as_str()), (Some("WARN"), Some("UNAUTHENTICATED")));
    assert_eq!(auth_line["organisation_id"], "-", "an unproven organisation is not logged as the caller");

    let whole = std::fs::read_to_string(&log).unwrap();
    for personal in ["mother-secret-id", "Ouder", "nobody-org"] {
        assert!(!whole.contains(personal), "{personal} in the log:\n{whole}");
    }
    assert!(!whole.contains("events appended"), "the per-append line is gone");
    assert!(!whole.contains("organisation taken from metadata"), "dev mode is said once, not per call");
    assert!(whole.contains("INSECURE DEV MODE"), "dev mode is said at start-up");
}

/// Scrapes `http://addr/metrics` (a plain HTTP/1.1 GET; the test needs no HTTP client).
async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for _ in 0..100 {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await {
            stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n").await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
            return response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("nothing serves metrics on {addr}");
}

/// The value of the sample `name{labels}` (labels exactly as Prometheus prints them).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_calls_commits_disclosures_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (_server, endpoint) = Binary::start(
        &["--data-dir", dir.to_str().unwrap(), "--metrics-listen", &metrics_addr.to_string()],
        &tmp.path().join("server.log"),
    );
    crate::support::wait_for_health(endpoint.clone(), None).await;
    let channel = tonic::transport::Endpoint::from_shared(endpoint).unwrap().connect().await.unwrap();
    let mut case =
        CaseServiceClient::with_interceptor(channel.clone(), Professional::new("p", "regiebehandelaar").claiming(VGGZ));
    for n in 0..3 {
        case.append_events(append("fam-m", any(), vec![build::parent(&format!("m{n}")), build::note("m0", "x")]))
            .await
            .unwrap();
    }
    let mut dossier = DossierServiceClient::with_interceptor(
        channel.clone(),
        Professional::new("w", "wijkteam_medewerker").claiming(WIJKTEAM),
    );
    let request =
        || pb::GetDossierRequest { family_id: "fam-m".into(), purpose: pb::Purpose::Care as i32, ..Default::default() };
    for _ in 0..2 {
        assert_eq!(dossier.get_dossier(request()).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    }
    // A path nobody serves: answered, but not a label of its own.
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let made_up = http::uri::PathAndQuery::from_static("/made.Up/Path12345");
    let codec = tonic::codec::ProstCodec::<(), ()>::default();
    let err = grpc.unary(tonic::Request::new(()), made_up, codec).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    let mut own =
        DossierServiceClient::with_interceptor(channel, Professional::new("p", "regiebehandelaar").claiming(VGGZ));
    own.get_dossier(request()).await.unwrap();

    // The request lines (and their counts) are written as responses end: wait for them.
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = scrape(metrics_addr).await;
        if sample(
            &metrics,
            r#"gezinsdossier_rpc_requests_total{method="/gezinsdossier.v1.DossierService/GetDossier",status="OK"}"#,
        )
        .is_some()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let rpc = |method: &str, status: &str| {
        sample(
            &metrics,
            &format!(r#"gezinsdossier_rpc_requests_total{{method="/gezinsdossier.v1.{method}",status="{status}"}}"#),
        )
    };
    assert_eq!(rpc("CaseService/AppendEvents", "OK"), Some(3.0), "{metrics}");
    assert_eq!(rpc("DossierService/GetDossier", "PERMISSION_DENIED"), Some(2.0));
    assert_eq!(rpc("DossierService/GetDossier", "OK"), Some(1.0));
    assert!(!metrics.contains("Path12345"), "a made-up path became a label");
    assert_eq!(
        sample(&metrics, r#"gezinsdossier_rpc_requests_total{method="unimplemented",status="UNIMPLEMENTED"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            r#"gezinsdossier_rpc_duration_seconds_count{method="/gezinsdossier.v1.CaseService/AppendEvents"}"#
        ),
        Some(3.0)
    );
    assert_eq!(sample(&metrics, r#"gezinsdossier_access_log_events_total{type="access.refused"}"#), Some(2.0));
    // The author's own records are no disclosure, but the dossier read is still logged.
    assert!(
        sample(&metrics, r#"gezinsdossier_access_log_events_total{type="access.disclosed"}"#).is_some(),
        "{metrics}"
    );
    // Three case appends (six events) and three access-log appends, at least; tree heads may add more.
    assert!(sample(&metrics, r#"gezinsdossier_events_total{backend="sqlite"}"#).is_some_and(|n| n >= 9.0), "{metrics}");
    assert!(sample(&metrics, r#"gezinsdossier_appends_total{backend="sqlite"}"#).is_some_and(|n| n >= 6.0));
    assert!(sample(&metrics, r#"gezinsdossier_commit_seconds_count{backend="sqlite"}"#).is_some_and(|n| n >= 1.0));
    assert!(metrics.contains(r#"gezinsdossier_commit_batch_appends_bucket{backend="sqlite",le="1"}"#), "{metrics}");
    assert!(sample(&metrics, "gezinsdossier_write_queue_depth").is_some());
    assert!(sample(&metrics, "gezinsdossier_tree_head_lag_events").is_some());
    assert_eq!(sample(&metrics, "gezinsdossier_family_cache_families"), Some(1.0));
}

/// An OTLP collector in the test: keeps every span it is sent.
#[derive(Default, Clone)]
struct Collector(std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_proto::tonic::trace::v1::Span>>>);

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest>,
    ) -> Result<
        tonic::Response<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse>,
        tonic::Status,
    > {
        let spans = request.into_inner().resource_spans.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans);
        self.0.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(Default::default()))
    }
}

fn attribute(span: &opentelemetry_proto::tonic::trace::v1::Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes.iter().find(|a| a.key == key).and_then(|a| match a.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        other => Some(format!("{other:?}")),
    })
}

#[tokio::test]
async fn with_an_otlp_endpoint_each_call_is_a_trace_with_ids_and_no_personal_data() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let tmp = tempfile::tempdir().unwrap();
    let otlp = format!("http://{collector_addr}");
    let (_server, endpoint) = Binary::start(
        &["--data-dir", tmp.path().join("data").to_str().unwrap(), "--otlp-endpoint", &otlp],
        &tmp.path().join("server.log"),
    );
    crate::support::wait_for_health(endpoint.clone(), None).await;
    let channel = tonic::transport::Endpoint::from_shared(endpoint).unwrap().connect().await.unwrap();
    let mut case =
        CaseServiceClient::with_interceptor(channel, Professional::new("p", "regiebehandelaar").claiming(VGGZ));
    let mut request = tonic::Request::new(append("fam-trace", any(), vec![build::parent("mother-secret-id")]));
    request.metadata_mut().insert("x-request-id", "trace-me-1".parse().unwrap());
    case.append_events(request).await.unwrap();

    // The batch exporter sends every few seconds.
    let mut spans = Vec::new();
    for _ in 0..300 {
        spans = collector.0.lock().unwrap().clone();
        if spans.iter().any(|s| s.name == "AppendEvents") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let rpc = spans
        .iter()
        .find(|s| s.name == "rpc" && attribute(s, "request_id").as_deref() == Some("trace-me-1"))
        .unwrap_or_else(|| {
            let log = std::fs::read_to_string(tmp.path().join("server.log")).unwrap_or_default();
            panic!("no rpc span for the call: {spans:#?}\nserver log:\n{log}")
        });
    assert_eq!(attribute(rpc, "method").as_deref(), Some("/gezinsdossier.v1.CaseService/AppendEvents"));
    let handler = spans.iter().find(|s| s.name == "AppendEvents").expect("the handler's span");
    assert_eq!(handler.trace_id, rpc.trace_id, "the handler's span belongs to the call's trace");
    assert_eq!(handler.parent_span_id, rpc.span_id);
    let everything = format!("{spans:?}");
    assert!(!everything.contains("mother-secret-id") && !everything.contains("Ouder"), "personal data in a span");
}
