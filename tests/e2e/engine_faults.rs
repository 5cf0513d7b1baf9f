//! The engine's faults, as an operator meets them: the service's own PostgreSQL connections
//! killed under concurrent appends (what a failover, a restart or a network drop looks like
//! from here), and logins refused for a while (the database not back yet). PostgreSQL
//! itself is never restarted: other tests share it.

use crate::replicas::{schema, url};
use crate::support::build::{self, any, append};
use crate::support::{Professional, ServingStatus, VGGZ, health_status, wait_for_health};
use gezinsdossier_ledger::family::FamilyId;
use gezinsdossier_ledger::publisher::latest_head;
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::postgres::{PostgresOptions, PostgresStore};
use gezinsdossier_proto::v1::case_service_client::CaseServiceClient;
use gezinsdossier_services::config::Config;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::Code;

const WRITERS: usize = 8;

/// Health as polled: when, and what it said (`None`: no answer).
type HealthLog = Vec<(Instant, Option<ServingStatus>)>;

/// What the appenders saw.
#[derive(Default)]
struct Seen {
    /// Acknowledged event ids per family, and when.
    acked: Vec<(usize, String, Instant)>,
    failures: Vec<(Code, String)>,
}

impl Seen {
    fn acks_since(&self, t: Instant) -> usize {
        self.acked.iter().filter(|(_, _, at)| *at > t).count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_writes_resume_after_the_services_connections_are_killed() {
    let Some(schema) = schema().await else { return };
    // A login role of the test's own, so that only this server's connections are killed
    // and only its logins refused.
    let role = format!("gzd_fault_{}", uuid::Uuid::new_v4().simple());
    schema.client.batch_execute(&format!("CREATE ROLE {role} LOGIN SUPERUSER")).await.unwrap();
    let server_url = as_role(&url(), &role);

    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        insecure_dev: true,
        data_dir: dir.path().to_owned(),
        postgres: Some(PostgresOptions {
            schema: Some(schema.name.clone()),
            pool_size: 4,
            ..PostgresOptions::new(server_url.clone())
        }),
        tree_head_every_events: 50,
        tree_head_interval_ms: 100,
        ..Config::default()
    };
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

    let seen: Arc<Mutex<Seen>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (mut client, seen, done) = (client.clone(), seen.clone(), done.clone());
        writers.push(tokio::spawn(async move {
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
    let health_seen: Arc<Mutex<HealthLog>> = Arc::default();
    let poller = {
        let (health_seen, done, endpoint) = (health_seen.clone(), done.clone(), endpoint.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let status = health_status(&endpoint, None, "").await;
                health_seen.lock().unwrap().push((Instant::now(), status));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // How long until `n` more appends are acknowledged (well past any batch that was in
    // flight at `after`).
    let wait_for_acks = async |after: Instant, n: usize| -> Duration {
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.lock().unwrap().acks_since(after) < n {
            assert!(Instant::now() < deadline, "appends did not resume within 20 s");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        after.elapsed()
    };
    let terminate = async || {
        let killed = schema
            .client
            .query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", &[&role])
            .await
            .unwrap()
            .len();
        assert!(killed > 0, "the server holds connections");
    };

    // Three kills under load: writes resume each time, without a restart.
    wait_for_acks(Instant::now() - Duration::from_secs(60), 200).await;
    let mut resumed_after = Vec::new();
    for _ in 0..3 {
        let killed_at = Instant::now();
        terminate().await;
        resumed_after.push(wait_for_acks(killed_at, 100).await);
    }

    // Logins refused for a second: health says NOT_SERVING, and SERVING once they work.
    schema.client.batch_execute(&format!("ALTER ROLE {role} NOLOGIN")).await.unwrap();
    let blocked_at = Instant::now();
    terminate().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    schema.client.batch_execute(&format!("ALTER ROLE {role} LOGIN")).await.unwrap();
    let back_at = Instant::now();
    let resumed_after_login = wait_for_acks(back_at, 100).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    done.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    poller.await.unwrap();

    let health = health_seen.lock().unwrap().clone();
    let during = |from: Instant, to: Instant| health.iter().filter(move |(at, _)| *at > from && *at < to);
    assert!(
        during(blocked_at, back_at).any(|(_, s)| *s == Some(ServingStatus::NotServing)),
        "health never said NOT_SERVING while logins were refused: {:?}",
        during(blocked_at, back_at).collect::<Vec<_>>()
    );
    assert_eq!(health.last().map(|(_, s)| *s), Some(Some(ServingStatus::Serving)), "health came back");

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let codes: HashSet<Code> = seen.failures.iter().map(|(c, _)| *c).collect();
    assert!(codes.iter().all(|c| *c == Code::Unavailable), "only UNAVAILABLE, never INTERNAL or a hang: {codes:?}");
    let unknown = seen.failures.iter().filter(|(_, m)| m.contains("may or may not")).count();

    // No acknowledged event is lost or doubled, and signed heads cover the whole log again.
    let store =
        PostgresStore::open(PostgresOptions { schema: Some(schema.name.clone()), ..PostgresOptions::new(url()) })
            .await
            .unwrap();
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
        let head = latest_head(&store).await.unwrap().map_or(0, |h| h.size);
        if head >= log_size {
            break;
        }
        assert!(Instant::now() < deadline, "tree heads did not resume: head {head}, log {log_size}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "engine faults: {} acknowledged, {} refused ({unknown} outcome unknown); 100 more acknowledged {:?} after \
         each kill and {:?} after logins returned",
        seen.acked.len(),
        seen.failures.len(),
        resumed_after,
        resumed_after_login
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    store.shutdown().await;
    let name = schema.name.clone();
    schema.client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE; DROP ROLE {role}")).await.unwrap();
    schema.drop_now().await;
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
