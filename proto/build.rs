//! Generates Rust from the .proto files with prost, using the protoc binary
//! shipped in the `protoc-bin-vendored` crate, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let protos = ["networkdb/networkdb.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    prost_build::Config::new()
        .protoc_executable(protoc)
        .compile_protos(&protos, &["."])?;
    Ok(())
}
