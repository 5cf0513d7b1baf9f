//! Server configuration, layered: built-in defaults, then an optional TOML file, then
//! `GEZINSDOSSIER_*` environment variables (nested keys with `__`, e.g.
//! `GEZINSDOSSIER_TLS__CERT`), then command-line flags. Later layers win.

use crate::identity::tls::TlsFiles;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use gezinsdossier_ledger::store::kurrent::KurrentOptions;
use gezinsdossier_ledger::store::postgres::PostgresOptions;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod service_links;

/// Environment variable prefix.
pub const ENV_PREFIX: &str = "GEZINSDOSSIER_";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    pub listen: SocketAddr,
    /// Serve Prometheus metrics over plain HTTP at `http://<this>/metrics`; off when unset.
    /// Bind it to an address only the scraper reaches: it needs no client certificate.
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the log read-only as c2sp.org/tlog-tiles resources (`/checkpoint`,
    /// `/tile/...`) over plain HTTP at this address; off when unset. It reveals hashes,
    /// counts and timing, never content (README, "Checking the log").
    pub tiles_listen: Option<SocketAddr>,
    /// Export the spans as OpenTelemetry traces to this OTLP/gRPC collector (e.g.
    /// `http://otel-collector:4317`); off when unset.
    pub otlp_endpoint: Option<String>,
    /// Directory of the embedded store.
    pub data_dir: PathBuf,
    /// The embedded store's WAL bound in MiB: past half of it, a checkpoint waits for
    /// readers and the WAL starts again from its beginning.
    pub sqlite_wal_limit_mib: u64,
    /// The family cache's bound in MiB (estimated sizes): past it, the families used least
    /// recently are dropped and read from the store again on their next use.
    pub family_cache_mib: u64,
    /// The report index's bound in MiB (estimated sizes): past it, the families whose
    /// reports were asked for least recently are dropped, and read whole again at their
    /// next report.
    pub report_index_mib: u64,
    /// Serve without TLS and take the organisation from `x-organisation-id`. Never in
    /// production.
    pub insecure_dev: bool,
    /// Server certificate, key and the CA for client certificates. Required unless
    /// `insecure_dev`.
    pub tls: Option<TlsFiles>,
    /// The organisation registry (TOML). With `insecure_dev` and no registry, a built-in
    /// sample registry is used.
    pub organisations: Option<PathBuf>,
    /// Largest request message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Most events in one AppendEvents request.
    pub max_events_per_request: usize,
    /// `json` (one object per line) or `pretty`.
    pub log_format: LogFormat,
    /// Run on PostgreSQL instead of the embedded store (several replicas may share it).
    pub postgres: Option<PostgresOptions>,
    /// Run on a KurrentDB cluster instead of the embedded store (several replicas may share
    /// it). At most one of `postgres` and `kurrentdb`.
    pub kurrentdb: Option<KurrentOptions>,
    /// The Ed25519 key (PKCS#8) that signs tree heads; created on first start. Replicas on
    /// one database must share it. Default: `<data_dir>/treehead.key`.
    pub signing_key: Option<PathBuf>,
    /// The origin line of this log's C2SP checkpoints, which witnesses and auditors know it
    /// by: one per deployment, e.g. `gezinsdossier.example/regio-utrecht`. Never change it
    /// once witnesses follow the log.
    pub log_origin: String,
    /// Witnesses (c2sp.org/tlog-witness) asked to cosign each new head: a TOML array of
    /// `{ url = "http://host:port", vkey = "<name>+<id>+<key>" }`.
    pub witnesses: Vec<crate::cosigning::WitnessConfig>,
    /// A head counts as published once this many of `witnesses` cosigned it (0: at once).
    pub required_cosignatures: usize,
    /// Publish a signed tree head after this many new events…
    pub tree_head_every_events: u64,
    /// …or this many milliseconds, whichever comes first.
    pub tree_head_interval_ms: u64,
    /// Health says the log service is NOT_SERVING once more events than this wait for a
    /// signed tree head (at least twice `tree_head_every_events`)…
    pub tree_head_max_lag_events: u64,
    /// …or the oldest has waited this many milliseconds (at least twice
    /// `tree_head_interval_ms`).
    pub tree_head_max_lag_ms: u64,
    /// On shutdown, health says NOT_SERVING for this long before the listener closes, so
    /// that balancers and probes take the replica out of rotation first.
    pub shutdown_drain_ms: u64,
    /// Days a privacy officer has to review a use of a legal basis (break-the-glass
    /// included); later it is overdue in the review queue.
    pub review_deadline_days: u32,
    /// A feed subscriber whose buffer stays full this long (ms) is told it fell behind
    /// (RESOURCE_EXHAUSTED) and resumes from its last token.
    pub feed_slow_consumer_ms: u64,
    /// After the drain, in-flight calls and open streams (feeds told to resume) get this
    /// long (ms) to finish; then connections are closed, so that a client that stops
    /// reading cannot hold a shutdown up.
    pub shutdown_grace_ms: u64,
    /// The key-encryption key (64 hex digits) that wraps every subject key, typically from
    /// `GEZINSDOSSIER_KEK`. Keep it out of the data directory and its backups. Required
    /// unless `insecure_dev` (which keeps a development KEK beside the data).
    pub kek: Option<Secret>,
    /// …or a file holding it.
    pub kek_file: Option<PathBuf>,
    /// Files of earlier KEKs, still read while `gezinsdossier keys rotate` rewraps.
    pub previous_kek_files: Vec<PathBuf>,
    /// The retention clocks' periods (`[retention]`, in years): `case_record_years` (20,
    /// Jeugdwet 7.3.8), `child_protection_years_after_18` (30), `access_log_years` (5,
    /// the NEN 7513 minimum).
    pub retention: gezinsdossier_ledger::retention::RetentionPeriods,
    /// Run retention in the background every this many seconds (e.g. 86400 for daily); 0
    /// (the default): only as `gezinsdossier retention`. With several replicas, enable it on
    /// one.
    pub retention_every_secs: u64,
}

