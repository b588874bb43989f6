//! Where the end-to-end tests find what lives outside cargo: the variables `cargo xtask test`
//! exports (ENVOY_BIN, GATE_WASM, GATEWAY_PYTHON, CLIENTS_DIR, TRANSLATOR_BIN,
//! GATEWAYCTL_BIN, PTC_SVC_BIN), else the usual
//! places. Under `CI=true` a missing component is an error; elsewhere the test is skipped, loudly.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::process::find_on_path;

/// `CI=true` (or `1`): nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// The profile directory the running test binary was built into (`<target>/debug`).
pub fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test binary")?;
    // <target>/<profile>/deps/<test binary>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("the test binary is not inside a cargo target directory")
}

/// `Some(path)` when found; when not: an error under CI, else `None` after saying what is skipped.
fn found_or_skip(what: &str, found: Option<PathBuf>, hint: &str) -> Result<Option<PathBuf>> {
    match found {
        Some(path) => Ok(Some(path)),
        None if in_ci() => bail!("{what} is missing and CI=true forbids skipping: {hint}"),
        None => {
            #[expect(
                clippy::print_stderr,
                reason = "a skip must be visible in the test output"
            )]
            {
                eprintln!("SKIPPED: {what} not found ({hint})");
            }
            Ok(None)
        }
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .filter(|path| path.exists())
}

const XTASK_HINT: &str = "run `cargo xtask test`, which installs it and exports its path";

/// Envoy 1.40 with the V8 Wasm runtime.
pub fn envoy() -> Result<Option<PathBuf>> {
    let found = env_path("ENVOY_BIN")
        .or_else(|| Some(workspace_root().join(".venv/bin/envoy")).filter(|p| p.is_file()))
        .or_else(|| find_on_path("envoy"));
    found_or_skip("Envoy (ENVOY_BIN)", found, XTASK_HINT)
}

/// The gate filter built for wasm32-wasip1.
pub fn gate_wasm() -> Result<Option<PathBuf>> {
    let found = env_path("GATE_WASM").or_else(|| {
        let target = profile_dir().ok()?.parent()?.to_path_buf();
        Some(target.join("wasm32-wasip1/release/gate_filter.wasm")).filter(|p| p.is_file())
    });
    found_or_skip("the gate filter wasm (GATE_WASM)", found, XTASK_HINT)
}

/// The venv python with the Anthropic SDK.
pub fn python() -> Result<Option<PathBuf>> {
    let found = env_path("GATEWAY_PYTHON")
        .or_else(|| Some(workspace_root().join(".venv/bin/python")).filter(|p| p.is_file()));
    found_or_skip("the Python SDK venv (GATEWAY_PYTHON)", found, XTASK_HINT)
}

/// `tests/clients` with its `node_modules` installed (TypeScript SDK, Claude Code).
pub fn clients_dir() -> Result<Option<PathBuf>> {
    let found = env_path("CLIENTS_DIR")
        .or_else(|| Some(workspace_root().join("tests/clients")))
        .filter(|dir| dir.join("node_modules").is_dir());
    found_or_skip("the Node clients (CLIENTS_DIR)", found, XTASK_HINT)
}

/// `node`, for the TypeScript SDK scripts.
pub fn node() -> Result<Option<PathBuf>> {
    found_or_skip(
        "node",
        find_on_path("node"),
        "apt-get install -y nodejs npm",
    )
}

/// Debian's Chromium for the admin portal's browser test (`CHROMIUM`, else `/usr/bin/chromium`,
/// else `chromium` on PATH). Nothing downloads a browser: playwright-core drives this one.
pub fn chromium() -> Result<Option<PathBuf>> {
    let found = env_path("CHROMIUM")
        .or_else(|| Some(PathBuf::from("/usr/bin/chromium")).filter(|p| p.is_file()))
        .or_else(|| find_on_path("chromium"));
    found_or_skip(
        "Chromium (CHROMIUM)",
        found,
        "apt-get install -y chromium (the portal test drives it with playwright-core)",
    )
}

/// The translator-svc binary: TRANSLATOR_BIN, else the one beside this test binary, built first
/// when missing.
pub fn translator_bin() -> Result<PathBuf> {
    package_bin("TRANSLATOR_BIN", "translator-svc")
}

/// The operator CLI (built from translator-svc): GATEWAYCTL_BIN, else the one beside this test
/// binary, built first when missing.
pub fn gatewayctl_bin() -> Result<PathBuf> {
    package_bin("GATEWAYCTL_BIN", "gatewayctl")
}

/// The ptc-svc binary (the PTC sandbox service): PTC_SVC_BIN, else the one beside this test
/// binary, built first (`cargo build -p ptc-svc --bins`) when missing.
pub fn ptc_svc_bin() -> Result<PathBuf> {
    built_bin("PTC_SVC_BIN", "ptc-svc", "ptc-svc")
}

/// A Docker engine to run sandboxes on (`DOCKER_HOST` or the default socket). `Ok(false)`:
/// absent outside CI (the reason was printed); under `CI=true` absence is an error.
pub fn docker_engine() -> Result<bool> {
    let found = std::env::var_os("DOCKER_HOST")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/var/run/docker.sock")).filter(|p| p.exists()));
    Ok(found_or_skip(
        "a Docker engine (DOCKER_HOST or /var/run/docker.sock)",
        found,
        "start dockerd; the PTC sandbox runs on it",
    )?
    .is_some())
}

/// A translator-svc binary named `name`: `$var`, else `<target>/<profile>/name`, built with
/// `cargo build -p translator-svc --bins` when missing.
fn package_bin(var: &str, name: &str) -> Result<PathBuf> {
    built_bin(var, name, "translator-svc")
}

/// `$var`, else `<target>/<profile>/name`, built with `cargo build -p package --bins` when
/// missing.
fn built_bin(var: &str, name: &str, package: &str) -> Result<PathBuf> {
    if let Some(path) = env_path(var) {
        return Ok(path);
    }
    let path = profile_dir()?.join(name);
    if !path.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", package, "--bins"])
            .current_dir(workspace_root())
            .status()
            .with_context(|| format!("running cargo build -p {package} --bins"))?;
        if !status.success() || !path.is_file() {
            bail!(
                "cargo build -p {package} --bins did not produce {}",
                path.display()
            );
        }
    }
    Ok(path)
}
