//! # gezinsdossier-proto
//!
//! The public gRPC API, package `gezinsdossier.v1` (the `.proto` files beside this crate),
//! and the one place where wire messages become ledger types and back.
//!
//! ## Layout
//! - [`v1`]: the generated messages, clients and servers.
//! - [`convert`]: inbound validation (`wire → ledger`, naming the offending field) and
//!   outbound conversions (`ledger → wire`).
//! - [`FILE_DESCRIPTOR_SET`]: the compiled descriptors, for server reflection.

pub mod convert;

/// Generated code for package `gezinsdossier.v1`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("gezinsdossier.v1");
}

/// Encoded `FileDescriptorSet` of the whole API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gezinsdossier_descriptor.bin"));
