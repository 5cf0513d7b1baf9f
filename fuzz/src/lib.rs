//! Shared by the fuzz targets: the real server, started once per fuzzing process on
//! loopback (embedded store in a temporary directory, insecure dev mode so that the input
//! can pick the calling organisation), and a client that sends raw request bytes to any of
//! its methods.

use bytes::{Buf, BufMut};
use gezinsdossier_ledger::clock::SystemClock;
use gezinsdossier_ledger::store::keys::sqlite::SqliteKeyStore;
use gezinsdossier_ledger::store::sqlite::SqliteStore;
use gezinsdossier_services::config::{Config, Secret};
use std::sync::{Arc, OnceLock};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// The organisations of the built-in sample registry, and one that is not registered.
pub const ORGANISATIONS: [&str; 6] = [
    "ggz-delfland",
    "jeugdhulp-haaglanden",
    "jeugdbescherming-west",
    "wijkteam-delft",
    "veilig-thuis-haaglanden",
    "onbekend",
];
pub const ROLES: [&str; 5] = ["regiebehandelaar", "psychiater", "gezinsvoogd", "privacy_officer", "geen-rol"];

/// One gRPC method of the public API.
#[derive(Debug, Clone)]
pub struct Method {
    pub path: String,
    pub server_streaming: bool,
}

/// Every method of package `gezinsdossier.v1`, sorted by path (so that a corpus entry's
/// first byte keeps naming the same method).
pub fn methods() -> &'static [Method] {
    static METHODS: OnceLock<Vec<Method>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let set: prost_types::FileDescriptorSet =
            prost::Message::decode(gezinsdossier_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
        let mut methods: Vec<Method> = set
            .file
            .iter()
            .flat_map(|file| {
                let package = file.package().to_owned();
                file.service.iter().flat_map(move |service| {
                    let service_path = format!("/{package}.{}", service.name());
                    service.method.iter().map(move |m| Method {
                        path: format!("{service_path}/{}", m.name()),
                        server_streaming: m.server_streaming(),
                    })
                })
            })
            .collect();
        methods.sort_by(|a, b| a.path.cmp(&b.path));
        methods
    })
}

pub struct Harness {
    pub runtime: tokio::runtime::Runtime,
    pub channel: tonic::transport::Channel,
}

/// The server, started on first use and kept for the process.
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        // Leaked: the server lives as long as the fuzzing process.
        let dir = Box::leak(Box::new(tempfile::tempdir().expect("temp dir")));
        let config = Config {
            insecure_dev: true,
            data_dir: dir.path().join("data"),
            kek: Some(Secret("ab".repeat(32))),
            shutdown_drain_ms: 0,
            ..Config::default()
        };
        let channel = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let store = Arc::new(SqliteStore::open(&config.data_dir).expect("store"));
            let keys = Arc::new(SqliteKeyStore::open(&config.data_dir).expect("key store"));
            tokio::spawn(gezinsdossier_services::server::serve_on(
                config,
                store,
                keys,
                Arc::new(SystemClock),
                listener,
                std::future::pending(),
            ));
            let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
            for _ in 0..100 {
                if let Ok(channel) = endpoint.connect().await {
                    return channel;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("the server did not start");
        });
        Harness { runtime, channel }
    })
}

/// Sends `body` as the request message of `method`, as organisation and role; returns the
/// status (OK for a success, or for a stream whose first message arrived).
pub fn call(method: &Method, organisation: &str, role: &str, body: Vec<u8>) -> Status {
    let harness = harness();
    harness.runtime.block_on(async {
        let mut grpc = tonic::client::Grpc::new(harness.channel.clone());
        if let Err(e) = grpc.ready().await {
            return Status::unavailable(e.to_string());
        }
        let mut request = tonic::Request::new(body);
        let metadata = request.metadata_mut();
        for (key, value) in [("x-organisation-id", organisation), ("x-professional-id", "fuzz"), ("x-professional-role", role)] {
            metadata.insert(key, value.parse().expect("ascii metadata"));
        }
        let path: http::uri::PathAndQuery = method.path.parse().expect("method path");
        if method.server_streaming {
            match grpc.server_streaming(request, path, RawCodec).await {
                Err(status) => status,
                Ok(response) => {
                    let mut stream = response.into_inner();
                    // A live feed never ends: its first message, or a short wait, is enough.
                    match tokio::time::timeout(std::time::Duration::from_millis(20), stream.message()).await {
                        Ok(Err(status)) => status,
                        _ => Status::ok(""),
                    }
                }
            }
        } else {
            match grpc.unary(request, path, RawCodec).await {
                Ok(_) => Status::ok(""),
                Err(status) => status,
            }
        }
    })
}

/// What no input may cause: an internal error, an unknown one, or a message that echoes
/// more than a short prefix of the input.
pub fn check(status: &Status) {
    assert!(!matches!(status.code(), Code::Internal | Code::Unknown), "{status:?}");
    assert!(status.message().len() <= 1024, "an error message of {} bytes: {:?}", status.message().len(), status);
}

/// Request and response messages as their wire bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}
