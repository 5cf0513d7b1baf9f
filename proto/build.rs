//! Compiles the public API with `protox`, a pure-Rust protobuf compiler, so a build needs
//! nothing but cargo (no system `protoc`).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "gezinsdossier/v1/common.proto",
        "gezinsdossier/v1/case.proto",
        "gezinsdossier/v1/consent.proto",
        "gezinsdossier/v1/dossier.proto",
        "gezinsdossier/v1/audit.proto",
        "gezinsdossier/v1/report.proto",
        "gezinsdossier/v1/log.proto",
        "gezinsdossier/v1/notice.proto",
        "gezinsdossier/v1/feed.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // The descriptor set also feeds gRPC server reflection.
    std::fs::write(out.join("gezinsdossier_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_build::configure().build_server(true).build_client(true).compile_fds(fds)?;
    Ok(())
}
