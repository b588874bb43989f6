//! `cargo xtask bench`: what the gateway adds. The same Claude call is timed directly against
//! the fake Bedrock, through a plain Envoy passthrough, and through the whole chain (Envoy + gate
//! filter + global rate limit on ratelimit-svc and Redis + translator-svc, with a real key that
//! has limits and a budget), non-streaming and streaming (time to first byte), at concurrency 1
//! and 32. Reports p50/p99, requests/s, the CPU time each process spent per request and the
//! memory of every process. Asserts nothing.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;

use crate::cmd;
use crate::cpu::{self, Watched};
use crate::gateway::{self, GatewayConfig};
use crate::load::{Load, Probe};
use crate::stack::{Spawn, Supervisor};
use crate::tools;

mod report;

use report::{DIRECT, GATEWAY, PASSTHROUGH, Row, Setup, print_report};

pub struct BenchOptions {
    /// Measured seconds per scenario (after a one-second warm-up).
    pub seconds: u64,
    pub release: bool,
    /// Closed-loop concurrencies to run, each a set of scenarios.
    pub concurrency: Vec<usize>,
    /// Run the chain with the global rate limit (ratelimit-svc, on Redis when there is one).
    pub rate_limit: bool,
    /// Use the binaries already built in the target directory (while comparing builds).
    pub no_build: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            seconds: 10,
            release: true,
            concurrency: vec![1, 32],
            rate_limit: true,
            no_build: false,
        }
    }
}

const MODEL: &str = "claude-sonnet-4-5-20250929";
/// What translator-svc calls for MODEL; the direct probes use the same id.
const BEDROCK_MODEL_PATH: &str = "global.anthropic.claude-sonnet-4-5-20250929-v1%3A0";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const WARMUP: Duration = Duration::from_secs(1);
/// Longest wait for the work a scenario queued (usage writes) to finish before CPU is read.
const SETTLE_MAX: Duration = Duration::from_secs(10);

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The three ways to reach the model, each with a non-streaming and a streaming probe.
struct Targets {
    direct: (Probe, Probe),
    passthrough: (Probe, Probe),
    gateway: (Probe, Probe),
}

fn json_headers(extra: &[(&'static str, &str)]) -> Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in extra {
        headers.insert(*name, HeaderValue::from_str(value)?);
    }
    Ok(headers)
}

fn bedrock_probes(base: &str) -> Result<(Probe, Probe)> {
    let body = json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello [[fake:text]]"}],
    })
    .to_string();
    let probe = |op: &str| -> Result<Probe> {
        Ok(Probe {
            url: format!("{base}/model/{BEDROCK_MODEL_PATH}/{op}"),
            headers: json_headers(&[])?,
            body: body.clone().into(),
        })
    };
    Ok((probe("invoke")?, probe("invoke-with-response-stream")?))
}

fn gateway_probes(base: &str, key: &str) -> Result<(Probe, Probe)> {
    let body = |stream: bool| {
        json!({
            "model": MODEL,
            "max_tokens": 64,
            "stream": stream,
            "messages": [{"role": "user", "content": "Say hello [[fake:text]]"}],
        })
        .to_string()
    };
    let headers = json_headers(&[("x-api-key", key), ("anthropic-version", "2023-06-01")])?;
    let probe = |stream: bool| Probe {
        url: format!("{base}/v1/messages"),
        headers: headers.clone(),
        body: body(stream).into(),
    };
    Ok((probe(false), probe(true)))
}

pub fn run(root: &Path, options: BenchOptions) -> Result<()> {
    let envoy = tools::ensure_envoy(root)?;
    let mut packages = vec!["translator-svc", "fake-bedrock"];
    if options.rate_limit {
        packages.push("ratelimit-svc");
    }
    let (wasm, bin_dir) = if options.no_build {
        let target = tools::target_dir(root)?;
        let wasm = target
            .join(tools::WASM_TARGET)
            .join("release")
            .join("gate_filter.wasm");
        let bin_dir = target.join(if options.release { "release" } else { "debug" });
        (wasm, bin_dir)
    } else {
        let wasm = tools::build_filter(root)?;
        (
            wasm,
            tools::build_binaries(root, &packages, options.release)?,
        )
    };
    let data_dir = root.join(".gateway").join("bench");
    // A fresh key store each run: usage of earlier runs would only make the store bigger.
    let _ = std::fs::remove_dir_all(data_dir.join("data"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut supervisor = Supervisor::new(&data_dir.join("logs"), false)?;
        let result = bench(
            &mut supervisor,
            &envoy,
            &wasm,
            &bin_dir,
            &data_dir,
            &options,
        )
        .await;
        supervisor.shutdown(Duration::from_secs(5)).await;
        result
    })
}

