//! Running the real clients against a gateway: the Python and TypeScript SDK case scripts under
//! `tests/clients/` and the Claude Code CLI in `-p` mode. Each run is bounded in time, starts from
//! a clean Anthropic environment and returns the client's JSON output for the test to assert on.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::process::Command;

/// How long one client run may take before it counts as hung.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// The variables a developer's shell may carry that would steer a client elsewhere.
const ANTHROPIC_VARS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
];

/// Where the client goes and with which credential.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub base_url: &'a str,
    pub key: &'a str,
    /// Claude Code only: send the key as `Authorization: Bearer` (ANTHROPIC_AUTH_TOKEN).
    pub bearer: bool,
}

/// What a client run printed.
#[derive(Debug)]
pub struct ClientRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl ClientRun {
    /// The last stdout line that parses as JSON.
    pub fn json(&self) -> Result<Value> {
        self.stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str(line.trim()).ok())
            .with_context(|| format!("the client printed no JSON line\n{self}"))
    }
}

impl std::fmt::Display for ClientRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "success: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.success, self.stdout, self.stderr
        )
    }
}

async fn run(mut command: Command, target: &Target<'_>) -> Result<ClientRun> {
    for var in ANTHROPIC_VARS {
        command.env_remove(var);
    }
    command
        .env("ANTHROPIC_BASE_URL", target.base_url)
        .env(
            if target.bearer {
                "ANTHROPIC_AUTH_TOKEN"
            } else {
                "ANTHROPIC_API_KEY"
            },
            target.key,
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().context("starting the client")?;
    let output = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("the client did not finish within {CLIENT_TIMEOUT:?}"))??;
    Ok(ClientRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// `python tests/clients/python_sdk.py CASE`; fails unless it exits 0 with a JSON line.
pub async fn python_sdk(
    python: &Path,
    clients_dir: &Path,
    case: &str,
    model: &str,
    target: &Target<'_>,
) -> Result<Value> {
    let mut command = Command::new(python);
    command
        .arg(clients_dir.join("python_sdk.py"))
        .arg(case)
        .env("GATEWAY_MODEL", model)
        .env("PYTHONUNBUFFERED", "1");
    let run = run(command, target).await?;
    if !run.success {
        bail!("python_sdk.py {case} failed\n{run}");
    }
    run.json()
}

/// `node tests/clients/ts_sdk.mjs CASE`; fails unless it exits 0 with a JSON line.
pub async fn ts_sdk(
    node: &Path,
    clients_dir: &Path,
    case: &str,
    model: &str,
    target: &Target<'_>,
) -> Result<Value> {
    let mut command = Command::new(node);
    command
        .arg(clients_dir.join("ts_sdk.mjs"))
        .arg(case)
        .current_dir(clients_dir)
        .env("GATEWAY_MODEL", model);
    let run = run(command, target).await?;
    if !run.success {
        bail!("ts_sdk.mjs {case} failed\n{run}");
    }
    run.json()
}

/// `claude -p PROMPT --output-format json --allowedTools Bash` with a fresh HOME (also its working
/// directory) and every non-essential call off. Returns the result JSON and the raw run.
pub async fn claude_code(
    clients_dir: &Path,
    prompt: &str,
    target: &Target<'_>,
) -> Result<(Value, ClientRun)> {
    let home = tempfile::tempdir().context("creating a HOME for Claude Code")?;
    let mut command = Command::new(clients_dir.join("node_modules/.bin/claude"));
    command
        .args([
            "-p",
            prompt,
            "--output-format",
            "json",
            "--allowedTools",
            "Bash",
        ])
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("CLAUDE_CODE_MAX_RETRIES", "0");
    let run = run(command, target).await?;
    let json = run.json()?;
    Ok((json, run))
}
