//! `cargo xtask test` and `cargo xtask lint`: install what the tests need, build what they spawn,
//! export where it is, then run the whole workspace suite (nextest when present).

use std::path::Path;

use anyhow::Result;

use crate::{cmd, tools};

fn has_nextest(root: &Path) -> bool {
    cmd::output(cmd::cargo(root).args(["nextest", "--version"])).is_ok()
}

pub fn run(root: &Path, passthrough: &[String]) -> Result<()> {
    let tools = tools::ensure_test_tools(root)?;
    let wasm = tools::build_filter(root)?;
    crate::deploy_check::run(root)?;
    ensure_sandbox_image(root)?;
    // `cargo test --workspace` (and nextest) builds every workspace binary before running any
    // test, with the same features as the tests: the end-to-end tests spawn those, fresh.
    let bin_dir = tools::target_dir(root)?.join("debug");

    let mut command = cmd::cargo(root);
    if has_nextest(root) {
        command.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        command.args(["test", "--workspace", "--no-fail-fast"]);
    }
    command
        .args(passthrough)
        .env("ENVOY_BIN", &tools.envoy)
        .env("GATE_WASM", &wasm)
        .env("GATEWAY_PYTHON", &tools.python)
        .env("CLIENTS_DIR", &tools.clients_dir)
        .env("TRANSLATOR_BIN", bin_dir.join("translator-svc"))
        .env("GATEWAYCTL_BIN", bin_dir.join("gatewayctl"))
        .env("PTC_SVC_BIN", bin_dir.join("ptc-svc"))
        .env("FAKE_BEDROCK_BIN", bin_dir.join("fake-bedrock"));
    eprintln!(
        "xtask: ENVOY_BIN={} GATE_WASM={} GATEWAY_PYTHON={} CLIENTS_DIR={}",
        tools.envoy.display(),
        wasm.display(),
        tools.python.display(),
        tools.clients_dir.display()
    );
    cmd::run(&mut command)
}

/// The PTC sandbox tests need a Docker engine and the offline sandbox image. `.ci/run` starts
/// dockerd; here the image is built (idempotent: a no-op when the runner is unchanged).
fn ensure_sandbox_image(root: &Path) -> Result<()> {
    if !tools::docker_engine_up() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            anyhow::bail!("no Docker engine is reachable: the sandbox tests need one in CI");
        }
        eprintln!("xtask: no Docker engine reachable; the sandbox tests will skip");
        return Ok(());
    }
    cmd::run(cmd::cargo(root).args(["run", "-q", "-p", "ptc-svc", "--bin", "ptc-image"]))
}

pub fn lint(root: &Path) -> Result<()> {
    cmd::run(cmd::cargo(root).args(["fmt", "--all", "--", "--check"]))?;
    cmd::run(cmd::cargo(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The filter ships as wasm: lint it for the target it runs on too.
    tools::ensure_wasm_target()?;
    cmd::run(cmd::cargo(root).args([
        "clippy",
        "-p",
        "gate-filter",
        "--target",
        tools::WASM_TARGET,
        "--",
        "-D",
        "warnings",
    ]))
}