/// The rate limiter and where its counters live.
struct RateLimiter {
    addr: SocketAddr,
    pid: u32,
    /// `redis-server` started for the bench (`None`: an outside `REDIS_URL`, or memory).
    redis_pid: Option<u32>,
    store: &'static str,
}

/// ratelimit-svc on a Redis of its own (`redis-server` from PATH), on `REDIS_URL` when that is
/// set, else on its in-memory store.
async fn start_rate_limiter(supervisor: &mut Supervisor, bin_dir: &Path) -> Result<RateLimiter> {
    let mut redis_pid = None;
    let mut redis_url = std::env::var("REDIS_URL").ok();
    let store = if redis_url.is_some() {
        "Redis (REDIS_URL)"
    } else if let Some(redis) = cmd::which("redis-server") {
        let port = free_port()?;
        let (pid, mut lines) = supervisor.spawn(Spawn {
            name: "redis",
            program: redis,
            args: ["--port", &port.to_string(), "--bind", "127.0.0.1"]
                .into_iter()
                .chain(["--save", "", "--appendonly", "no"])
                .map(Into::into)
                .collect(),
            env: Vec::new(),
        })?;
        supervisor
            .wait_line(&mut lines, "Ready to accept connections", READY_TIMEOUT)
            .await?;
        redis_pid = Some(pid);
        redis_url = Some(format!("redis://127.0.0.1:{port}/"));
        "Redis (started for the bench)"
    } else {
        "memory (no redis-server on PATH)"
    };
    let addr = loopback(free_port()?);
    let pid = gateway::start_ratelimit(
        supervisor,
        bin_dir,
        addr,
        loopback(free_port()?),
        redis_url.as_deref(),
        READY_TIMEOUT,
    )
    .await?;
    Ok(RateLimiter {
        addr,
        pid,
        redis_pid,
        store,
    })
}

/// A key like an operator's: limits high enough never to refuse the bench, and a budget, so the
/// rate limiter counts and the budget is read on every request.
async fn create_bench_key(translator: SocketAddr, master_key: &str) -> Result<String> {
    let response = reqwest::Client::new()
        .post(format!("http://{translator}/admin/v1/keys"))
        .header("x-api-key", master_key)
        .json(&json!({
            "name": "bench",
            "requests_per_minute": 4_000_000_000u32,
            "tokens_per_minute": 4_000_000_000u32,
            "monthly_budget_usd": 1_000_000.0,
        }))
        .send()
        .await
        .context("creating the bench key")?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.context("the key answer")?;
    match body.get("secret").and_then(serde_json::Value::as_str) {
        Some(secret) if status.is_success() => Ok(secret.to_string()),
        _ => bail!("creating the bench key: HTTP {status}: {body}"),
    }
}

