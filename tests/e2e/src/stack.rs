//! The whole gateway for one test: the fake Bedrock (in-process), translator-svc (the built
//! binary), real Envoy with the rendered template and the real wasm filter, and on request
//! ratelimit-svc (in-process, in-memory store) and ptc-svc (the built binary, sandboxes on the
//! local Docker engine), all on ephemeral loopback ports. Readiness is awaited, never slept for; logs go to a temporary directory and are
//! printed when the test fails; everything stops when the `Stack` is dropped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use fake_bedrock::FakeBedrock;
use ratelimit_svc::limiter::ManualClock;
use tempfile::TempDir;

use crate::envoy::{Envoy, EnvoyOptions};
use crate::process::ChildProcess;
use crate::tools;

/// Which Bedrock API translator-svc uses for Claude models (`CLAUDE_API`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaudeApi {
    Invoke,
    Converse,
}

impl ClaudeApi {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invoke => "invoke",
            Self::Converse => "converse",
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub claude_api: ClaudeApi,
    /// Extra translator-svc variables (they win over the defaults below).
    pub translator_env: Vec<(String, String)>,
    /// Also start ratelimit-svc and render Envoy with the rate-limit filter (per-key rpm/tpm).
    pub with_ratelimit: bool,
    /// Also start ptc-svc (Programmatic Tool Calling) and point translator-svc at it
    /// (`PTC_ENDPOINT`). Needs a Docker engine and the `gateway-ptc-sandbox` image.
    pub with_ptc: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            claude_api: ClaudeApi::Invoke,
            translator_env: Vec::new(),
            with_ratelimit: false,
            with_ptc: false,
        }
    }
}

impl StackOptions {
    pub fn api(claude_api: ClaudeApi) -> Self {
        Self {
            claude_api,
            ..Self::default()
        }
    }

    pub fn translator_env(mut self, name: &str, value: &str) -> Self {
        self.translator_env
            .push((name.to_string(), value.to_string()));
        self
    }

    /// Start ratelimit-svc too: in-process, in-memory counters, its clock frozen at start so a
    /// key's minute never refills during the test.
    pub fn with_ratelimit(mut self) -> Self {
        self.with_ratelimit = true;
        self
    }

    /// Start ptc-svc too (the built binary, on an ephemeral port) and enable PTC in
    /// translator-svc.
    pub fn with_ptc(mut self) -> Self {
        self.with_ptc = true;
        self
    }
}

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running gateway. Field order is drop order: Envoy stops first, the fake last.
pub struct Stack {
    envoy: Envoy,
    translator: ChildProcess,
    /// In-process ratelimit-svc (when asked for); stopped when the stack is dropped.
    ratelimit: Option<ratelimit_svc::server::Running>,
    /// ptc-svc (when asked for); terminated gracefully so it removes its containers.
    ptc: Option<ChildProcess>,
    /// The fake Bedrock translator-svc calls; tests enqueue scenarios and read recorded requests.
    pub fake: FakeBedrock,
    /// `http://127.0.0.1:PORT` of the Envoy listener: what clients use as ANTHROPIC_BASE_URL.
    pub url: String,
    /// The gateway's master key (`MASTER_API_KEY`).
    pub master_key: String,
    /// The secret Envoy adds as `x-gw-internal-secret`.
    pub internal_secret: String,
    /// `http://127.0.0.1:PORT` of translator-svc itself, behind Envoy.
    pub translator_url: String,
    logs: TempDir,
}

