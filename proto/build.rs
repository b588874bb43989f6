//! Compiles every `.proto` under `proto/` (walked, so a new file needs no edit here) with the
//! vendored protoc, twice: once with tonic service code (feature `grpc`) and once messages-only
//! (for the wasm filter, which encodes with prost and cannot link tonic).

use std::error::Error;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", root.display());

    let mut protos = Vec::new();
    collect_protos(&root, &mut protos)?;
    protos.sort();
    if protos.is_empty() {
        return Err(format!("no .proto files under {}", root.display()).into());
    }
    let includes = [root, protoc_bin_vendored::include_path()?];
    let protoc = protoc_bin_vendored::protoc_bin_path()?;

    // Full code (messages + tonic client/server) straight in OUT_DIR, so the usual
    // `tonic::include_proto!("gateway.x.v1")` works.
    let mut config = prost_build::Config::new();
    config.protoc_executable(&protoc);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(out_dir.join("gateway_descriptor.bin"))
        .out_dir(&out_dir)
        .compile_with_config(config, &protos, &includes)?;

    // Messages only, used when the `grpc` feature is off (the wasm filter).
    let messages_dir = out_dir.join("messages");
    std::fs::create_dir_all(&messages_dir)?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(&protoc);
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .out_dir(&messages_dir)
        .compile_with_config(config, &protos, &includes)?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Box<dyn Error>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