async fn bench(
    supervisor: &mut Supervisor,
    envoy: &Path,
    wasm: &Path,
    bin_dir: &Path,
    data_dir: &Path,
    options: &BenchOptions,
) -> Result<()> {
    let (fake_url, fake_pid) =
        gateway::start_fake_bedrock(supervisor, bin_dir, &["--record-limit", "0"], READY_TIMEOUT)
            .await?;
    let master_key = format!("sk-gw-bench-{}", gateway::random_token(24));
    let secret = gateway::random_token(40);
    let translator = loopback(free_port()?);
    // Default log level (info), as an operator runs it: per-request log lines are part of the cost.
    let env = vec![
        ("MASTER_API_KEY".to_string(), master_key.clone()),
        ("GATEWAY_INTERNAL_SECRET".to_string(), secret.clone()),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
        (
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME".to_string(),
            fake_url.clone(),
        ),
        ("AWS_ACCESS_KEY_ID".to_string(), "fake".to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), "fake".to_string()),
        (
            "GATEWAY_DATA_DIR".to_string(),
            data_dir.join("data").display().to_string(),
        ),
    ];
    let translator_pid =
        gateway::start_translator(supervisor, bin_dir, translator, env, READY_TIMEOUT).await?;
    let key = create_bench_key(translator, &master_key).await?;
    let rate_limiter = if options.rate_limit {
        Some(start_rate_limiter(supervisor, bin_dir).await?)
    } else {
        None
    };
    let gateway_config = GatewayConfig {
        ratelimit: rate_limiter.as_ref().map(|r| r.addr),
        listen: loopback(free_port()?),
        admin_port: free_port()?,
        stats_port: free_port()?,
        translator,
        wasm: wasm.to_path_buf(),
        internal_secret: secret,
    };
    let envoy_pid = gateway::start_envoy(
        supervisor,
        envoy,
        &gateway_config,
        &data_dir.join("envoy-gateway.yaml"),
        None,
        READY_TIMEOUT,
    )
    .await?;
    let fake_addr: SocketAddr = fake_url
        .trim_start_matches("http://")
        .parse()
        .context("fake-bedrock printed a bad address")?;
    let passthrough = loopback(free_port()?);
    let passthrough_pid =
        start_passthrough(supervisor, envoy, data_dir, passthrough, fake_addr).await?;

    let targets = Targets {
        direct: bedrock_probes(&fake_url)?,
        passthrough: bedrock_probes(&format!("http://{passthrough}"))?,
        gateway: gateway_probes(&format!("http://{}", gateway_config.listen), &key)?,
    };
    let mut watched = vec![
        Watched {
            name: "envoy",
            pid: envoy_pid,
        },
        Watched {
            name: "translator",
            pid: translator_pid,
        },
    ];
    if let Some(limiter) = &rate_limiter {
        watched.push(Watched {
            name: "ratelimit",
            pid: limiter.pid,
        });
        if let Some(pid) = limiter.redis_pid {
            watched.push(Watched { name: "redis", pid });
        }
    }
    watched.extend([
        Watched {
            name: "fake",
            pid: fake_pid,
        },
        Watched {
            name: "passthru",
            pid: passthrough_pid,
        },
        Watched {
            name: "client",
            pid: std::process::id(),
        },
    ]);
    let duration = Duration::from_secs(options.seconds);
    let mut rows = Vec::new();
    for stream in [false, true] {
        for &concurrency in &options.concurrency {
            for (name, probes) in [
                (DIRECT, &targets.direct),
                (PASSTHROUGH, &targets.passthrough),
                (GATEWAY, &targets.gateway),
            ] {
                let probe = if stream { &probes.1 } else { &probes.0 };
                eprintln!("xtask: bench {name}, stream={stream}, concurrency={concurrency}");
                let load = Load::new(concurrency)?;
                load.run(probe, WARMUP).await?;
                let client = std::process::id();
                let before = cpu::settle(&watched, client, SETTLE_MAX).await;
                let result = load.run(probe, duration).await?;
                let after = cpu::settle(&watched, client, SETTLE_MAX).await;
                supervisor.check_alive()?;
                rows.push(Row {
                    name,
                    stream,
                    concurrency,
                    cpu_us: cpu::per_request_us(&before, &after, result.requests()),
                    result,
                });
            }
        }
    }
    let setup = Setup {
        options,
        rate_limit_store: rate_limiter.as_ref().map(|r| r.store),
        watched: &watched,
    };
    print_report(&rows, &setup);
    Ok(())
}

/// A second Envoy with no filter at all, proxying straight to the fake Bedrock: the baseline
/// that separates Envoy's own cost from the gate filter's and the translator's.
async fn start_passthrough(
    supervisor: &mut Supervisor,
    envoy: &Path,
    data_dir: &Path,
    listen: SocketAddr,
    upstream: SocketAddr,
) -> Result<u32> {
    let admin = free_port()?;
    let yaml = format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: passthrough
    address: {{ socket_address: {{ address: {lip}, port_value: {lport} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: passthrough
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: fake_bedrock, timeout: 0s }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: fake_bedrock
    type: STATIC
    load_assignment:
      cluster_name: fake_bedrock
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{ socket_address: {{ address: {uip}, port_value: {uport} }} }}
"#,
        lip = listen.ip(),
        lport = listen.port(),
        uip = upstream.ip(),
        uport = upstream.port(),
    );
    let path = data_dir.join("envoy-passthrough.yaml");
    std::fs::write(&path, yaml)?;
    let (pid, _lines) = supervisor.spawn(Spawn {
        name: "envoy-passthrough",
        program: envoy.to_path_buf(),
        args: vec![
            "-c".into(),
            path.into(),
            "--disable-hot-restart".into(),
            "--log-level".into(),
            "warning".into(),
        ],
        env: Vec::new(),
    })?;
    supervisor
        .wait_http_ok(
            "passthrough envoy",
            &format!("http://127.0.0.1:{admin}/ready"),
            READY_TIMEOUT,
        )
        .await?;
    Ok(pid)
}
