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
        "gossamer/infos/v1/infos.proto",
    ];
    println!("cargo:rerun-if-changed=build.rs");
    for p in &services {
        println!("cargo:rerun-if-changed={p}");
    }
    // Each service with its own descriptors, for gRPC server reflection
    // (grpcurl): a server lists only what it serves.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    for (proto, descriptors) in [
        (services[0], "tables_descriptor.bin"),
        (services[1], "control_descriptor.bin"),
        (services[2], "infos_descriptor.bin"),
    ] {
        let mut cfg = prost_build::Config::new();
        cfg.protoc_executable(&protoc);
        tonic_prost_build::configure()
            .file_descriptor_set_path(out.join(descriptors))
            .compile_with_config(cfg, &[proto], &["."])?;
    }
    Ok(())
}
