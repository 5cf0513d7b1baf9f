//! The real `gezinsdossier` binary as a child process, for the benchmarks that measure what
//! an operator sees (resident memory, restarts, shutdown), in insecure dev mode on the
//! embedded store.

#![allow(dead_code)]

use gezinsdossier_proto::v1 as pb;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

/// The organisation the benchmarks speak for (insecure dev mode takes it from metadata).
pub const ORG: &str = "ggz-delfland";

/// A running server process.
pub struct ServerProcess {
    child: std::process::Child,
    endpoint: String,
}

impl ServerProcess {
    /// Starts the binary on a free port with its data under `data`, logging errors only.
    /// `GZD_BENCH_SERVER_BIN` names another build of the binary to run instead (an A/B, or
    /// one built for a profiler).
    pub fn start(data: &std::path::Path) -> Self {
        let binary = std::env::var_os("GZD_BENCH_SERVER_BIN")
            .map_or_else(|| env!("CARGO_BIN_EXE_gezinsdossier").into(), std::path::PathBuf::from);
        let mut command = std::process::Command::new(binary);
        command
            .args(["serve", "--insecure-dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let mut child = command.spawn().expect("start the binary");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("address");
        let addr = line.trim().rsplit(' ').next().expect("address").to_owned();
        Self { child, endpoint: format!("http://{addr}") }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now (`VmRSS`), in MiB.
    pub fn rss_mib(&self) -> f64 {
        self.status("VmRSS:") / 1024.0
    }

    /// The process's threads now.
    pub fn threads(&self) -> f64 {
        self.status("Threads:")
    }

    /// The number a line of `/proc/<pid>/status` starts with (NaN once it is gone).
    fn status(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(f64::NAN)
    }

    /// Sends SIGTERM and waits for the process to exit; how long that took.
    pub fn terminate(mut self) -> Duration {
        self.signal("-TERM")
    }

    /// Sends SIGKILL (as a crash or an OOM kill would) and reaps the process.
    pub fn kill(mut self) {
        self.signal("-KILL");
    }

    fn signal(&mut self, signal: &str) -> Duration {
        let sent = Instant::now();
        let _ = std::process::Command::new("kill").arg(signal).arg(self.pid().to_string()).status();
        let _ = self.child.wait();
        sent.elapsed()
    }

    pub async fn connect(&self) -> Channel {
        let endpoint = Endpoint::from_shared(self.endpoint.clone()).expect("endpoint");
        for _ in 0..200 {
            if let Ok(channel) = endpoint.connect().await {
                return channel;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not start");
    }
}

/// Waits until health says the log service is SERVING (its proof index is ready).
pub async fn wait_for_log_service(channel: &Channel) {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let mut health = HealthClient::new(channel.clone());
    loop {
        let request = HealthCheckRequest { service: "gezinsdossier.v1.LogService".into() };
        if health.check(request).await.is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A professional of `ORG`, as insecure dev mode reads them from metadata.
// tonic's interceptor signature fixes the error type.
#[allow(clippy::result_large_err)]
pub fn dev_professional(mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    req.metadata_mut().insert("x-organisation-id", ORG.parse().expect("ascii"));
    req.metadata_mut().insert("x-professional-id", "bench".parse().expect("ascii"));
    req.metadata_mut().insert("x-professional-role", "regiebehandelaar".parse().expect("ascii"));
    Ok(req)
}

/// A care dossier request for the family.
pub fn dossier_request(family: String) -> pb::GetDossierRequest {
    pb::GetDossierRequest { family_id: family, purpose: pb::Purpose::Care as i32, break_the_glass: None }
}
