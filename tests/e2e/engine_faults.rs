//! The engine's faults, as an operator meets them: the service's own PostgreSQL connections
//! killed under concurrent appends (what a failover, a restart or a network drop looks like
//! from here), logins refused for a while (the database not back yet), and the KurrentDB
//! fake dropping its connections. PostgreSQL itself is never restarted: other tests share
//! it.

use crate::replicas::{schema, url};
use crate::support::build::{self, any, append};
use crate::support::{Professional, ServingStatus, VGGZ, health_status, wait_for_health};
use gezinsdossier_ledger::family::FamilyId;
use gezinsdossier_ledger::publisher::latest_head;
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::kurrent::{KurrentOptions, KurrentStore};
use gezinsdossier_ledger::store::postgres::{PostgresOptions, PostgresStore};
use gezinsdossier_proto::v1::case_service_client::CaseServiceClient;
use gezinsdossier_services::config::Config;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tonic::Code;

const WRITERS: usize = 8;

/// Health as polled: when, and what it said (`None`: no answer).
type HealthLog = Vec<(Instant, Option<ServingStatus>)>;

/// What the appenders saw.
#[derive(Default)]
struct Seen {
    /// Acknowledged event ids per writer (each writes its own family), and when.
    acked: Vec<(usize, String, Instant)>,
    failures: Vec<(Code, String)>,
}

