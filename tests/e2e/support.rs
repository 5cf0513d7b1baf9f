//! Test support shared by every end-to-end test: a real server on a free loopback port,
//! real gRPC clients with real certificates, and request builders.

use gezinsdossier_ledger::actor::OrganisationType;
use gezinsdossier_ledger::authorisation::Grants;
use gezinsdossier_ledger::clock::{Clock, ManualClock};
use gezinsdossier_ledger::codec::FamilyEvent;
use gezinsdossier_ledger::disclosure::{self, AccessLogEvent};
use gezinsdossier_ledger::envelope::RecordedEvent;
use gezinsdossier_ledger::family::FamilyId;
use gezinsdossier_ledger::sealing::{Content, Kek, Keyring, Opener};
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::faulty::FaultyStore;
use gezinsdossier_ledger::store::keys::KeyStore;
use gezinsdossier_ledger::store::keys::sqlite::SqliteKeyStore;
use gezinsdossier_ledger::store::sqlite::SqliteStore;
use gezinsdossier_proto::v1::case_service_client::CaseServiceClient;
use gezinsdossier_proto::v1::consent_service_client::ConsentServiceClient;
use gezinsdossier_proto::v1::dossier_service_client::DossierServiceClient;
use gezinsdossier_proto::v1::{self as pb};
use gezinsdossier_services::config::{Config, LogFormat, Secret};
use gezinsdossier_services::identity::dev_ca::{self, DevOrganisation, DevPki};
use gezinsdossier_services::server;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

pub const VGGZ: &str = "ggz-delfland";
pub const YOUTH_CARE: &str = "jeugdhulp-haaglanden";
pub const GI: &str = "jeugdbescherming-west";
/// Signed by the test CA but absent from the registry.
pub const UNREGISTERED: &str = "rogue-clinic";

/// A wijkteam granted the privacy office that takes part in no test family unless a test
/// makes it.
pub const WIJKTEAM: &str = "wijkteam-noord";
/// An organisation the registry grants no function (as in a registry written before
/// function grants existed).
pub const HUISARTS: &str = "huisarts-centrum";
/// The regional Veilig Thuis (advice and reporting centre).
pub const VEILIG_THUIS: &str = "veilig-thuis-haaglanden";
/// Another region's Veilig Thuis.
pub const VEILIG_THUIS_ELSEWHERE: &str = "veilig-thuis-utrecht";

pub fn organisations() -> Vec<DevOrganisation> {
    let org = |id: &str, t, privacy_office, portal| {
        DevOrganisation::new(id, &id.to_uppercase(), t).granted(Grants { privacy_office, portal })
    };
    vec![
        org(VGGZ, OrganisationType::VGgz, true, true),
        org(YOUTH_CARE, OrganisationType::Jeugdhulpaanbieder, true, true),
        org(GI, OrganisationType::CertifiedInstitution, true, false),
        org(WIJKTEAM, OrganisationType::Wijkteam, true, false),
        org(HUISARTS, OrganisationType::Huisarts, false, false),
        org(VEILIG_THUIS, OrganisationType::VeiligThuis, false, false),
        org(VEILIG_THUIS_ELSEWHERE, OrganisationType::VeiligThuis, false, false),
    ]
}

/// A server running in this process on a free port, with TLS and its own data directory.
/// Its store can be told to fail, and its clock is moved by hand.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub data_dir: std::path::PathBuf,
    pub pki: DevPki,
    pub store: Arc<FaultyStore<SqliteStore>>,
    pub clock: Arc<ManualClock>,
    sqlite: SqliteStore,
    tls: bool,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: TempDir,
}

/// The key-encryption key of every in-process test server.
pub const TEST_KEK: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// Reads stored family events as a process holding the KEK would: `None` for a shredded one.
pub async fn open_family_events(data_dir: &Path, kek_hex: &str, events: &[RecordedEvent]) -> Vec<Option<FamilyEvent>> {
    let store: Arc<dyn KeyStore> = Arc::new(SqliteKeyStore::open(data_dir).expect("key store"));
    let keys = Keyring::new(store, vec![Kek::from_hex(kek_hex).expect("kek")]).expect("keyring");
    keys.prefetch(events).await.expect("keys load");
    events
        .iter()
        .map(|e| match keys.open(e).expect("payload opens").content {
            Content::Plain(bytes) => Some(gezinsdossier_ledger::codec::decode(e, &bytes).expect("decodes")),
            Content::Shredded { .. } => None,
        })
        .collect()
}

