//! `ptc-image`: builds the offline sandbox image (debootstrap + runner + `docker import`),
//! skipping the work when the image already carries the embedded runner. For CI, `cargo xtask up`
//! and air-gapped hosts; production images come from `ptc-svc/sandbox/Dockerfile`.
//!
//! Usage: ptc-image [--image NAME] [--cache-dir DIR] [--mirror URL] [--suite SUITE]
//!        ptc-image --print-runner-sha256
//! Defaults: PTC_IMAGE or gateway-ptc-sandbox:latest; <workspace>/target/ptc-sandbox; the first
//! Debian mirror in /etc/apt/sources*; bookworm. Needs root and a Docker engine (DOCKER_HOST).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use ptc_svc::image::{
    BuildResult, DEFAULT_MIRROR, OfflineImage, ensure_offline_image, host_mirror,
};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(message) => {
            let _ = writeln!(std::io::stdout(), "{message}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "ptc-image: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<String> {
    let mut spec = OfflineImage {
        image: std::env::var("PTC_IMAGE")
            .ok()
            .filter(|image| !image.is_empty())
            .unwrap_or_else(|| ptc_svc::config::DEFAULT_IMAGE.to_owned()),
        cache_dir: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/ptc-sandbox"
        )),
        mirror: host_mirror().unwrap_or_else(|| DEFAULT_MIRROR.to_owned()),
        suite: "bookworm".to_owned(),
        uid: 65534,
        gid: 65534,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--image" => spec.image = value()?,
            "--cache-dir" => spec.cache_dir = PathBuf::from(value()?),
            "--mirror" => spec.mirror = value()?,
            "--suite" => spec.suite = value()?,
            "--print-runner-sha256" => return Ok(ptc_svc::runner::runner_sha256()),
            other => {
                bail!("unknown argument {other:?} (see the header of ptc-svc/src/bin/ptc-image.rs)")
            }
        }
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .try_init()
        .ok();
    let docker = bollard::Docker::connect_with_defaults()
        .context("cannot reach the container engine")?
        .negotiate_version()
        .await
        .context("cannot reach the container engine")?;
    Ok(match ensure_offline_image(&docker, &spec).await? {
        BuildResult::UpToDate => format!(
            "{}: up to date (runner {})",
            spec.image,
            ptc_svc::runner::runner_version()
        ),
        BuildResult::Built {
            debootstrapped,
            seconds,
        } => format!(
            "{}: built in {seconds}s{} (runner {})",
            spec.image,
            if debootstrapped {
                " including debootstrap"
            } else {
                ""
            },
            ptc_svc::runner::runner_version()
        ),
    })
}