/// A server in this process on `config`'s store, under appends from [`WRITERS`] clients
/// (one family each) while health is polled.
struct Load {
    seen: Arc<Mutex<Seen>>,
    health: Arc<Mutex<HealthLog>>,
    done: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Load {
    async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            insecure_dev: true,
            data_dir: dir.path().to_owned(),
            tree_head_every_events: 50,
            tree_head_interval_ms: 100,
            ..Config::default()
        };
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(gezinsdossier_services::server::serve(config, listener, async {
            let _ = stopped.await;
        }));
        wait_for_health(endpoint.clone(), None).await;
        let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .unwrap()
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .unwrap();
        let client =
            CaseServiceClient::with_interceptor(channel, Professional::new("p", "regiebehandelaar").claiming(VGGZ));
        let (seen, health, done): (Arc<Mutex<Seen>>, Arc<Mutex<HealthLog>>, Arc<AtomicBool>) = Default::default();
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (mut client, seen, done) = (client.clone(), seen.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let family = format!("fault-{w}");
                client.append_events(append(&family, build::no_stream(), vec![build::parent("mother")])).await.unwrap();
                for i in 0.. {
                    if done.load(Ordering::Relaxed) {
                        return;
                    }
                    let event = build::note("mother", &format!("{w}-{i}"));
                    let id = event.event_id.clone();
                    match client.append_events(append(&family, any(), vec![event])).await {
                        Ok(_) => seen.lock().unwrap().acked.push((w, id, Instant::now())),
                        Err(status) => {
                            seen.lock().unwrap().failures.push((status.code(), status.message().to_owned()));
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            }));
        }
        let (polled, done_polling) = (health.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while !done_polling.load(Ordering::Relaxed) {
                let status = health_status(&endpoint, None, "").await;
                polled.lock().unwrap().push((Instant::now(), status));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
        Self { seen, health, done, tasks, stop, server, _dir: dir }
    }

    /// How long until `n` appends more than at `after` are acknowledged (well past any
    /// batch that was in flight then); panics after 20 s.
    async fn acks_after(&self, after: Instant, n: usize) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.seen.lock().unwrap().acked.iter().filter(|(_, _, at)| *at > after).count() < n {
            assert!(Instant::now() < deadline, "appends did not resume within 20 s");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        after.elapsed()
    }

    /// Stops the appenders and the health poller; returns what they saw. The server keeps
    /// running (its publisher signs what is there).
    async fn stop_load(&mut self) -> (Seen, HealthLog) {
        self.done.store(true, Ordering::Relaxed);
        for task in self.tasks.drain(..) {
            task.await.unwrap();
        }
        let seen = std::mem::take(&mut *self.seen.lock().unwrap());
        let health = std::mem::take(&mut *self.health.lock().unwrap());
        (seen, health)
    }

    async fn stop_server(self) {
        self.stop.send(()).unwrap();
        self.server.await.unwrap().unwrap();
    }
}

/// Only UNAVAILABLE was ever answered; no acknowledged event is lost or stored twice; and
/// signed heads cover the whole log again (while the server still runs). Returns how many failures said the outcome was
/// unknown.
async fn check_after_faults(store: &dyn EventStore, seen: &Seen) -> usize {
    let codes: HashSet<Code> = seen.failures.iter().map(|(c, _)| *c).collect();
    assert!(codes.iter().all(|c| *c == Code::Unavailable), "only UNAVAILABLE, never INTERNAL or a hang: {codes:?}");
    let mut acked_by_family: HashMap<usize, Vec<&str>> = HashMap::new();
    for (w, id, _) in &seen.acked {
        acked_by_family.entry(*w).or_default().push(id);
    }
    let mut log_size = 0;
    for (w, ids) in &acked_by_family {
        let family = FamilyId::new(&format!("fault-{w}")).unwrap();
        let stored = store.read_stream(&family.stream(), 0, 1_000_000).await.unwrap();
        let stored_ids: Vec<String> = stored.iter().map(|e| e.event_id.to_string()).collect();
        let unique: HashSet<&String> = stored_ids.iter().collect();
        assert_eq!(unique.len(), stored_ids.len(), "an event stored twice in fault-{w}");
        for id in ids {
            assert!(unique.contains(&id.to_string()), "acknowledged {id} is lost");
        }
        log_size = log_size.max(stored.last().map_or(0, |e| e.position + 1));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let head = latest_head(store).await.unwrap().map_or(0, |h| h.size);
        if head >= log_size {
            break;
        }
        assert!(Instant::now() < deadline, "tree heads did not resume: head {head}, log {log_size}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen.failures.iter().filter(|(_, m)| m.contains("may or may not")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_writes_resume_after_the_services_connections_are_killed() {
    let Some(schema) = schema().await else { return };
    // A login role of the test's own, so that only this server's connections are killed
    // and only its logins refused.
    let role = format!("gzd_fault_{}", uuid::Uuid::new_v4().simple());
    schema.client.batch_execute(&format!("CREATE ROLE {role} LOGIN SUPERUSER")).await.unwrap();
    let options = PostgresOptions {
        schema: Some(schema.name.clone()),
        pool_size: 4,
        ..PostgresOptions::new(as_role(&url(), &role))
    };
    let mut load = Load::start(|c| c.postgres = Some(options)).await;
    let terminate = async || {
        let sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1";
        let killed = schema.client.query(sql, &[&role]).await.unwrap().len();
        assert!(killed > 0, "the server holds connections");
    };

    // Three kills under load: writes resume each time, without a restart.
    load.acks_after(Instant::now() - Duration::from_secs(60), 200).await;
    let mut resumed = Vec::new();
    for _ in 0..3 {
        let killed_at = Instant::now();
        terminate().await;
        resumed.push(load.acks_after(killed_at, 100).await);
    }
    // Logins refused for a second: health says NOT_SERVING, and SERVING once they work.
    schema.client.batch_execute(&format!("ALTER ROLE {role} NOLOGIN")).await.unwrap();
    let blocked_at = Instant::now();
    terminate().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    schema.client.batch_execute(&format!("ALTER ROLE {role} LOGIN")).await.unwrap();
    let back_at = Instant::now();
    let resumed_after_login = load.acks_after(back_at, 100).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (seen, health) = load.stop_load().await;

    let blocked: Vec<_> = health.iter().filter(|(at, _)| *at > blocked_at && *at < back_at).collect();
    assert!(
        blocked.iter().any(|(_, s)| *s == Some(ServingStatus::NotServing)),
        "health never said NOT_SERVING while logins were refused: {blocked:?}"
    );
    assert_eq!(health.last().map(|(_, s)| *s), Some(Some(ServingStatus::Serving)), "health came back");
    let store =
        PostgresStore::open(PostgresOptions { schema: Some(schema.name.clone()), ..PostgresOptions::new(url()) })
            .await
            .unwrap();
    let unknown = check_after_faults(&store, &seen).await;
    load.stop_server().await;
    eprintln!(
        "postgres faults: {} acknowledged, {} refused ({unknown} outcome unknown); 100 more acknowledged {resumed:?} \
         after each kill, {resumed_after_login:?} after logins returned",
        seen.acked.len(),
        seen.failures.len(),
    );
    store.shutdown().await;
    let name = schema.name.clone();
    schema.client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE; DROP ROLE {role}")).await.unwrap();
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kurrentdb_writes_resume_after_the_cluster_drops_its_connections() {
    let kurrentdb = gezinsdossier_kurrentdb_fake::FakeKurrentDb::start().await;
    let options = KurrentOptions::new(kurrentdb.url());
    let mut load = Load::start(|c| c.kurrentdb = Some(options)).await;
    load.acks_after(Instant::now() - Duration::from_secs(60), 200).await;
    let mut resumed = Vec::new();
    for _ in 0..3 {
        let dropped_at = Instant::now();
        kurrentdb.drop_connections();
        resumed.push(load.acks_after(dropped_at, 100).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (seen, health) = load.stop_load().await;
    assert_eq!(health.last().map(|(_, s)| *s), Some(Some(ServingStatus::Serving)), "health came back");
    let store = KurrentStore::open(KurrentOptions::new(kurrentdb.url())).await.unwrap();
    let unknown = check_after_faults(&store, &seen).await;
    load.stop_server().await;
    eprintln!(
        "kurrentdb faults: {} acknowledged, {} refused ({unknown} outcome unknown); 100 more acknowledged \
         {resumed:?} after each drop",
        seen.acked.len(),
        seen.failures.len(),
    );
    store.shutdown().await;
}

/// An unreachable database at start: the error names the host and port and keeps the OS
/// error, instead of a bare "error connecting to server".
#[tokio::test]
async fn an_unreachable_database_at_start_names_where_and_why() {
    let options = PostgresOptions::new("host=127.0.0.1 port=1 user=nobody dbname=none connect_timeout=2");
    let Err(err) = PostgresStore::open(options).await else { panic!("port 1 accepted a connection") };
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
}

/// The connection string of `url` with another user.
fn as_role(url: &str, role: &str) -> String {
    let config: tokio_postgres::Config = url.parse().expect("GZD_TEST_POSTGRES_URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config.get_dbname().unwrap_or("test");
    format!("host={host} port={port} user={role} dbname={dbname}")
}
