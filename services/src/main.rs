//! The `gezinsdossier` binary: `serve` runs the service, `dev-ca` makes development
//! certificates.

use clap::{Parser, Subcommand};
use gezinsdossier_ledger::store::sqlite::LogFile;
use gezinsdossier_ledger::treehead::{self, TreeHeadSigner};
use gezinsdossier_ledger::verify::verify_log;
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
    /// Run the gRPC service (on the embedded store, or on PostgreSQL when configured).
    Serve(Box<ConfigFlags>),
    /// Create a development CA, a server certificate, organisation client certificates and
    /// a matching organisation registry.
    DevCa {
        /// Directory to write into.
        #[arg(long, default_value = "deploy/dev-certs")]
        out: PathBuf,
    },
    /// Print the hex Ed25519 public key that verifies this service's tree heads.
    PublicKey {
        /// The signing key file [default: ./data/treehead.key].
        #[arg(long, value_name = "FILE", default_value = "data/treehead.key")]
        signing_key: PathBuf,
    },
    /// Verify a copy of a data directory offline, trusting only the public key: every
    /// position, every stream's hash chain, the Merkle root at every signed tree head, and
    /// every signature. Exits non-zero naming the first problem.
    Verify {
        /// The (copied) data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The hex public key (from `gezinsdossier public-key`).
        #[arg(long, value_name = "HEX")]
        public_key: String,
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
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(flags) => {
            let config = Config::load(&flags)?;
            telemetry::init(config.log_format);
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
                server::serve(config, listener, server::shutdown_signal()).await
            })
        }
        Command::PublicKey { signing_key } => {
            let pkcs8 = std::fs::read(&signing_key)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", signing_key.display()))?;
            println!("{}", hex::encode(TreeHeadSigner::from_pkcs8(&pkcs8)?.public_key()));
            Ok(())
        }
        Command::Verify { data_dir, public_key } => {
            let key = hex::decode(public_key.trim()).map_err(|e| anyhow::anyhow!("--public-key is not hex: {e}"))?;
            let file = LogFile::open(&data_dir)?;
            let heads = file.stream(&treehead::stream())?;
            let started = std::time::Instant::now();
            match verify_log(&key, &heads, file.events()) {
                Ok(report) => {
                    println!(
                        "OK: {} events in {} streams, {} signed tree heads verified; root {} ({:.0} events/s)",
                        report.events,
                        report.streams,
                        report.tree_heads,
                        report.root,
                        report.events as f64 / started.elapsed().as_secs_f64().max(1e-9)
                    );
                    Ok(())
                }
                Err(tampering) => anyhow::bail!("TAMPERED: {tampering}"),
            }
        }
        Command::Health { endpoint, ca, server_name } => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(health::check(&endpoint, ca.as_deref(), &server_name))
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
