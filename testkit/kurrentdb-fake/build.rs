//! Compiles the server side of KurrentDB's `Streams` API from the protos the official
//! client ships (copied into `protos/`, MIT and Apache-2.0 as marked in each file).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["protos/streams.proto"];
    println!("cargo:rerun-if-changed=protos");
    let fds = protox::compile(files, ["protos"])?;
    tonic_build::configure().build_server(true).build_client(false).compile_fds(fds)?;
    Ok(())
}
