//! The `gezinsdossier` binary: `serve` runs the service, `dev-ca` makes development
//! certificates.

use clap::{Parser, Subcommand};
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
