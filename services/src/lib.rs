//! # gezinsdossier-services
//!
//! The network face of gezinsdossier: tonic services over the `ledger` crate, identity,
//! configuration, and the `gezinsdossier` binary.
//!
//! ## Layout
//! - [`server`]: assembles the gRPC server (services, health, reflection, limits, shutdown).
//! - [`audit_service`]: the AuditService (access-log queries, review queue).
//! - [`case_service`]: the CaseService (`AppendEvents`).
//! - [`consent_service`]: the ConsentService (consents, legal bases, `CheckAccess`).
//! - [`dossier_service`]: the DossierService (`GetDossier`, `InvestigateDossier`).
//! - [`report_service`]: the AccessReportService (who saw what, for family members).
//! - [`report_page`]: that report as a printable page in Dutch (B1) and English.
//! - [`demo`]: the `demo` tour (one family through real gRPC, then verify and tamper).
//! - [`log_service`]: the LogService (signed tree heads, inclusion and consistency proofs).
//! - [`cosigning`]: asks the configured witnesses to cosign each new head.
//! - [`tiles_http`]: the log as tlog-tiles resources (checkpoint, tiles) over HTTP.
//! - [`http1`]: the HTTP/1.1 server loop the witness and the tiles share.
//! - [`witness_http`]: the tlog-witness protocol over HTTP (the `witness` subcommand's
//!   server, and the client `cosigning` uses).
//! - [`feed_service`]: the FeedService (a family's changes streamed, resume tokens).
//! - [`feed_router`]: routes each commit once to the feed subscribers it may concern.
//! - [`notice_service`]: the NoticeService (corrections told to earlier recipients).
//! - [`readiness`]: what gRPC health says (commits, proof index, tree-head lag, shutdown).
//! - [`proofs`]: inclusion proofs attached to audit rows and report lines.
//! - [`identity`]: mTLS organisation registry, the authentication interceptor, dev CA.
//! - [`error`]: service errors and their single mapping to gRPC status codes.
//! - [`limits`]: oversized requests reported as RESOURCE_EXHAUSTED.
//! - [`health`]: the `gezinsdossier health` probe client.
//! - [`config`]: defaults → TOML file → environment → flags.
//! - [`telemetry`]: structured logs without personal data.

pub mod audit_service;
pub mod case_service;
pub mod config;
pub mod consent_service;
pub mod cosigning;
pub mod demo;
pub mod dossier_service;
pub mod error;
pub mod feed_router;
pub mod feed_service;
pub mod health;
pub mod http1;
pub mod identity;
pub mod limits;
pub mod log_service;
pub mod notice_service;
pub mod prometheus;
pub mod proofs;
pub mod readiness;
pub mod report_page;
pub mod report_service;
pub mod request_log;
pub mod server;
pub mod telemetry;
pub mod tiles_http;
pub mod witness_http;