/// A configured secret: never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: None,
            tiles_listen: None,
            otlp_endpoint: None,
            data_dir: PathBuf::from("./data"),
            sqlite_wal_limit_mib: 64,
            family_cache_mib: (gezinsdossier_ledger::families::DEFAULT_CACHE_BOUND_BYTES >> 20) as u64,
            report_index_mib: (gezinsdossier_ledger::families::DEFAULT_REPORT_INDEX_BOUND_BYTES >> 20) as u64,
            insecure_dev: false,
            tls: None,
            organisations: None,
            max_message_bytes: 4 * 1024 * 1024,
            max_events_per_request: 500,
            log_format: LogFormat::Json,
            postgres: None,
            kurrentdb: None,
            signing_key: None,
            log_origin: gezinsdossier_ledger::checkpoint::DEFAULT_ORIGIN.to_owned(),
            witnesses: Vec::new(),
            required_cosignatures: 0,
            tree_head_every_events: 1000,
            tree_head_interval_ms: 10_000,
            tree_head_max_lag_events: 10_000,
            tree_head_max_lag_ms: 60_000,
            shutdown_drain_ms: 0,
            review_deadline_days: 7,
            feed_slow_consumer_ms: 30_000,
            shutdown_grace_ms: 5_000,
            kek: None,
            kek_file: None,
            previous_kek_files: Vec::new(),
            retention: gezinsdossier_ledger::retention::RetentionPeriods::default(),
            retention_every_secs: 0,
        }
    }
}