impl TestServer {
    /// Stored family events, opened with this server's keys (`None`: shredded).
    pub async fn open(&self, events: &[RecordedEvent]) -> Vec<Option<FamilyEvent>> {
        open_family_events(&self.data_dir, TEST_KEK, events).await
    }

    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with the default test configuration, adjusted by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = dev_ca::generate(&dir.path().join("pki"), &organisations(), &[UNREGISTERED]).expect("dev pki");
        let mut config = Config {
            data_dir: dir.path().join("data"),
            tls: Some(pki.server_tls()),
            organisations: Some(pki.registry.clone()),
            log_format: LogFormat::Pretty,
            // Tests assert exact global positions: no tree head may slip in unless asked for.
            tree_head_every_events: 1_000_000,
            tree_head_interval_ms: 3_600_000,
            kek: Some(Secret(TEST_KEK.into())),
            ..Config::default()
        };
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let sqlite = SqliteStore::open(&config.data_dir).expect("store");
        let config_data_dir = config.data_dir.clone();
        let tls = config.tls.is_some();
        let store = Arc::new(FaultyStore::new(sqlite.clone()));
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let keys: Arc<dyn KeyStore> = Arc::new(SqliteKeyStore::open(&config.data_dir).expect("key store"));
        let task = tokio::spawn(server::serve_on(config, store.clone(), keys, clock.clone(), listener, async {
            let _ = rx.await;
        }));
        let data_dir = config_data_dir;
        let server =
            Self { addr, data_dir, pki, store, clock, sqlite, tls, shutdown: Some(tx), task: Some(task), _dir: dir };
        server.wait_until_serving().await;
        server
    }

    /// Polls gRPC health (no client certificate needed) until SERVING.
    pub async fn wait_until_serving(&self) {
        wait_for_health(self.endpoint(), self.tls.then_some(self.pki.ca_cert.as_path())).await;
    }

    /// What gRPC health says of `service` (`""`: the whole server).
    pub async fn health(&self, service: &str) -> Option<ServingStatus> {
        health_status(&self.endpoint(), self.tls.then_some(self.pki.ca_cert.as_path()), service).await
    }

    /// Waits until `service` reports `want` (panics after 10 s).
    pub async fn await_health(&self, service: &str, want: ServingStatus) {
        wait_for_status(&self.endpoint(), self.tls.then_some(self.pki.ca_cert.as_path()), service, want).await;
    }

    /// The who-saw-what report on `subject` for `requested_by`, in Dutch, through youth
    /// care's portal (a member logged in with DigiD Substantieel).
    pub async fn member_report(&self, family: &str, subject: &str, requested_by: &str) -> pb::AccessReport {
        let portal =
            self.professional(YOUTH_CARE, "portal", "casusregisseur").member_authenticated_by("digid_substantieel");
        let mut reports =
            gezinsdossier_proto::v1::access_report_service_client::AccessReportServiceClient::with_interceptor(
                self.channel(Some(YOUTH_CARE)).await,
                portal,
            );
        let request = pb::GetAccessReportRequest {
            family_id: family.into(),
            subject_member_id: subject.into(),
            requested_by_member_id: requested_by.into(),
            language: pb::ReportLanguage::Dutch as i32,
            include_line_bytes: false,
        };
        reports.get_access_report(request).await.expect("report").into_inner()
    }

    /// Signals a graceful shutdown without waiting for it (see [`TestServer::stop`]).
    pub fn begin_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    fn endpoint(&self) -> String {
        if self.tls { format!("https://localhost:{}", self.addr.port()) } else { format!("http://{}", self.addr) }
    }

    /// A channel with `organisation`'s client certificate (or none). Without TLS
    /// (`--insecure-dev`), a plain channel: the client claims its organisation in metadata.
    pub async fn channel(&self, organisation: Option<&str>) -> Channel {
        if !self.tls {
            return Endpoint::from_shared(self.endpoint()).expect("endpoint").connect().await.expect("connect");
        }
        let tls = self.pki.client_tls(organisation).expect("client tls");
        Endpoint::from_shared(self.endpoint())
            .expect("endpoint")
            .tls_config(tls)
            .expect("tls")
            .connect()
            .await
            .expect("connect")
    }

    /// The metadata of `professional` with `role` at `organisation`; without TLS it also
    /// claims the organisation, as `--insecure-dev` requires.
    pub fn professional(&self, organisation: &str, professional: &str, role: &str) -> Professional {
        let metadata = Professional::new(professional, role);
        if self.tls { metadata } else { metadata.claiming(organisation) }
    }

    /// A CaseService client acting as `professional` with `role` at `organisation`.
    pub async fn case_client(&self, organisation: &str, professional: &str, role: &str) -> CaseClient {
        CaseServiceClient::with_interceptor(
            self.channel(Some(organisation)).await,
            self.professional(organisation, professional, role),
        )
        .max_encoding_message_size(64 * 1024 * 1024)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
        self.sqlite.shutdown().await;
    }

    /// Moves the server's clock.
    pub fn advance(&self, by: chrono::Duration) {
        self.clock.set(self.clock.now() + by);
    }

    /// The decoded access-log events of a family, oldest first.
    pub async fn access_log(&self, family: &str) -> Vec<AccessLogEvent> {
        let family = FamilyId::new(family).expect("family id");
        let events = self.store.read_stream(&disclosure::stream(&family), 0, 10_000).await.expect("read log");
        let store: Arc<dyn KeyStore> = Arc::new(SqliteKeyStore::open(&self.data_dir).expect("key store"));
        let keys = Keyring::new(store, vec![Kek::from_hex(TEST_KEK).expect("kek")]).expect("keyring");
        keys.prefetch(&events).await.expect("keys load");
        events.iter().map(|e| disclosure::open_line(e, &keys).expect("access-log line opens")).collect()
    }

    /// The raw events of a family stream.
    pub async fn family_events(&self, family: &str) -> Vec<gezinsdossier_ledger::envelope::RecordedEvent> {
        let family = FamilyId::new(family).expect("family id");
        self.store.read_stream(&family.stream(), 0, 100_000).await.expect("read family")
    }

    pub async fn consent_client(&self, organisation: &str, professional: &str, role: &str) -> ConsentClient {
        ConsentServiceClient::with_interceptor(
            self.channel(Some(organisation)).await,
            self.professional(organisation, professional, role),
        )
    }

    pub async fn dossier_client(&self, organisation: &str, professional: &str, role: &str) -> DossierClient {
        DossierServiceClient::with_interceptor(
            self.channel(Some(organisation)).await,
            self.professional(organisation, professional, role),
        )
        .max_decoding_message_size(usize::MAX)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub use tonic_health::pb::health_check_response::ServingStatus;

/// Polls gRPC health until SERVING; `ca` is the server's CA for `https` endpoints.
pub async fn wait_for_health(endpoint: String, ca: Option<&Path>) {
    wait_for_status(&endpoint, ca, "", ServingStatus::Serving).await;
}

/// Polls until `service` (`""`: the whole server) reports `want`; panics after 10 s.
pub async fn wait_for_status(endpoint: &str, ca: Option<&Path>, service: &str, want: ServingStatus) {
    for _ in 0..200 {
        if health_status(endpoint, ca, service).await == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{service:?} at {endpoint} never reported {want:?}");
}

/// What gRPC health says of `service` now (no client certificate needed); `None` when
/// the server does not answer.
pub async fn health_status(endpoint: &str, ca: Option<&Path>, service: &str) -> Option<ServingStatus> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    gezinsdossier_services::identity::tls::use_ring_crypto();
    let mut ep = Endpoint::from_shared(endpoint.to_owned()).expect("endpoint").timeout(Duration::from_secs(2));
    if let Some(ca) = ca {
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca))).domain_name("localhost");
        ep = ep.tls_config(tls).expect("tls");
    }
    let channel = ep.connect().await.ok()?;
    let response = HealthClient::new(channel).check(HealthCheckRequest { service: service.into() }).await.ok()?;
    Some(response.into_inner().status())
}

