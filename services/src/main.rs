//! The `gezinsdossier` binary: `serve` runs the service, `dev-ca` makes development
//! certificates.

use clap::{Parser, Subcommand};
use gezinsdossier_services::config::{Config, ConfigFlags};
use gezinsdossier_services::identity::dev_ca;
use gezinsdossier_services::{server, telemetry};
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
