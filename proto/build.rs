//! Generates Rust from the .proto files with prost (and tonic for the local
//! API service), using the protoc binary shipped in the
//! `protoc-bin-vendored` crate, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let messages = ["networkdb/networkdb.proto"];
    let services = ["gossamer/tables/v1/tables.proto"];
    for p in messages.iter().chain(&services) {
        println!("cargo:rerun-if-changed={p}");
    }
    prost_build::Config::new()
        .protoc_executable(&protoc)
        .compile_protos(&messages, &["."])?;
    let mut cfg = prost_build::Config::new();
    cfg.protoc_executable(&protoc);
    tonic_prost_build::configure().compile_with_config(cfg, &services, &["."])?;
    Ok(())
}
