//! Generates the gRPC code from `proto/` with tonic-prost-build. Uses `$PROTOC` when set and
//! the protoc shipped in the `protoc-bin-vendored` crate otherwise, so no system package is
//! needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-env-changed=PROTOC");
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the env.
        unsafe { std::env::set_var("PROTOC", protoc) };
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("scopepilot_descriptor.bin"))
        // Frame pixels as `bytes::Bytes`: one encoding of a frame is shared, not copied, by
        // every subscriber that wants it in the same shape.
        .bytes(".scopepilot.v1.Frame.data")
        .compile_protos(
            &[
                "proto/scopepilot/v1/acquisition.proto",
                "proto/scopepilot/v1/frames.proto",
                "proto/scopepilot/v1/models.proto",
                "proto/scopepilot/v1/recording.proto",
                "proto/scopepilot/v1/events.proto",
                "proto/scopepilot/v1/rules.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
