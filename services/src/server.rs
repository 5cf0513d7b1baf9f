//! Assembles and runs the gRPC server: identity, services, health, reflection, limits,
//! graceful shutdown.

use crate::audit_service::AuditApi;
use crate::case_service::CaseApi;
use crate::config::Config;
use crate::consent_service::ConsentApi;
use crate::dossier_service::DossierApi;
use crate::feed_service::FeedApi;
use crate::identity::dev_ca::sample_organisations;
use crate::identity::interceptor::IdentityMode;
use crate::identity::{Authenticator, OrganisationRegistry};
use crate::limits::ClientFaultStatuses;
use crate::log_service::LogApi;
use crate::notice_service::NoticeApi;
use crate::readiness::{LagBound, Readiness};
use crate::report_service::ReportApi;
use crate::request_log::RequestLog;
use anyhow::Context as _;
use gezinsdossier_ledger::clock::{Clock, SystemClock};
use gezinsdossier_ledger::cosignatures::WitnessPolicy;
use gezinsdossier_ledger::families::Families;
use gezinsdossier_ledger::proof_index::LogIndex;
use gezinsdossier_ledger::publisher::{self, PublishPolicy, PublisherStatus};
use gezinsdossier_ledger::retention::RetentionPeriods;
use gezinsdossier_ledger::sealing::Keyring;
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::commit_watch::CommitWatch;
use gezinsdossier_ledger::store::keys::KeyStore;
use gezinsdossier_ledger::store::keys::sqlite::SqliteKeyStore;
use gezinsdossier_ledger::store::kurrent::KurrentStore;
use gezinsdossier_ledger::store::postgres::PostgresStore;
use gezinsdossier_ledger::store::sqlite::{SqliteOptions, SqliteStore};
use gezinsdossier_ledger::treehead::TreeHeadSigner;
use gezinsdossier_proto::v1::access_report_service_server::AccessReportServiceServer;
use gezinsdossier_proto::v1::audit_service_server::AuditServiceServer;
use gezinsdossier_proto::v1::case_service_server::CaseServiceServer;
use gezinsdossier_proto::v1::consent_service_server::ConsentServiceServer;
use gezinsdossier_proto::v1::dossier_service_server::DossierServiceServer;
use gezinsdossier_proto::v1::feed_service_server::FeedServiceServer;
use gezinsdossier_proto::v1::log_service_server::LogServiceServer;
use gezinsdossier_proto::v1::notice_service_server::NoticeServiceServer;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

/// Runs the server until `shutdown` resolves, on PostgreSQL or KurrentDB when configured and otherwise
/// on the embedded store in `config.data_dir`; then lets in-flight requests finish and
/// every queued append commit before returning.
///
/// # Errors
/// Start-up failures (store, registry, TLS files) and transport errors.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (store, keys) = open_stores(&config).await?;
    let result = serve_on(config, store.clone(), keys, Arc::new(SystemClock), listener, shutdown).await;
    store.shutdown().await;
    tracing::info!("stopped; every acknowledged append is committed");
    result
}

/// The configured event store and the key store beside it.
///
/// # Errors
/// A store that cannot be opened.
pub async fn open_stores(config: &Config) -> anyhow::Result<(Arc<dyn EventStore>, Arc<dyn KeyStore>)> {
    Ok(match (config.postgres.clone(), config.kurrentdb.clone()) {
        (Some(options), _) => {
            tracing::info!(pool_size = options.pool_size, tls = options.tls_ca_file.is_some(), "store: postgresql");
            let store = PostgresStore::open(options).await?;
            let keys: Arc<dyn KeyStore> = Arc::new(store.key_store());
            (Arc::new(store), keys)
        }
        (None, Some(options)) => {
            tracing::info!(namespace = %options.namespace, "store: kurrentdb");
            let store = KurrentStore::open(options).await?;
            let keys: Arc<dyn KeyStore> = Arc::new(store.key_store());
            (Arc::new(store), keys)
        }
        (None, None) => {
            let keys: Arc<dyn KeyStore> = Arc::new(SqliteKeyStore::open(&config.data_dir)?);
            let options = SqliteOptions {
                wal_limit_bytes: config.sqlite_wal_limit_mib.max(1).saturating_mul(1 << 20),
                ..SqliteOptions::default()
            };
            (Arc::new(SqliteStore::open_with(&config.data_dir, options)?), keys)
        }
    })
}

