//! Durable append throughput and latency through the whole service: TLS, gRPC, identity,
//! validation, family state, the SQLite store. Client and server share this 2-core machine.
//!
//! `cargo bench -p gezinsdossier-services --bench grpc_append [-- --seconds 3 --repeats 3]`

#[path = "../../ledger/benches/harness.rs"]
mod harness;
#[path = "common/support.rs"]
mod support;

use gezinsdossier_ledger::actor::OrganisationType;
use gezinsdossier_proto::v1::case_service_client::CaseServiceClient;
use gezinsdossier_services::identity::dev_ca::DevOrganisation;
use harness::{Settings, measure, median, print_header, print_row};
use support::{member_added, note, professional, request, start_server};
use tonic::transport::{Channel, Endpoint};

const ORG: &str = "bench-ggz";
const MAX_CHANNELS: usize = 64;

fn main() {
    let settings = Settings::from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        print_header("gRPC AppendEvents over mTLS: one ~500-byte note per request", &settings);
        for hot in [false, true] {
            for appenders in [1, 8, 64, 256] {
                let mut samples = Vec::new();
                for _ in 0..settings.repeats {
                    samples.push(run(&settings, appenders, hot).await);
                }
                print_row(if hot { "one hot stream" } else { "distinct" }, appenders, &median(&samples));
            }
        }
    });
}

async fn run(settings: &Settings, appenders: usize, hot: bool) -> harness::Sample {
    let dir = tempfile::tempdir().expect("tempdir");
    let org = DevOrganisation::new(ORG, "Bench", OrganisationType::VGgz);
    let support::BenchServer { pki, port, stop, task: server } = start_server(dir.path(), &[org]).await;

    let tls = pki.client_tls(Some(ORG)).expect("client tls");
    let mut channels: Vec<Channel> = Vec::new();
    for _ in 0..appenders.min(MAX_CHANNELS) {
        let endpoint = Endpoint::from_shared(format!("https://localhost:{port}"))
            .expect("endpoint")
            .tls_config(tls.clone())
            .expect("tls");
        channels.push(connect(endpoint).await);
    }
    let family = move |a: usize| if hot { "bench-hot".to_string() } else { format!("bench-{a}") };
    let families = if hot { 1 } else { appenders };
    for a in 0..families {
        let mut client = client(channels[a % channels.len()].clone());
        client.append_events(request(&family(a), member_added())).await.expect("create family");
    }
    let text = harness::payload(450);
    let sample = measure(settings, appenders, 1, move |a, _| {
        let mut client = client(channels[a % channels.len()].clone());
        let request = request(&family(a), note(&text));
        async move {
            client.append_events(request).await.expect("append");
        }
    })
    .await;
    let _ = stop.send(());
    server.await.expect("server task").expect("server");
    sample
}

async fn connect(endpoint: Endpoint) -> Channel {
    for _ in 0..100 {
        if let Ok(c) = endpoint.connect().await {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("server did not come up");
}

type Client = CaseServiceClient<
    tonic::service::interceptor::InterceptedService<
        Channel,
        fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
    >,
>;

fn client(channel: Channel) -> Client {
    CaseServiceClient::with_interceptor(channel, professional as fn(_) -> _)
}
