//! The `gezinsdossier` binary: `serve` runs the service, `dev-ca` makes development
//! certificates.

/// Many small, short-lived allocations per call (headers, protobuf, spans) cost less here
/// than in glibc's allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use gezinsdossier_ledger::checkpoint::Checkpoint;
use gezinsdossier_ledger::family::FamilyState;
use gezinsdossier_ledger::store::sqlite::LogFile;
use gezinsdossier_ledger::treehead::{self, TreeHeadSigner};
use gezinsdossier_ledger::verify::{verify_export, verify_log_against};
use gezinsdossier_ledger::{fhir, nen7513};
use gezinsdossier_services::config::{Config, ConfigFlags};
use gezinsdossier_services::identity::dev_ca;
use gezinsdossier_services::{health, server, telemetry};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "gezinsdossier",
    version,
    about = "A consent-aware shared family record for Dutch youth care and adult mental health care"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC service: on the embedded SQLite store in --data-dir (the default), on
    /// PostgreSQL (--postgres-url or [postgres]), or on a KurrentDB cluster (--kurrentdb-url
    /// or [kurrentdb]). Later layers win: defaults, --config file, environment, flags.
    Serve(Box<ConfigFlags>),
    /// Create a development CA, a server certificate, organisation client certificates and
    /// a matching organisation registry.
    DevCa {
        /// Directory to write into.
        #[arg(long, default_value = "deploy/dev-certs")]
        out: PathBuf,
    },
    /// A tour: start the server in-process and run one family through it (see README).
    Demo {
        /// Working directory for the demo's certificates and data [default: a new temporary one].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print the hex Ed25519 public key that verifies this service's tree heads.
    PublicKey {
        /// The signing key file [default: ./data/treehead.key].
        #[arg(long, value_name = "FILE", default_value = "data/treehead.key")]
        signing_key: PathBuf,
        /// Print the log's checkpoint vkey under this origin instead (what a witness's
        /// --log takes).
        #[arg(long, value_name = "ORIGIN")]
        vkey_for_origin: Option<String>,
    },
    /// Run a witness (c2sp.org/tlog-witness) for other organisations' logs: it keeps the
    /// latest checkpoint of each log it follows, refuses one that is not consistent with it,
    /// and cosigns the ones that are. Serves POST <listen>/add-checkpoint over HTTP and
    /// prints its own vkey.
    Witness {
        /// Address to listen on (port 0 picks one; the chosen address is printed).
        #[arg(long, default_value = "127.0.0.1:7380")]
        listen: std::net::SocketAddr,
        /// This witness's name, e.g. `witness.regio-utrecht.example/w1`.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Its Ed25519 key (PKCS#8), created on first start.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Its state: the latest size and root per log (SQLite), created on first start.
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
        /// A log to follow, as its vkey (`gezinsdossier public-key --vkey-for-origin`);
        /// repeat for several.
        #[arg(long = "log", value_name = "VKEY", required = true)]
        logs: Vec<String>,
    },
    /// Verify a copy of a data directory offline, trusting only the public key: every
    /// position, every stream's hash chain, the Merkle root at every signed tree head, and
    /// every signature. Exits non-zero naming the first problem.
    Verify {
        /// The (copied) data directory.
        #[arg(long, value_name = "DIR", required_unless_present = "export", conflicts_with = "export")]
        data_dir: Option<PathBuf>,
        /// Verify an export (`gezinsdossier export-log`) instead of a data directory: the
        /// same checks, read from a flat file (faster; no count of shredded payloads).
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
        /// The hex public key (from `gezinsdossier public-key`).
        #[arg(long, value_name = "HEX")]
        public_key: String,
        /// A checkpoint kept from an earlier verification (a signed note): the log must still
        /// reach its size with its root there, or verify fails naming a rollback or a fork.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// A witness whose cosignature the pinned checkpoint must carry, as a vkey
        /// (`<name>+<key id>+<key>`); repeat for several.
        #[arg(long, value_name = "VKEY", requires = "checkpoint")]
        witness_key: Vec<String>,
        /// After a successful verification, write the newest signed checkpoint here, to pass
        /// as --checkpoint next time.
        #[arg(long, value_name = "FILE")]
        save_checkpoint: Option<PathBuf>,
    },
    /// Write the whole log as an export for `verify --export`: every event's canonical bytes
    /// in global order, each preceded by its length (u32, big-endian). No key is needed:
    /// sealed payloads stay sealed.
    ExportLog {
        /// The data directory (or a copy).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Export the access log of a (copied) data directory as NEN 7513 records, to stdout.
    Export {
        /// The data directory (or a copy).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "nen7513-jsonl")]
        format: ExportFormat,
        /// Only this family.
        #[arg(long, value_name = "ID")]
        family: Option<String>,
        /// The key-encryption key's file. The access log is encrypted, so every format but
        /// fhir-consents needs it; without it, fhir-consents leaves the consents' content out.
        #[arg(long, value_name = "FILE")]
        kek_file: Option<PathBuf>,
    },
    /// Subject keys: make a key-encryption key, or rewrap every subject key under the
    /// configured `kek` (reading older ones from `previous_kek_files`). No event is rewritten.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Shred what the retention clocks let go (case record 20 years after its last change,
    /// child protection 30 years after the child turns 18), and record it as events.
    Retention {
        #[command(flatten)]
        config: Box<ConfigFlags>,
        /// Only list what would go.
        #[arg(long)]
        dry_run: bool,
    },
    /// Ask a running server's gRPC health service; exit 0 only when it is SERVING. For
    /// container health checks and probes.
    Health {
        /// `http://host:port`, or `https://host:port` with --ca.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
        /// CA that signed the server certificate (for https).
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// TLS server name to expect.
        #[arg(long, default_value = "localhost")]
        server_name: String,
        /// One service (e.g. gezinsdossier.v1.LogService) instead of the whole server.
        #[arg(long, value_name = "NAME", default_value = "")]
        service: String,
        /// Liveness: exit 0 on any answer, SERVING or NOT_SERVING.
        #[arg(long)]
        alive: bool,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Print a fresh random key-encryption key (64 hex digits).
    NewKek,
    /// Rewrap every live subject key under the configured KEK.
    Rotate(Box<ConfigFlags>),
    /// Write a new tree-head signing key (PKCS#8, mode 0600) for replicas to share, e.g.
    /// from a Secret; prints its public key. Refuses to overwrite.
    NewSigningKey {
        /// The file to create.
        file: PathBuf,
    },
}

async fn run_witness(
    listen: std::net::SocketAddr,
    name: &str,
    key: &std::path::Path,
    state: &std::path::Path,
    logs: &[String],
) -> anyhow::Result<()> {
    use gezinsdossier_ledger::note::{NoteSigner, TYPE_COSIGNATURE_V1, VerifierKey};
    use gezinsdossier_ledger::witness::Witness;
    let _telemetry = telemetry::init(gezinsdossier_services::config::LogFormat::Json, None)?;
    let logs = logs
        .iter()
        .map(|v| VerifierKey::parse(v).map_err(|e| anyhow::anyhow!("--log: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let pkcs8 = treehead::load_or_create_pkcs8(key)?;
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&pkcs8)
        .map_err(|e| anyhow::anyhow!("--key {}: {e}", key.display()))?;
    let signer = NoteSigner::new(name, TYPE_COSIGNATURE_V1, pair).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let witness = std::sync::Arc::new(
        Witness::open(state, signer, logs).map_err(|e| anyhow::anyhow!("--state {}: {e}", state.display()))?,
    );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("witness vkey {}", witness.verifier_key());
    println!("witness listening on {}", listener.local_addr()?);
    gezinsdossier_services::witness_http::serve(witness, listener, server::shutdown_signal()).await;
    Ok(())
}

/// Reads and opens a pinned checkpoint: signed by the log's key, cosigned by each witness.
fn pinned_checkpoint(
    path: &std::path::Path,
    log_key: &[u8],
    witness_keys: &[String],
) -> anyhow::Result<gezinsdossier_ledger::checkpoint::Checkpoint> {
    use gezinsdossier_ledger::{checkpoint, note::VerifierKey};
    let witnesses = witness_keys
        .iter()
        .map(|k| VerifierKey::parse(k).map_err(|e| anyhow::anyhow!("--witness-key: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let (pinned, _) = checkpoint::open(&text, log_key, &witnesses)
        .map_err(|e| anyhow::anyhow!("--checkpoint {}: {e}", path.display()))?;
    Ok(pinned)
}

/// How many payloads are sealed, and how many of those can no longer be opened because the
/// key store beside the data no longer holds their key. Needs no KEK.
fn count_shredded(data_dir: &std::path::Path, file: &LogFile) -> anyhow::Result<(u64, u64)> {
    use gezinsdossier_ledger::store::keys::KeyStore;
    let key_file = data_dir.join(gezinsdossier_ledger::store::keys::sqlite::KEY_FILE);
    let live: std::collections::HashSet<_> = if key_file.exists() {
        let keys = gezinsdossier_ledger::store::keys::sqlite::SqliteKeyStore::open(data_dir)?;
        let all = tokio::runtime::Builder::new_current_thread().build()?.block_on(keys.all())?;
        all.into_iter().filter(|k| !k.is_destroyed()).map(|k| k.key_id).collect()
    } else {
        Default::default()
    };
    let (mut sealed, mut shredded) = (0, 0);
    for event in file.events() {
        let event = event?;
        // The log's own streams (heads, cosignatures, tiles) are never sealed; a tile's
        // hash bytes could even start like a sealed payload.
        if event.stream.as_str().starts_with("log-") {
            continue;
        }
        if let Some(key) = gezinsdossier_ledger::sealing::sealed_with(&event.payload)? {
            sealed += 1;
            shredded += u64::from(!live.contains(&key));
        }
    }
    Ok((sealed, shredded))
}

/// Opens the configured stores and their keyring, for the offline subcommands.
async fn families_for(
    config: &Config,
) -> anyhow::Result<(
    gezinsdossier_ledger::families::Families,
    std::sync::Arc<dyn gezinsdossier_ledger::store::EventStore>,
)> {
    let (store, key_store) = server::open_stores(config).await?;
    let keys = server::keyring(config, key_store)?;
    let clock = std::sync::Arc::new(gezinsdossier_ledger::clock::SystemClock);
    Ok((gezinsdossier_ledger::families::Families::new(store.clone(), clock, keys), store))
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// One JSON object per line.
    Nen7513Jsonl,
    /// Comma-separated, with a header row.
    Nen7513Csv,
    /// A FHIR R4 Bundle of AuditEvent resources.
    FhirAuditEvents,
    /// A FHIR R4 Bundle of Consent resources, with each consent's status now.
    FhirConsents,
}

/// Writes the access log (or the consents) of the store in `data_dir` in `format`.
fn export(
    data_dir: &std::path::Path,
    format: ExportFormat,
    family: Option<&str>,
    kek_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let file = LogFile::open(data_dir)?;
    let opener: Box<dyn gezinsdossier_ledger::sealing::Opener> = match kek_file {
        None if !matches!(format, ExportFormat::FhirConsents) => {
            anyhow::bail!("--kek-file: the access log is encrypted; give the key-encryption key's file")
        }
        None => Box::new(gezinsdossier_ledger::sealing::Plaintext),
        Some(path) => Box::new(offline_keyring(data_dir, path, &file)?),
    };
    if matches!(format, ExportFormat::FhirAuditEvents | ExportFormat::FhirConsents) {
        return export_fhir(&file, format, family, &*opener);
    }
    let stdout = std::io::stdout().lock();
    let mut csv_out = matches!(format, ExportFormat::Nen7513Csv).then(|| csv::Writer::from_writer(stdout));
    let mut json_out = std::io::stdout().lock();
    for event in file.events() {
        let event = event?;
        let Some(owner) = nen7513::family_of_access_log(event.stream.as_str()) else { continue };
        if family.is_some_and(|f| f != owner) {
            continue;
        }
        for record in nen7513::records(owner, std::slice::from_ref(&event), &*opener) {
            match &mut csv_out {
                Some(w) => w.serialize(&record)?,
                None => {
                    serde_json::to_writer(&mut json_out, &record)?;
                    std::io::Write::write_all(&mut json_out, b"\n")?;
                }
            }
        }
    }
    if let Some(mut w) = csv_out {
        w.flush()?;
    }
    Ok(())
}

/// FHIR Bundles, built per family from the log.
/// A keyring over the key file of a (copied) data directory, with every key the log names
/// loaded.
fn offline_keyring(
    data_dir: &std::path::Path,
    kek_file: &std::path::Path,
    file: &LogFile,
) -> anyhow::Result<gezinsdossier_ledger::sealing::Keyring> {
    use gezinsdossier_ledger::sealing::{Kek, Keyring};
    let text =
        std::fs::read_to_string(kek_file).map_err(|e| anyhow::anyhow!("kek file {}: {e}", kek_file.display()))?;
    let kek = Kek::from_hex(&text).map_err(|e| anyhow::anyhow!("kek file {}: {e}", kek_file.display()))?;
    let store = std::sync::Arc::new(gezinsdossier_ledger::store::keys::sqlite::SqliteKeyStore::open(data_dir)?);
    let keyring = Keyring::new(store, vec![kek]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let events: Vec<_> = file.events().collect::<Result<_, _>>()?;
    tokio::runtime::Builder::new_current_thread()
        .build()?
        .block_on(keyring.prefetch(&events))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(keyring)
}

fn export_fhir(
    file: &LogFile,
    format: ExportFormat,
    only: Option<&str>,
    opener: &dyn gezinsdossier_ledger::sealing::Opener,
) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    let mut access_logs: BTreeMap<String, Vec<_>> = BTreeMap::new();
    let mut families: BTreeMap<String, FamilyState> = BTreeMap::new();
    for event in file.events() {
        let event = event?;
        let stream = event.stream.as_str().to_owned();
        if let Some(f) = nen7513::family_of_access_log(&stream) {
            if only.is_none_or(|o| o == f) {
                access_logs.entry(f.to_owned()).or_default().push(event);
            }
        } else if let Some(f) = stream.strip_prefix("family-")
            && only.is_none_or(|o| o == f)
            && matches!(format, ExportFormat::FhirConsents)
        {
            families.entry(f.to_owned()).or_default().apply(&event, opener)?;
        }
    }
    let resources = match format {
        ExportFormat::FhirAuditEvents => {
            access_logs.iter().flat_map(|(f, events)| fhir::audit_events(f, events, opener)).collect()
        }
        _ => {
            let now = chrono::Utc::now();
            families.iter().flat_map(|(f, state)| fhir::consents(f, state, now)).collect()
        }
    };
    serde_json::to_writer_pretty(std::io::stdout().lock(), &fhir::bundle(resources))?;
    println!();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `serve --help` lists every key's variable and default, made from the defaults.
    let command = Cli::command()
        .mut_subcommand("serve", |serve| serve.after_help(gezinsdossier_services::config::environment_help()));
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Serve(flags) => {
            let config = Config::load(&flags)?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let _telemetry = telemetry::init(config.log_format, config.otlp_endpoint.as_deref())?;
                if let Some(addr) = config.metrics_listen {
                    gezinsdossier_services::prometheus::install(addr)?;
                }
                let listener = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
                server::serve(config, listener, server::shutdown_signal()).await
            })
        }
        Command::Demo { dir } => {
            let _telemetry = telemetry::init(gezinsdossier_services::config::LogFormat::Pretty, None)?;
            let temp;
            let dir = match dir {
                Some(d) => d,
                None => {
                    temp = tempfile::tempdir()?;
                    temp.path().to_owned()
                }
            };
            tokio::runtime::Runtime::new()?.block_on(gezinsdossier_services::demo::run(&dir))
        }
        Command::PublicKey { signing_key, vkey_for_origin } => {
            let pkcs8 = std::fs::read(&signing_key)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", signing_key.display()))?;
            let signer = TreeHeadSigner::from_pkcs8(&pkcs8)?;
            match vkey_for_origin {
                Some(origin) => {
                    let signer = signer.with_origin(&origin)?;
                    println!("{}", Checkpoint::log_key(signer.origin(), signer.public_key())?);
                }
                None => println!("{}", hex::encode(signer.public_key())),
            }
            Ok(())
        }
        Command::Witness { listen, name, key, state, logs } => {
            tokio::runtime::Runtime::new()?.block_on(run_witness(listen, &name, &key, &state, &logs))
        }
        Command::ExportLog { data_dir, out } => {
            let file = LogFile::open(&data_dir)?;
            let mut writer = std::io::BufWriter::new(
                std::fs::File::create(&out).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?,
            );
            let heads = file.stream(&treehead::stream())?;
            let n = gezinsdossier_ledger::verify::write_export(&heads, file.events(), &mut writer)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            std::io::Write::flush(&mut writer)?;
            println!("{n} events written to {}", out.display());
            Ok(())
        }
        Command::Verify { data_dir, export, public_key, checkpoint, witness_key, save_checkpoint } => {
            let key = hex::decode(public_key.trim()).map_err(|e| anyhow::anyhow!("--public-key is not hex: {e}"))?;
            let pinned = match &checkpoint {
                Some(path) => Some(pinned_checkpoint(path, &key, &witness_key)?),
                None => None,
            };
            let started = std::time::Instant::now();
            let outcome = match (&data_dir, &export) {
                (_, Some(export)) => {
                    let open = || std::fs::File::open(export).map(|f| std::io::BufReader::with_capacity(1 << 20, f));
                    verify_export(&key, open, pinned.as_ref())
                }
                (Some(dir), None) => {
                    let file = LogFile::open(dir)?;
                    let heads = file.stream(&treehead::stream())?;
                    verify_log_against(&key, &heads, file.events(), pinned.as_ref())
                }
                (None, None) => anyhow::bail!("give --data-dir or --export"),
            };
            let report = outcome.map_err(|tampering| anyhow::anyhow!("TAMPERED: {tampering}"))?;
            println!(
                "OK: {} events in {} streams, {} signed tree heads verified; root {} ({:.0} events/s)",
                report.events,
                report.streams,
                report.tree_heads,
                report.root,
                report.events as f64 / started.elapsed().as_secs_f64().max(1e-9)
            );
            if report.unsigned > 0 {
                println!(
                    "{} events after the newest signed head: their chains hold, but no signature covers them yet",
                    report.unsigned
                );
            }
            if let Some(dir) = &data_dir {
                let (sealed, shredded) = count_shredded(dir, &LogFile::open(dir)?)?;
                println!("{sealed} payloads encrypted, {shredded} of them shredded (their keys destroyed)");
            }
            if let Some(pinned) = &pinned {
                println!("extends the pinned checkpoint of {} at size {}", pinned.origin, pinned.size);
            }
            match (save_checkpoint, report.latest_checkpoint) {
                (Some(path), Some(note)) => {
                    std::fs::write(&path, note).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                    println!("newest checkpoint written to {}", path.display());
                }
                (Some(_), None) => anyhow::bail!("the log has no signed checkpoint yet to save"),
                (None, _) => {}
            }
            Ok(())
        }
        Command::Export { data_dir, format, family, kek_file } => {
            export(&data_dir, format, family.as_deref(), kek_file.as_deref())
        }
        Command::Keys { action: KeysAction::NewKek } => {
            println!("{}", gezinsdossier_ledger::sealing::Kek::generate_hex().map_err(|e| anyhow::anyhow!("{e}"))?);
            Ok(())
        }
        Command::Keys { action: KeysAction::NewSigningKey { file } } => {
            if file.exists() {
                anyhow::bail!("{} exists; a signing key is never overwritten", file.display());
            }
            println!("{}", hex::encode(TreeHeadSigner::load_or_create(&file)?.public_key()));
            Ok(())
        }
        Command::Keys { action: KeysAction::Rotate(flags) } => {
            let config = Config::load(&flags)?;
            tokio::runtime::Runtime::new()?.block_on(async {
                let (families, store) = families_for(&config).await?;
                let n = families.keys().rotate().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                store.shutdown().await;
                println!("rewrapped {n} subject keys under key-encryption key {}", config.keks()?[0].id());
                Ok(())
            })
        }
        Command::Retention { config, dry_run } => {
            let config = Config::load(&config)?;
            tokio::runtime::Runtime::new()?.block_on(async {
                let (families, store) = families_for(&config).await?;
                let outcomes = families.run_retention(&config.retention, dry_run).await?;
                store.shutdown().await;
                let verb = if dry_run { "would shred" } else { "shredded" };
                for o in &outcomes {
                    println!(
                        "{}: {verb} {} keys ({} events, {} access-log lines); {} older access-log lines past their clock kept (written before the log was sealed)",
                        o.owner,
                        o.plan.expired.len(),
                        o.plan.shredded_events,
                        o.access_log_lines_shredded,
                        o.access_log_lines_kept_unsealed
                    );
                }
                println!("{} families or logs with something due", outcomes.len());
                Ok(())
            })
        }
        Command::Health { endpoint, ca, server_name, service, alive } => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(health::check(&endpoint, ca.as_deref(), &server_name, &health::Probe { service, alive }))
        }
        Command::DevCa { out } => {
            let pki = dev_ca::generate(&out, &dev_ca::sample_organisations(), &[])?;
            println!("wrote a development CA and certificates to {}", pki.dir.display());
            println!("registry: {}", pki.registry.display());
            println!(
                "serve with: gezinsdossier serve --tls-cert {} --tls-key {} --tls-client-ca {} --organisations {}",
                pki.server_cert.display(),
                pki.server_key.display(),
                pki.ca_cert.display(),
                pki.registry.display()
            );
            Ok(())
        }
    }
}
