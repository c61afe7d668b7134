//! Generates the convoy.v1 types and services with tonic/prost, using the vendored
//! `protoc` (no system install), and writes a descriptor set for server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    // `std::env::set_var("PROTOC", ..)` needs `unsafe` in edition 2024; the builder
    // takes the path directly instead.
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let files = [
        "proto/convoy/v1/releases.proto",
        "proto/convoy/v1/clusters.proto",
        "proto/convoy/v1/agent.proto",
        "proto/convoy/v1/diff.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    let includes = [PathBuf::from("proto"), include];
    let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
    tonic_prost_build::configure()
        // Smaller per-call buffers than tonic's (see `codec` in src/lib.rs).
        .codec_path("crate::codec::ConvoyCodec")
        .file_descriptor_set_path(out.join("convoy_v1_descriptor.bin"))
        .compile_with_config(config, &files, &includes)?;
    Ok(())
}