/// Values given on the command line; only those set override the other layers.
#[derive(Debug, Clone, Default, Serialize, clap::Args)]
pub struct ConfigFlags {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:50051.
    #[arg(long, value_name = "ADDR:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics [default: off].
    #[arg(long, value_name = "ADDR:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the log's checkpoint and tiles (c2sp.org/tlog-tiles) at http://ADDR:PORT/
    /// [default: off].
    #[arg(long, value_name = "ADDR:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tiles_listen: Option<SocketAddr>,
    /// Export traces over OTLP/gRPC to this collector, e.g. http://otel-collector:4317
    /// [default: off].
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// Directory of the embedded store [default: ./data].
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Development only: no TLS, organisation taken from `x-organisation-id` metadata.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure_dev: bool,
    /// Server certificate (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_client_ca"])]
    #[serde(skip)]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub tls_key: Option<PathBuf>,
    /// CA that organisation client certificates must chain to (PEM).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub tls_client_ca: Option<PathBuf>,
    /// Organisation registry (TOML).
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organisations: Option<PathBuf>,
    /// Largest request message accepted, in bytes.
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<usize>,
    /// Most events in one AppendEvents request.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_events_per_request: Option<usize>,
    /// Log format.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Run on PostgreSQL at this URL instead of the embedded store.
    #[arg(long, value_name = "URL")]
    #[serde(skip)]
    pub postgres_url: Option<String>,
    /// PostgreSQL schema for the tables (created if missing).
    #[arg(long, value_name = "NAME", requires = "postgres_url")]
    #[serde(skip)]
    pub postgres_schema: Option<String>,
    /// Run on KurrentDB at this connection string instead of the embedded store, e.g.
    /// kurrentdb://node1:2113,node2:2113,node3:2113?tls=true&tlsCAFile=ca.crt
    #[arg(long, value_name = "URL", conflicts_with = "postgres_url")]
    #[serde(skip)]
    pub kurrentdb_url: Option<String>,
    /// KurrentDB stream-name prefix this deployment owns [default: gzd].
    #[arg(long, value_name = "NAME", requires = "kurrentdb_url")]
    #[serde(skip)]
    pub kurrentdb_namespace: Option<String>,
    /// The tree-head signing key (PKCS#8) [default: <data-dir>/treehead.key].
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<PathBuf>,
    /// The origin line of this log's checkpoints [default: gezinsdossier.example/local].
    #[arg(long, value_name = "ORIGIN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_origin: Option<String>,
    /// The key-encryption key's file (64 hex digits); replicas on one store share it.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kek_file: Option<PathBuf>,
    /// Publish a signed tree head after this many new events.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree_head_every_events: Option<u64>,
    /// Publish a signed tree head at least this often (milliseconds) while events arrive.
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree_head_interval_ms: Option<u64>,
    /// Log service NOT_SERVING once more events than this wait for a signed tree head.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree_head_max_lag_events: Option<u64>,
    /// Log service NOT_SERVING once an event has waited this long (ms) for a signed head.
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree_head_max_lag_ms: Option<u64>,
    /// On shutdown, say NOT_SERVING for this long (ms) before closing the listener.
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_drain_ms: Option<u64>,
    /// Days a privacy officer has to review a use of a legal basis [default: 7].
    #[arg(long, value_name = "DAYS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_deadline_days: Option<u32>,
}

#[derive(Serialize)]
struct PostgresOverride {
    postgres: PostgresUrlOverride,
}

#[derive(Serialize)]
struct PostgresUrlOverride {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<String>,
}

#[derive(Serialize)]
struct KurrentOverride {
    kurrentdb: KurrentUrlOverride,
}