/// The background retention run: first after one period, then every period. A failed run
/// is logged and tried again next time.
async fn run_retention_every(families: Arc<Families>, periods: RetentionPeriods, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match families.run_retention(&periods, false).await {
            Ok(done) => tracing::info!(families = done.len(), "retention run finished"),
            Err(e) => tracing::warn!(error = %e, "retention run failed; trying again next period"),
        }
    }
}

/// The keyring over `key_store` with the configured KEKs.
///
/// # Errors
/// A KEK that cannot be read.
pub fn keyring(config: &Config, key_store: Arc<dyn KeyStore>) -> anyhow::Result<Arc<Keyring>> {
    Ok(Arc::new(Keyring::new(key_store, config.keks()?).map_err(|e| anyhow::anyhow!("{e}"))?))
}

/// Runs the server over any event store and clock (the caller owns the store's lifetime).
///
/// Auditors pin checkpoints and witnesses keep them by the log's origin: a log that starts
/// signing under another name looks like a new log to them, and its history cannot be
/// checked against what they hold. A store that cannot be read now is let through (the
/// service reports it unready), with a warning that the check was skipped.
async fn refuse_a_changed_origin(store: &dyn EventStore, origin: &str) -> anyhow::Result<()> {
    match publisher::latest_origin(store).await {
        Ok(Some(signed)) if signed != origin => anyhow::bail!(
            "log_origin is {origin:?}, but this log's checkpoints are signed as {:?}: auditors and witnesses know \
             the log by that name. Set log_origin back to it; a new origin is a new log, with a data directory \
             of its own",
            signed.chars().take(64).collect::<String>()
        ),
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "the log's origin could not be read at start-up; not checked");
            Ok(())
        }
    }
}