/// Adds the professional metadata an EPD asserts on every call.
pub use gezinsdossier_services::identity::interceptor::ProfessionalMetadata as Professional;

pub type CaseClient = CaseServiceClient<InterceptedService<Channel, Professional>>;
pub type ConsentClient = ConsentServiceClient<InterceptedService<Channel, Professional>>;
pub type DossierClient = DossierServiceClient<InterceptedService<Channel, Professional>>;

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Request builders.
pub mod build {
    use super::pb;
    use pb::case_event::Kind;

    pub fn id() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    pub fn at() -> prost_types::Timestamp {
        prost_types::Timestamp { seconds: 1_760_000_000, nanos: 0 }
    }

    pub fn date(year: i32, month: i32, day: i32) -> pb::CalendarDate {
        pb::CalendarDate { year, month, day }
    }

    pub fn event(subjects: &[&str], categories: &[pb::InformationCategory], kind: Kind) -> pb::CaseEvent {
        pb::CaseEvent {
            event_id: id(),
            occurred_at: Some(at()),
            subject_member_ids: subjects.iter().map(|s| s.to_string()).collect(),
            categories: categories.iter().map(|c| *c as i32).collect(),
            kind: Some(kind),
        }
    }

    pub fn parent(member_id: &str) -> pb::CaseEvent {
        event(
            &[],
            &[pb::InformationCategory::Identity],
            Kind::MemberAdded(pb::MemberAdded {
                member_id: member_id.into(),
                role: pb::MemberRole::Parent as i32,
                display_name: "Ouder".into(),
                ..Default::default()
            }),
        )
    }