#[derive(Serialize)]
struct KurrentUrlOverride {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

#[derive(Serialize)]
struct TlsOverride {
    tls: TlsFiles,
}

/// Every configuration key as its environment variable, with its default, for
/// `serve --help`. Made from the defaults themselves (and from each optional section's
/// own defaults), so it cannot drift from what the loader reads.
pub fn environment_help() -> String {
    let sections = [
        ("tls", serde_json::to_value(TlsFiles { cert: "".into(), key: "".into(), client_ca: "".into() })),
        ("postgres", serde_json::to_value(PostgresOptions::new(""))),
        ("kurrentdb", serde_json::to_value(KurrentOptions::new(""))),
    ];
    let mut out =
        String::from("Configuration keys, as environment variables (file keys in lower case, `__` = section):\n");
    let Ok(serde_json::Value::Object(defaults)) = serde_json::to_value(Config::default()) else { return out };
    let mut lines = Vec::new();
    let mut add = |key: String, value: &serde_json::Value| {
        let default = match value {
            serde_json::Value::Null => "unset".to_owned(),
            serde_json::Value::String(s) if s.is_empty() => "required in the section".to_owned(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        lines.push(format!("  {ENV_PREFIX}{}  [default: {default}]", key.to_ascii_uppercase()));
    };
    for (key, value) in &defaults {
        match (value, sections.iter().find(|(name, _)| name == key)) {
            (serde_json::Value::Object(fields), _) => fields.iter().for_each(|(k, v)| add(format!("{key}__{k}"), v)),
            (_, Some((_, Ok(serde_json::Value::Object(fields))))) => {
                fields.iter().for_each(|(k, v)| add(format!("{key}__{k}"), v));
            }
            _ => add(key.clone(), value),
        }
    }
    out.push_str(&lines.join("\n"));
    out
}

/// The `GEZINSDOSSIER_*` variables, less those Kubernetes injects for a Service of that name.
fn environment() -> Env {
    let service_links: Vec<String> = std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
        .filter_map(|(key, value)| {
            let prefix = key.get(..ENV_PREFIX.len())?;
            let rest = key.get(ENV_PREFIX.len()..)?;
            (prefix.eq_ignore_ascii_case(ENV_PREFIX) && service_links::is_service_link(rest, &value))
                .then(|| rest.to_string())
        })
        .collect();
    let ignored: Vec<&str> = service_links.iter().map(String::as_str).collect();
    Env::prefixed(ENV_PREFIX).ignore(&ignored).split("__")
}

impl Config {
    /// Builds the configuration from all layers.
    ///
    /// # Errors
    /// A layer that cannot be read or a value of the wrong type, naming the key.
    pub fn load(flags: &ConfigFlags) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = &flags.config {
            if !file.exists() {
                anyhow::bail!("configuration file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(environment()).merge(Serialized::defaults(flags));
        if let (Some(cert), Some(key), Some(client_ca)) = (&flags.tls_cert, &flags.tls_key, &flags.tls_client_ca) {
            let tls = TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: client_ca.clone() };
            figment = figment.merge(Serialized::defaults(TlsOverride { tls }));
        }
        if let Some(url) = &flags.postgres_url {
            let postgres = PostgresUrlOverride { url: url.clone(), schema: flags.postgres_schema.clone() };
            figment = figment.merge(Serialized::defaults(PostgresOverride { postgres }));
        }
        if let Some(url) = &flags.kurrentdb_url {
            let kurrentdb = KurrentUrlOverride { url: url.clone(), namespace: flags.kurrentdb_namespace.clone() };
            figment = figment.merge(Serialized::defaults(KurrentOverride { kurrentdb }));
        }
        let config: Config = figment.extract().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if !self.insecure_dev && self.tls.is_none() {
            anyhow::bail!(
                "TLS is required: give --tls-cert, --tls-key and --tls-client-ca (see `gezinsdossier dev-ca`), \
                 or run with --insecure-dev for local development"
            );
        }
        if !self.insecure_dev && self.organisations.is_none() {
            anyhow::bail!("an organisation registry is required: give --organisations FILE");
        }
        if self.postgres.is_some() && self.kurrentdb.is_some() {
            anyhow::bail!("configure one store: both [postgres] and [kurrentdb] are set");
        }
        if !self.insecure_dev && self.kek.is_none() && self.kek_file.is_none() {
            anyhow::bail!(
                "a key-encryption key is required: set GEZINSDOSSIER_KEK (64 hex digits) or kek_file (see `gezinsdossier \
                 keys new-kek`)"
            );
        }
        let r = &self.retention;
        if r.case_record_years < 20 || r.child_protection_years_after_18 < 30 || r.access_log_years < 5 {
            anyhow::bail!(
                "retention: periods may be longer than the law's, never shorter (case_record_years >= 20, \
                 child_protection_years_after_18 >= 30, access_log_years >= 5)"
            );
        }
        if self.kek.is_some() && self.kek_file.is_some() {
            anyhow::bail!("give the key-encryption key once: both kek and kek_file are set");
        }
        gezinsdossier_ledger::checkpoint::check_origin(&self.log_origin)
            .map_err(|e| anyhow::anyhow!("log_origin: {e}"))?;
        let witnesses = self.witnesses()?;
        if self.required_cosignatures > witnesses.len() {
            anyhow::bail!(
                "required_cosignatures is {} but only {} witnesses are configured",
                self.required_cosignatures,
                witnesses.len()
            );
        }
        if self.max_events_per_request == 0 || self.max_message_bytes < 1024 {
            anyhow::bail!("max_events_per_request must be at least 1 and max_message_bytes at least 1024");
        }
        Ok(())
    }

    /// The configured witnesses with their parsed keys.
    ///
    /// # Errors
    /// A vkey that is not a cosigner's key, or a URL that is not `http://`.
    pub fn witnesses(
        &self,
    ) -> anyhow::Result<Vec<(crate::cosigning::WitnessConfig, gezinsdossier_ledger::note::VerifierKey)>> {
        let vkeys: Vec<String> = self.witnesses.iter().map(|w| w.vkey.clone()).collect();
        let keys =
            gezinsdossier_ledger::cosignatures::witness_keys(&vkeys).map_err(|e| anyhow::anyhow!("witnesses: {e}"))?;
        for w in &self.witnesses {
            if !w.url.starts_with("http://") || w.url.len() > 256 {
                let shown: String = w.url.chars().take(32).collect();
                anyhow::bail!("witnesses: url {shown:?} is not http://host:port[/prefix]");
            }
        }
        Ok(self.witnesses.iter().cloned().zip(keys).collect())
    }

    /// The configured KEKs, the current one first. In dev mode without one, a development
    /// KEK kept in `<data_dir>/dev-kek.hex` (created on first start).
    ///
    /// # Errors
    /// A file that cannot be read, or a KEK that is not 64 hex digits (naming where it came
    /// from, never its value).
    pub fn keks(&self) -> anyhow::Result<Vec<gezinsdossier_ledger::sealing::Kek>> {
        use gezinsdossier_ledger::sealing::Kek;
        let read = |path: &Path| -> anyhow::Result<Kek> {
            let text =
                std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("kek file {}: {e}", path.display()))?;
            Kek::from_hex(&text).map_err(|e| anyhow::anyhow!("kek file {}: {e}", path.display()))
        };
        let primary = match (&self.kek, &self.kek_file) {
            (Some(secret), _) => Kek::from_hex(&secret.0).map_err(|e| anyhow::anyhow!("kek: {e}"))?,
            (None, Some(path)) => read(path)?,
            (None, None) => {
                let path = self.data_dir.join("dev-kek.hex");
                if !path.exists() {
                    std::fs::create_dir_all(&self.data_dir)?;
                    std::fs::write(&path, Kek::generate_hex().map_err(|e| anyhow::anyhow!("{e}"))?)?;
                }
                tracing::warn!("dev mode: the key-encryption key is kept beside the data; never use with real data");
                read(&path)?
            }
        };
        let mut keks = vec![primary];
        for path in &self.previous_kek_files {
            keks.push(read(path)?);
        }
        Ok(keks)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the tree-head signing key lives.
    pub fn signing_key_path(&self) -> PathBuf {
        self.signing_key.clone().unwrap_or_else(|| self.data_dir.join("treehead.key"))
    }
}

#[cfg(test)]
// figment::Jail fixes the closure's error type; it is not ours to shrink.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_environment_beats_file_beats_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "g.toml",
                "data_dir = \"/from-file\"\nmax_events_per_request = 7\ninsecure_dev = true\nlisten = \"127.0.0.1:1\"",
            )?;
            jail.set_env("GEZINSDOSSIER_MAX_EVENTS_PER_REQUEST", "9");
            jail.set_env("GEZINSDOSSIER_LISTEN", "127.0.0.1:2");
            let flags = ConfigFlags {
                config: Some("g.toml".into()),
                listen: Some("127.0.0.1:3".parse().unwrap()),
                ..ConfigFlags::default()
            };
            let c = Config::load(&flags).map_err(|e| e.to_string())?;
            assert_eq!(c.data_dir, PathBuf::from("/from-file"));
            assert_eq!(c.max_events_per_request, 9);
            assert_eq!(c.listen.port(), 3);
            assert!(c.insecure_dev);
            assert_eq!(c.max_message_bytes, Config::default().max_message_bytes);
            assert!(c.postgres.is_none());
            Ok(())
        });
    }

    #[test]
    fn the_help_names_every_key_as_its_variable_with_its_default() {
        let help = environment_help();
        for line in [
            "GEZINSDOSSIER_LISTEN  [default: 127.0.0.1:50051]",
            "GEZINSDOSSIER_METRICS_LISTEN  [default: unset]",
            "GEZINSDOSSIER_RETENTION__CASE_RECORD_YEARS  [default: 20]",
            "GEZINSDOSSIER_POSTGRES__PASSWORD_FILE  [default: unset]",
            "GEZINSDOSSIER_POSTGRES__URL  [default: required in the section]",
            "GEZINSDOSSIER_KURRENTDB__NAMESPACE",
            "GEZINSDOSSIER_TLS__CLIENT_CA",
            "GEZINSDOSSIER_KEK  [default: unset]",
        ] {
            assert!(help.contains(line), "{line} missing from:\n{help}");
        }
        // Each variable the help names is one the loader accepts.
        let Ok(serde_json::Value::Object(defaults)) = serde_json::to_value(Config::default()) else { panic!() };
        assert!(defaults.keys().all(|k| help.contains(&format!("{ENV_PREFIX}{}", k.to_ascii_uppercase()))));
    }

    #[test]
    fn kubernetes_service_links_are_ignored_but_typos_still_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GEZINSDOSSIER_INSECURE_DEV", "true");
            jail.set_env("GEZINSDOSSIER_PORT", "tcp://10.0.0.1:50051");
            jail.set_env("GEZINSDOSSIER_SERVICE_HOST", "10.0.0.1");
            jail.set_env("GEZINSDOSSIER_SERVICE_PORT", "50051");
            jail.set_env("GEZINSDOSSIER_SERVICE_PORT_GRPC", "50051");
            jail.set_env("GEZINSDOSSIER_PORT_50051_TCP", "tcp://10.0.0.1:50051");
            jail.set_env("GEZINSDOSSIER_PORT_50051_TCP_PROTO", "tcp");
            jail.set_env("GEZINSDOSSIER_PORT_50051_TCP_PORT", "50051");
            jail.set_env("GEZINSDOSSIER_PORT_50051_TCP_ADDR", "10.0.0.1");
            jail.set_env("GEZINSDOSSIER_LISTEN", "127.0.0.1:4");
            let c = Config::load(&ConfigFlags::default()).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.port(), 4);

            jail.set_env("GEZINSDOSSIER_LISTN", "127.0.0.1:5");
            let e = Config::load(&ConfigFlags::default()).expect_err("a typo is refused");
            assert!(e.to_string().contains("listn"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_kek_and_retention_are_configured_and_checked() {
        figment::Jail::expect_with(|jail| {
            let load = |toml: &str| {
                std::fs::write("k.toml", toml).expect("write");
                Config::load(&ConfigFlags { config: Some("k.toml".into()), ..ConfigFlags::default() })
                    .map_err(|e| e.to_string())
            };
            let tls = "[tls]\ncert = \"c\"\nkey = \"k\"\nclient_ca = \"a\"\n";
            let prod = format!("organisations = \"o.toml\"\n{tls}");
            let refused = load(&prod).unwrap_err();
            assert!(refused.contains("key-encryption key is required"), "{refused}");
            jail.set_env("GEZINSDOSSIER_KEK", "ab".repeat(32));
            let c = load(&prod)?;
            assert_eq!(c.keks().map_err(|e| e.to_string())?.len(), 1);
            assert!(!format!("{c:?}").contains(&"ab".repeat(32)), "the KEK is never printed");
            jail.set_env("GEZINSDOSSIER_RETENTION__CASE_RECORD_YEARS", "25");
            assert_eq!(load(&prod)?.retention.case_record_years, 25);
            jail.set_env("GEZINSDOSSIER_RETENTION__CASE_RECORD_YEARS", "10");
            assert!(load(&prod).unwrap_err().contains("never shorter"));
            jail.clear_env();
            // Dev mode keeps a development KEK beside the data, made once.
            let dev = load("insecure_dev = true\ndata_dir = \"d\"")?;
            let first = dev.keks().map_err(|e| e.to_string())?[0].id().to_owned();
            assert_eq!(dev.keks().map_err(|e| e.to_string())?[0].id(), first);
            // The report index's bound: 64 MiB unless set.
            assert_eq!(dev.report_index_mib, 64);
            assert_eq!(load("insecure_dev = true\ndata_dir = \"d\"\nreport_index_mib = 8")?.report_index_mib, 8);
            Ok(())
        });
    }

    #[test]
    fn the_example_config_in_deploy_is_valid() {
        figment::Jail::expect_with(|_| {
            let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/gezinsdossier.example.toml");
            let c = Config::load(&ConfigFlags { config: Some(file), ..ConfigFlags::default() })
                .map_err(|e| e.to_string())?;
            assert_eq!(c.listen.port(), 50051);
            assert!(c.tls.is_some() && c.organisations.is_some());
            Ok(())
        });
    }

    #[test]
    fn the_compose_config_names_its_witness_and_bad_witness_settings_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GEZINSDOSSIER_KEK_FILE", "/etc/kek.hex");
            let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/compose/gezinsdossier.toml");
            let c = Config::load(&ConfigFlags { config: Some(file), ..ConfigFlags::default() })
                .map_err(|e| e.to_string())?;
            assert_eq!((c.log_origin.as_str(), c.required_cosignatures), ("gezinsdossier.example/compose", 1));
            assert_eq!(c.witnesses().map_err(|e| e.to_string())?[0].1.name, "witness.compose.example/w1");

            let load = |text: &str| {
                std::fs::write("w.toml", format!("insecure_dev = true\n{text}")).map_err(|e| e.to_string())?;
                Config::load(&ConfigFlags { config: Some("w.toml".into()), ..ConfigFlags::default() })
                    .map(drop)
                    .map_err(|e| e.to_string())
            };
            let err = load("required_cosignatures = 1").unwrap_err();
            assert!(err.contains("only 0 witnesses"), "{err}");
            // A log's own key (type 0x01) is not a cosigner's.
            let vkey = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
            let err = load(&format!("[[witnesses]]\nurl = \"http://w:1\"\nvkey = \"{vkey}\"")).unwrap_err();
            assert!(err.contains("not a cosignature/v1"), "{err}");
            let err = load("log_origin = \"has space\"").unwrap_err();
            assert!(err.contains("log_origin"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn postgres_comes_from_the_file_and_the_url_flag_overrides_it() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("g.toml", "insecure_dev = true\n[postgres]\nurl = \"postgres://file/db\"\npool_size = 3")?;
            let file = ConfigFlags { config: Some("g.toml".into()), ..ConfigFlags::default() };
            let c = Config::load(&file).map_err(|e| e.to_string())?;
            let pg = c.postgres.expect("postgres from file");
            assert_eq!((pg.url.as_str(), pg.pool_size), ("postgres://file/db", 3));
            let flags = ConfigFlags {
                postgres_url: Some("postgres://flag/db".into()),
                postgres_schema: Some("replicas".into()),
                ..file
            };
            let pg = Config::load(&flags).map_err(|e| e.to_string())?.postgres.expect("postgres");
            assert_eq!(
                (pg.url.as_str(), pg.schema.as_deref(), pg.pool_size),
                ("postgres://flag/db", Some("replicas"), 3)
            );
            Ok(())
        });
    }

    #[test]
    fn kurrentdb_comes_from_the_environment_or_flags_and_excludes_postgres() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GEZINSDOSSIER_INSECURE_DEV", "true");
            jail.set_env("GEZINSDOSSIER_KURRENTDB__URL", "kurrentdb://env:2113?tls=true");
            let c = Config::load(&ConfigFlags::default()).map_err(|e| e.to_string())?;
            let kdb = c.kurrentdb.expect("kurrentdb from the environment");
            assert_eq!((kdb.url.as_str(), kdb.namespace.as_str()), ("kurrentdb://env:2113?tls=true", "gzd"));
            let flags = ConfigFlags {
                kurrentdb_url: Some("kurrentdb://flag:2113".into()),
                kurrentdb_namespace: Some("haaglanden".into()),
                ..ConfigFlags::default()
            };
            let kdb = Config::load(&flags).map_err(|e| e.to_string())?.kurrentdb.expect("kurrentdb");
            assert_eq!((kdb.url.as_str(), kdb.namespace.as_str()), ("kurrentdb://flag:2113", "haaglanden"));
            let both = ConfigFlags { postgres_url: Some("postgres://db/x".into()), ..flags };
            let err = Config::load(&both).unwrap_err().to_string();
            assert!(err.contains("configure one store"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn refuses_to_start_without_tls_unless_told_to() {
        figment::Jail::expect_with(|_| {
            let err = Config::load(&ConfigFlags::default()).unwrap_err().to_string();
            assert!(err.contains("TLS is required"), "{err}");
            let dev = ConfigFlags { insecure_dev: true, ..ConfigFlags::default() };
            assert!(Config::load(&dev).is_ok());
            Ok(())
        });
    }
}
