//! Compiles `proto/` with protox (no system `protoc` needed) and writes the
//! encoded descriptor set for gRPC reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = "../proto";
    let file = "../proto/otc/v1/otc.proto";
    println!("cargo:rerun-if-changed={file}");
    let fds = protox::compile([file], [proto_dir])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("otc_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
