//! Starting the gateway's parts under a `Supervisor`: the fake Bedrock binary, translator-svc and
//! Envoy with its rendered config, each awaited until it is ready. Shared by `up` and `bench`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use xtask::envoy_render::{EnvoyVars, render_envoy};

use crate::stack::{Spawn, Supervisor};

/// What the Envoy config is rendered from.
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub admin_port: u16,
    /// The Prometheus scrape listener (`GET /stats/prometheus` only).
    pub stats_port: u16,
    pub translator: SocketAddr,
    pub wasm: PathBuf,
    pub internal_secret: String,
    /// ratelimit-svc's gRPC address; `None` renders the config without rate limiting.
    pub ratelimit: Option<SocketAddr>,
}

/// Starts `fake-bedrock --listen 127.0.0.1:0 [extra args]`; returns its URL and pid.
pub async fn start_fake_bedrock(
    supervisor: &mut Supervisor,
    bin_dir: &Path,
    extra_args: &[&str],
    timeout: Duration,
) -> Result<(String, u32)> {
    let mut args: Vec<std::ffi::OsString> = vec!["--listen".into(), "127.0.0.1:0".into()];
    args.extend(extra_args.iter().map(Into::into));
    let (pid, mut lines) = supervisor.spawn(Spawn {
        name: "fake-bedrock",
        program: bin_dir.join("fake-bedrock"),
        args,
        env: Vec::new(),
    })?;
    let url = supervisor
        .wait_line(&mut lines, "fake-bedrock listening on", timeout)
        .await?;
    Ok((url, pid))
}

/// Starts translator-svc on `listen` with `env` and waits for `/ready`; returns its pid.
pub async fn start_translator(
    supervisor: &mut Supervisor,
    bin_dir: &Path,
    listen: SocketAddr,
    mut env: Vec<(String, String)>,
    timeout: Duration,
) -> Result<u32> {
    env.push(("TRANSLATOR_LISTEN".to_string(), listen.to_string()));
    let (pid, _lines) = supervisor.spawn(Spawn {
        name: "translator-svc",
        program: bin_dir.join("translator-svc"),
        args: Vec::new(),
        env,
    })?;
    supervisor
        .wait_http_ok("translator-svc", &format!("http://{listen}/ready"), timeout)
        .await?;
    Ok(pid)
}

/// Starts ratelimit-svc (gRPC on `listen`, health on `http_listen`; counters in `redis_url`, else
/// in the Redis of xtask's own `REDIS_URL`, else in memory) and waits for `/health`; returns its
/// pid.
pub async fn start_ratelimit(
    supervisor: &mut Supervisor,
    bin_dir: &Path,
    listen: SocketAddr,
    http_listen: SocketAddr,
    redis_url: Option<&str>,
    timeout: Duration,
) -> Result<u32> {
    let mut env = vec![
        ("RATELIMIT_LISTEN".to_string(), listen.to_string()),
        ("RATELIMIT_HTTP_LISTEN".to_string(), http_listen.to_string()),
        ("LOG_FORMAT".to_string(), "text".to_string()),
    ];
    if let Some(redis) = redis_url
        .map(str::to_string)
        .or_else(|| std::env::var("REDIS_URL").ok())
    {
        env.push(("REDIS_URL".to_string(), redis));
    }
    let (pid, _lines) = supervisor.spawn(Spawn {
        name: "ratelimit-svc",
        program: bin_dir.join("ratelimit-svc"),
        args: Vec::new(),
        env,
    })?;
    supervisor
        .wait_http_ok(
            "ratelimit-svc",
            &format!("http://{http_listen}/health"),
            timeout,
        )
        .await?;
    Ok(pid)
}

/// Renders the Envoy config to `path` and starts Envoy on it; waits until the admin endpoint says
/// ready and the listener accepts connections. Returns Envoy's pid.
pub async fn start_envoy(
    supervisor: &mut Supervisor,
    envoy: &Path,
    config: &GatewayConfig,
    path: &Path,
    concurrency: Option<u32>,
    timeout: Duration,
) -> Result<u32> {
    let yaml = render_envoy_config(config)?;
    std::fs::write(path, yaml).with_context(|| format!("writing {}", path.display()))?;
    let mut args: Vec<std::ffi::OsString> = vec![
        "-c".into(),
        path.into(),
        "--disable-hot-restart".into(),
        "--log-level".into(),
        "warning".into(),
    ];
    if let Some(concurrency) = concurrency {
        args.extend(["--concurrency".into(), concurrency.to_string().into()]);
    }
    let (pid, _lines) = supervisor.spawn(Spawn {
        name: "envoy",
        program: envoy.to_path_buf(),
        args,
        env: Vec::new(),
    })?;
    let admin = format!("http://127.0.0.1:{}/ready", config.admin_port);
    supervisor
        .wait_http_ok("envoy admin", &admin, timeout)
        .await?;
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::net::TcpStream::connect(config.listen).await.is_err() {
        supervisor.check_alive()?;
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("envoy is not listening on {}", config.listen);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(pid)
}

/// `n` random lowercase alphanumerics (keys and secrets).
pub fn random_token(n: usize) -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(n)
        .map(|b| char::from(b).to_ascii_lowercase())
        .collect()
}

/// The gateway's Envoy config: the real template (`envoy/envoy.yaml.tmpl`) rendered for loopback.
fn render_envoy_config(config: &GatewayConfig) -> Result<String> {
    let mut vars = EnvoyVars::local(&config.wasm, &config.internal_secret);
    vars.listen_address = config.listen.ip().to_string();
    vars.listen_port = config.listen.port();
    vars.admin_port = config.admin_port;
    vars.stats_port = config.stats_port;
    vars.translator_host = config.translator.ip().to_string();
    vars.translator_port = config.translator.port();
    if let Some(ratelimit) = config.ratelimit {
        vars.ratelimit_host = ratelimit.ip().to_string();
        vars.ratelimit_port = ratelimit.port();
        vars = vars.with_rate_limiting().map_err(anyhow::Error::msg)?;
    }
    // Envoy traces to the collector the services (which inherit this environment) export to.
    if let Ok(endpoint) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        && !endpoint.trim().is_empty()
    {
        vars = vars
            .with_tracing(&endpoint, "gateway-envoy")
            .map_err(|e| anyhow::anyhow!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?;
    }
    render_envoy(&vars).map_err(|error| anyhow::anyhow!("rendering envoy/envoy.yaml.tmpl: {error}"))
}