/// # Errors
/// Start-up failures (registry, TLS files, KEK, a changed log origin) and transport errors.
pub async fn serve_on(
    config: Config,
    store: Arc<dyn EventStore>,
    key_store: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let mode = if config.insecure_dev { IdentityMode::InsecureDev } else { IdentityMode::MutualTls };
    let registry = Arc::new(load_registry(&config)?);
    log_function_grants(&registry);
    let key_path = config.signing_key_path();
    if let Some(dir) = key_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let signer = Arc::new(TreeHeadSigner::load_or_create(&key_path)?.with_origin(&config.log_origin)?);
    tracing::info!(public_key = %hex::encode(signer.public_key()), origin = signer.origin(), "tree heads are signed with this key");
    refuse_a_changed_origin(&*store, signer.origin()).await?;
    let policy = PublishPolicy {
        every_events: config.tree_head_every_events.max(1),
        every: std::time::Duration::from_millis(config.tree_head_interval_ms.max(10)),
    };
    let watched = Arc::new(CommitWatch::new(store));
    let store: Arc<dyn EventStore> = watched.clone();
    let index = LogIndex::new(store.clone());
    let (publisher_status, publisher_watch) = watch::channel(PublisherStatus::default());
    let publisher =
        tokio::spawn(publisher::run(store.clone(), signer, clock.clone(), policy, index.clone(), publisher_status));
    let witnesses = config.witnesses()?;
    let witness_policy = WitnessPolicy {
        witnesses: witnesses.iter().map(|(_, key)| key.clone()).collect(),
        required: config.required_cosignatures,
    };
    let cosigning =
        tokio::spawn(crate::cosigning::run(store.clone(), index.clone(), witnesses, publisher_watch.clone()));
    let tiles = match config.tiles_listen {
        Some(addr) => {
            let listener =
                TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
            let source = crate::tiles_http::TilesSource {
                store: store.clone(),
                index: index.clone(),
                witnesses: witness_policy.clone(),
            };
            tracing::info!(addr = %listener.local_addr()?, "the log's checkpoint and tiles served over HTTP");
            Some(tokio::spawn(crate::tiles_http::serve(source, listener, std::future::pending())))
        }
        None => None,
    };
    let review_within = chrono::Duration::days(i64::from(config.review_deadline_days.max(1)));
    let keys = keyring(&config, key_store)?;
    let mib = |n: u64| usize::try_from(n.max(1).saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    let families = Arc::new(
        Families::new(store, clock.clone(), keys)
            .with_review_deadline(review_within)
            .with_cache_bound(mib(config.family_cache_mib))
            .with_report_index_bound(mib(config.report_index_mib)),
    );
    let retention = (config.retention_every_secs > 0).then(|| {
        let every = Duration::from_secs(config.retention_every_secs);
        tokio::spawn(run_retention_every(families.clone(), config.retention, every))
    });
    let log = LogServiceServer::new(LogApi::new(families.clone(), index.clone(), witness_policy));
    let auth = Authenticator::new(registry.clone(), mode);

    let (health, health_service) = tonic_health::server::health_reporter();
    let (draining_tx, draining) = watch::channel(false);
    let draining_rx_for_feed = draining.clone();
    let readiness = tokio::spawn(
        Readiness {
            reporter: health.clone(),
            store: watched,
            publisher: publisher_watch,
            draining,
            bound: LagBound {
                events: config.tree_head_max_lag_events.max(policy.every_events.saturating_mul(2)),
                time: Duration::from_millis(config.tree_head_max_lag_ms).max(policy.every * 2),
            },
            writing_services: vec![
                service_name::<CaseServiceServer<CaseApi>>(),
                service_name::<ConsentServiceServer<ConsentApi>>(),
                service_name::<DossierServiceServer<DossierApi>>(),
                service_name::<AuditServiceServer<AuditApi>>(),
                service_name::<AccessReportServiceServer<ReportApi>>(),
                service_name::<NoticeServiceServer<NoticeApi>>(),
                service_name::<FeedServiceServer<FeedApi>>(),
            ],
            log_service: service_name::<LogServiceServer<LogApi>>(),
        }
        .run(),
    );
    // Both reflection versions: many clients (Python's grpcio-reflection among them) still
    // speak only v1alpha.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(gezinsdossier_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder().build_v1()?;
    let reflection_v1alpha = reflection_builder().build_v1alpha()?;

    let case = CaseServiceServer::new(CaseApi::new(families.clone(), config.max_events_per_request))
        .max_decoding_message_size(config.max_message_bytes);
    let consent = ConsentServiceServer::new(ConsentApi::new(families.clone(), clock, registry.clone()))
        .max_decoding_message_size(config.max_message_bytes);
    let audit = AuditServiceServer::new(AuditApi::new(families.clone(), index.clone()))
        .max_decoding_message_size(config.max_message_bytes);
    let report = AccessReportServiceServer::new(ReportApi::new(families.clone(), registry.clone(), index.clone()))
        .max_decoding_message_size(config.max_message_bytes);
    let notices =
        NoticeServiceServer::new(NoticeApi::new(families.clone())).max_decoding_message_size(config.max_message_bytes);
    let slow_after = Duration::from_millis(config.feed_slow_consumer_ms.max(1));
    let feed_api = FeedApi::new(families.clone(), index.clone(), draining_rx_for_feed, slow_after)
        .context("start the change feed's threads")?;
    let feed = FeedServiceServer::new(feed_api)
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(usize::MAX);
    let dossier = DossierServiceServer::new(DossierApi::new(families, registry.clone()))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(usize::MAX);

    let mut builder = Server::builder();
    if let Some(tls) = &config.tls {
        builder = builder.tls_config(crate::identity::tls::server_tls_config(tls)?)?;
    }
    if config.insecure_dev {
        tracing::warn!("INSECURE DEV MODE: no TLS, organisation identity is NOT verified. Never use with real data.");
        eprintln!("\n  !!! gezinsdossier runs in INSECURE DEV MODE: no TLS, identities are not verified !!!\n");
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, organisations = registry.len(), data_dir = %config.data_dir.display(), tls = config.tls.is_some(), "serving");
    println!("gezinsdossier listening on {addr}");

    // Set once the listener closes: from then on, in-flight calls have the grace period.
    let finishing = Arc::new(tokio::sync::Notify::new());
    let finishing_started = finishing.clone();
    let serving = builder
        .layer(RequestLog { insecure_dev: config.insecure_dev })
        .layer(ClientFaultStatuses)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(case, auth.clone()))
        .add_service(InterceptedService::new(consent, auth.clone()))
        .add_service(InterceptedService::new(dossier, auth.clone()))
        .add_service(InterceptedService::new(audit, auth.clone()))
        .add_service(InterceptedService::new(report, auth.clone()))
        .add_service(InterceptedService::new(notices, auth.clone()))
        .add_service(InterceptedService::new(feed, auth.clone()))
        .add_service(InterceptedService::new(log, auth))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            shutdown.await;
            // Out of rotation first, then stop accepting.
            let _ = draining_tx.send(true);
            tracing::info!(drain_ms = config.shutdown_drain_ms, "shutting down: health says NOT_SERVING");
            tokio::time::sleep(Duration::from_millis(config.shutdown_drain_ms)).await;
            tracing::info!(grace_ms = config.shutdown_grace_ms, "shutting down: finishing in-flight requests");
            finishing_started.notify_one();
        });
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    let result = tokio::select! {
        result = serving => result,
        () = async { finishing.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("shutting down: calls still open after the grace period are cut off");
            Ok(())
        }
    };
    readiness.abort();
    if let Some(task) = retention {
        task.abort();
    }
    publisher.abort();
    cosigning.abort();
    if let Some(task) = tiles {
        task.abort();
    }
    result.map_err(Into::into)
}