    pub fn child(member_id: &str, born: pb::CalendarDate, gezag: &[&str]) -> pb::CaseEvent {
        event(
            &[],
            &[pb::InformationCategory::Identity],
            Kind::MemberAdded(pb::MemberAdded {
                member_id: member_id.into(),
                role: pb::MemberRole::Child as i32,
                display_name: "Kind".into(),
                birth_date: Some(born),
                gezag: Some(pb::Gezag {
                    holder_member_ids: gezag.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        )
    }

    pub fn note(subject: &str, text: &str) -> pb::CaseEvent {
        event(&[subject], &[pb::InformationCategory::TreatmentNotes], Kind::Note(pb::Note { text: text.into() }))
    }

    /// Registration, a mother, a father and a 13-year-old with joint gezag.
    pub fn new_family() -> Vec<pb::CaseEvent> {
        vec![
            parent("mother"),
            parent("father"),
            child("child", date(2013, 5, 1), &["mother", "father"]),
            event(
                &["mother", "child"],
                &[pb::InformationCategory::Involvement],
                Kind::Registration(pb::Registration {
                    referral_route: pb::ReferralRoute::Huisarts as i32,
                    reason: "zorgen over opvoeding".into(),
                }),
            ),
        ]
    }

    pub fn any() -> Option<pb::ExpectedRevision> {
        Some(pb::ExpectedRevision { expectation: Some(pb::expected_revision::Expectation::Any(())) })
    }

    pub fn no_stream() -> Option<pb::ExpectedRevision> {
        Some(pb::ExpectedRevision { expectation: Some(pb::expected_revision::Expectation::NoStream(())) })
    }

    pub fn exact(n: u64) -> Option<pb::ExpectedRevision> {
        Some(pb::ExpectedRevision { expectation: Some(pb::expected_revision::Expectation::Exact(n)) })
    }

    pub fn append(
        family: &str,
        expected: Option<pb::ExpectedRevision>,
        events: Vec<pb::CaseEvent>,
    ) -> pb::AppendEventsRequest {
        pb::AppendEventsRequest { family_id: family.into(), expected_revision: expected, events }
    }
}

/// The real `gezinsdossier` binary, serving in insecure dev mode on a free port.
pub struct Binary(std::process::Child);

impl Binary {
    /// Starts `gezinsdossier serve --insecure-dev` with `args` and returns it with its
    /// endpoint. Logs go to `log`: a pipe nobody reads could fill up and stall the server.
    pub fn start(args: &[&str], log: &Path) -> (Self, String) {
        Self::start_logging(args, log, "warn")
    }

    /// As [`Binary::start`], logging at `rust_log` (e.g. `info`).
    pub fn start_logging(args: &[&str], log: &Path, rust_log: &str) -> (Self, String) {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gezinsdossier"))
            .args(["serve", "--insecure-dev", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .env("RUST_LOG", rust_log)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("start binary");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read address");
        let addr = line.trim().rsplit(' ').next().expect("address").to_owned();
        assert!(
            addr.starts_with("127.0.0.1:"),
            "server did not start (first line {line:?}); its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        (Self(child), format!("http://{addr}"))
    }

    /// Starts `gezinsdossier witness` with `args` on a free port; returns it with its vkey
    /// and its `http://` address.
    pub fn witness(args: &[&str], log: &Path) -> (Self, String, String) {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gezinsdossier"))
            .args(["witness", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("start witness");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut next = |prefix: &str| {
            let line = lines.next().and_then(Result::ok).unwrap_or_default();
            line.strip_prefix(prefix).map(str::to_owned).unwrap_or_else(|| {
                panic!("witness said {line:?}; its log:\n{}", std::fs::read_to_string(log).unwrap_or_default())
            })
        };
        let vkey = next("witness vkey ");
        let addr = next("witness listening on ");
        (Self(child), vkey, format!("http://{addr}"))
    }

    /// SIGKILL: no chance to flush or shut down.
    pub fn kill(&mut self) {
        self.0.kill().expect("kill");
        self.0.wait().expect("reap");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
