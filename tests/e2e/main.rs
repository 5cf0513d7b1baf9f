//! End-to-end tests: the real server on a loopback port, real gRPC clients, real TLS.
//! One test binary for all of them (one link instead of many).

mod support;

mod audit;
mod authority_matrix;
mod case_append;
mod consent_dossier;
mod corrections;
mod durability;
mod engine_faults;
mod erasure;
mod feed;
mod health;
mod identity;
mod law;
mod operations;
mod replicas;
mod report;
mod report_lines;
mod tiles;
mod verifier;
mod witness;