fn load_registry(config: &Config) -> anyhow::Result<OrganisationRegistry> {
    match &config.organisations {
        Some(path) => Ok(OrganisationRegistry::load(path)?),
        None if config.insecure_dev => {
            let text: String = sample_organisations().iter().map(|org| org.registry_entry(None)).collect();
            Ok(OrganisationRegistry::parse(&text)?)
        }
        None => anyhow::bail!("an organisation registry is required"),
    }
}

/// Says at start which organisations hold which functions, and loudly when none does (a
/// registry written before function grants existed).
fn log_function_grants(registry: &OrganisationRegistry) {
    let mut offices: Vec<&str> =
        registry.organisations().filter(|o| o.grants.privacy_office).map(|o| o.id.as_str()).collect();
    let mut portals: Vec<&str> = registry.organisations().filter(|o| o.grants.portal).map(|o| o.id.as_str()).collect();
    offices.sort_unstable();
    portals.sort_unstable();
    if offices.is_empty() {
        tracing::warn!(
            "no organisation is granted the privacy-office function: AuditService and InvestigateDossier refuse \
             everyone (add functions = [\"privacy_office\"] to organisations.toml)"
        );
    }
    if portals.is_empty() {
        tracing::warn!(
            "no organisation is granted the portal function: AccessReportService refuses everyone (add functions = \
             [\"portal\"] to organisations.toml)"
        );
    }
    tracing::info!(privacy_office = ?offices, portal = ?portals, "function grants from the organisation registry");
}

fn service_name<S: tonic::server::NamedService>() -> &'static str {
    S::NAME
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::refuse_a_changed_origin;
    use gezinsdossier_ledger::envelope::{ExpectedRevision, ProposedEvent};
    use gezinsdossier_ledger::merkle::hashing::empty_root;
    use gezinsdossier_ledger::store::EventStore;
    use gezinsdossier_ledger::store::sqlite::SqliteStore;
    use gezinsdossier_ledger::treehead::{self, TreeHeadSigner};

    /// A log whose checkpoints are signed as one origin does not start under another; a
    /// log with no head yet starts under any.
    #[tokio::test]
    async fn a_log_signed_under_one_origin_does_not_start_under_another() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        assert!(refuse_a_changed_origin(&store, "gezinsdossier.example/b").await.is_ok());
        let signer = TreeHeadSigner::load_or_create(&dir.path().join("treehead.key"))
            .unwrap()
            .with_origin("gezinsdossier.example/a")
            .unwrap();
        let head = signer.sign(0, &empty_root(), 1);
        let event = ProposedEvent {
            event_id: uuid::Uuid::new_v4(),
            event_type: treehead::EVENT_TYPE.into(),
            recorded_at_micros: 1,
            payload: serde_json::to_vec(&head).unwrap(),
        };
        store.append(&treehead::stream(), ExpectedRevision::Any, vec![event]).await.unwrap();
        assert!(refuse_a_changed_origin(&store, "gezinsdossier.example/a").await.is_ok());
        let refused = refuse_a_changed_origin(&store, "gezinsdossier.example/b").await.unwrap_err().to_string();
        assert!(refused.contains("log_origin is \"gezinsdossier.example/b\""), "{refused}");
        assert!(refused.contains("signed as \"gezinsdossier.example/a\""), "{refused}");
        store.shutdown().await;
    }
}
