//! Generates Rust from the .proto files with prost and tonic (the local API
//! and the control stream), using the protoc binary shipped in the `protoc-bin-vendored`
//! crate, so no system protoc is needed. `networkdb/networkdb.proto` is not
//! compiled here: the engine (`gossamer-core`) generates its messages itself,
//! with prost alone, so that it never depends on tonic.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let services = [
        "gossamer/tables/v1/tables.proto",
        "gossamer/control/v1/control.proto",
    ];
    for p in &services {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut cfg = prost_build::Config::new();
    cfg.protoc_executable(&protoc);
    tonic_prost_build::configure().compile_with_config(cfg, &services, &["."])?;
    Ok(())
}
