//! Generates the NetworkDB gossip messages (`tables::proto`) with prost from
//! `proto/networkdb/networkdb.proto`, using the protoc binary shipped in the
//! `protoc-bin-vendored` crate, so no system protoc is needed. Messages only:
//! the core carries no gRPC service, so it needs neither tonic nor its
//! transport (`gossamer-proto` generates the services for the shell).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let root = "../../proto";
    let file = "../../proto/networkdb/networkdb.proto";
    println!("cargo:rerun-if-changed={file}");
    prost_build::Config::new()
        .protoc_executable(&protoc)
        .compile_protos(&[file], &[root])?;
    Ok(())
}