impl Stack {
    /// Starts fake Bedrock, ptc-svc and ratelimit-svc when asked, translator-svc, and Envoy. `Ok(None)`: a component is missing outside CI
    /// and the test should return (the reason was printed); under `CI=true` that is an error.
    pub async fn start(options: StackOptions) -> Result<Option<Self>> {
        let (Some(envoy_bin), Some(wasm)) = (tools::envoy()?, tools::gate_wasm()?) else {
            return Ok(None);
        };
        let translator_bin = tools::translator_bin()?;
        let ptc_bin = if options.with_ptc {
            if !tools::docker_engine()? {
                return Ok(None);
            }
            Some(tools::ptc_svc_bin()?)
        } else {
            None
        };
        let logs = tempfile::Builder::new()
            .prefix("gateway-e2e-")
            .tempdir()
            .context("creating the log directory")?;
        let fake = FakeBedrock::start()
            .await
            .context("starting the fake Bedrock")?;
        let master_key = format!("sk-gw-test-{}", random_token(24));
        let internal_secret = random_token(40);

        let mut env: Vec<(String, String)> = [
            ("TRANSLATOR_LISTEN", "127.0.0.1:0".to_string()),
            ("MASTER_API_KEY", master_key.clone()),
            ("GATEWAY_INTERNAL_SECRET", internal_secret.clone()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.url()),
            ("AWS_ACCESS_KEY_ID", "AKIDFAKEBEDROCK".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "fake-secret".to_string()),
            ("CLAUDE_API", options.claude_api.as_str().to_string()),
            ("LOG_FORMAT", "text".to_string()),
            ("NO_COLOR", "1".to_string()),
            // The embedded key store (same code as a local run), private to this stack.
            (
                "GATEWAY_DATA_DIR",
                logs.path().join("data").display().to_string(),
            ),
            (
                "RUST_LOG",
                std::env::var("E2E_TRANSLATOR_LOG").unwrap_or_else(|_| "info".to_string()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let ptc = match &ptc_bin {
            Some(bin) => {
                let (process, endpoint) = start_ptc(bin, logs.path()).await?;
                env.push(("PTC_ENDPOINT".to_string(), endpoint));
                Some(process)
            }
            None => None,
        };
        env.extend(options.translator_env.iter().cloned());
        let mut translator =
            ChildProcess::spawn("translator-svc", &translator_bin, &[], &env, logs.path())?;
        let addr = translator
            .wait_for_line("translator-svc listening on", READY_TIMEOUT)
            .await?;
        let addr = addr
            .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
            .next()
            .unwrap_or_default()
            .trim_start_matches("http://")
            .to_string();
        let translator_url = format!("http://{addr}");
        wait_ready(&mut translator, &format!("{translator_url}/ready")).await?;

        let ratelimit = if options.with_ratelimit {
            let mut config = ratelimit_svc::config::Config::from_lookup(|_| None)
                .context("ratelimit-svc config")?;
            config.listen = "127.0.0.1:0".parse()?;
            config.http_listen = "127.0.0.1:0".parse()?;
            let clock = ManualClock::starting_now();
            Some(
                ratelimit_svc::server::start(&config, Arc::new(clock))
                    .await
                    .context("starting ratelimit-svc")?,
            )
        } else {
            None
        };

        let envoy = Envoy::start(EnvoyOptions {
            envoy_bin,
            wasm,
            translator_addr: addr
                .parse()
                .context("translator-svc printed a bad address")?,
            internal_secret: internal_secret.clone(),
            ratelimit_addr: ratelimit.as_ref().map(|running| running.grpc_addr),
            work_dir: logs.path().to_path_buf(),
        })
        .await
        .map_err(|error| error.context(translator.log_tail(40)))?;
        let url = envoy.url();
        Ok(Some(Self {
            envoy,
            translator,
            ratelimit,
            ptc,
            fake,
            url,
            master_key,
            internal_secret,
            translator_url,
            logs,
        }))
    }

    /// A client for raw HTTP against the gateway (no retries, no default headers).
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT` of Envoy's admin interface (stats, listeners).
    pub fn envoy_admin_url(&self) -> String {
        self.envoy.admin_url()
    }

    /// (name, pid) of each process of the chain, for memory readings.
    pub fn pids(&self) -> Vec<(&str, u32)> {
        let mut pids = vec![
            ("envoy", self.envoy.pid()),
            (self.translator.name(), self.translator.pid()),
        ];
        if let Some(ptc) = &self.ptc {
            pids.push((ptc.name(), ptc.pid()));
        }
        pids
    }

    /// Where the logs are written.
    pub fn log_dir(&self) -> PathBuf {
        self.logs.path().to_path_buf()
    }

    /// The tail of every log, for failure messages.
    pub fn logs(&self) -> String {
        let ptc = self
            .ptc
            .as_ref()
            .map(|ptc| format!("\n{}", ptc.log_tail(60)))
            .unwrap_or_default();
        format!(
            "{}\n{}{ptc}",
            self.translator.log_tail(80),
            self.envoy.log_tail(80)
        )
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(ratelimit) = &self.ratelimit {
            let _ = ratelimit.stopper().send(true);
        }
        if std::thread::panicking() {
            #[expect(
                clippy::print_stderr,
                reason = "logs of a failed test belong in its output"
            )]
            {
                eprintln!(
                    "\n===== gateway logs ({}) =====\n{}",
                    self.logs.path().display(),
                    self.logs()
                );
            }
        }
        // After the logs: SIGTERM lets ptc-svc remove its sandbox containers.
        if let Some(ptc) = &mut self.ptc {
            ptc.terminate(Duration::from_secs(20));
        }
    }
}

/// Starts ptc-svc on an ephemeral loopback port (its own replica id, so its containers are its
/// own) and returns it with its `http://` endpoint once it is listening.
async fn start_ptc(
    bin: &std::path::Path,
    log_dir: &std::path::Path,
) -> Result<(ChildProcess, String)> {
    let env: Vec<(String, String)> = [
        ("PTC_LISTEN", "127.0.0.1:0".to_string()),
        (
            "PTC_REPLICA_ID",
            format!("gateway-e2e-{}-{}", std::process::id(), random_token(8)),
        ),
        ("PTC_DRAIN_S", "2".to_string()),
        ("LOG_FORMAT", "text".to_string()),
        ("NO_COLOR", "1".to_string()),
        ("RUST_LOG", "info".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut ptc = ChildProcess::spawn("ptc-svc", bin, &[], &env, log_dir)?;
    let line = ptc
        .wait_for_line("ptc-svc listening", READY_TIMEOUT)
        .await?;
    let addr = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("local_addr="))
        .map(|addr| addr.trim_matches('"').to_string())
        .with_context(|| {
            format!(
                "ptc-svc printed no local_addr: {line}\n{}",
                ptc.log_tail(20)
            )
        })?;
    Ok((ptc, format!("http://{addr}")))
}

async fn wait_ready(process: &mut ChildProcess, url: &str) -> Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        process.check_running()?;
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "{url} not ready within {READY_TIMEOUT:?}\n{}",
                process.log_tail(60)
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `n` random lowercase alphanumerics: test keys and secrets.
fn random_token(n: usize) -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(n)
        .map(|b| char::from(b).to_ascii_lowercase())
        .collect()
}
