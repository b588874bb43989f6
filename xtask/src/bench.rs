//! `cargo xtask bench`: what the gateway adds. The same Claude call is timed directly against
//! the fake Bedrock, through a plain Envoy passthrough, and through the whole chain (Envoy + gate
//! filter + translator-svc), non-streaming and streaming (time to first byte), at concurrency 1
//! and 32; then a table with p50/p99, requests/s and the memory of every process. Asserts nothing.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;

use crate::gateway::{self, GatewayConfig};
use crate::load::{self, LoadResult, Probe, quantile_ms};
use crate::stack::{Spawn, Supervisor, rss_kib};
use crate::tools;

pub struct BenchOptions {
    /// Measured seconds per scenario (after a one-second warm-up).
    pub seconds: u64,
    pub release: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            seconds: 10,
            release: true,
        }
    }
}

const MODEL: &str = "claude-sonnet-4-5-20250929";
/// What translator-svc calls for MODEL; the direct probes use the same id.
const BEDROCK_MODEL_PATH: &str = "global.anthropic.claude-sonnet-4-5-20250929-v1%3A0";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const CONCURRENCY: [usize; 2] = [1, 32];

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
    let wasm = tools::build_filter(root)?;
    let bin_dir =
        tools::build_binaries(root, &["translator-svc", "fake-bedrock"], options.release)?;
    let data_dir = root.join(".gateway").join("bench");
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
    let key = format!("sk-gw-bench-{}", gateway::random_token(24));
    let secret = gateway::random_token(40);
    let translator = loopback(free_port()?);
    let env = vec![
        ("MASTER_API_KEY".to_string(), key.clone()),
        ("GATEWAY_INTERNAL_SECRET".to_string(), secret.clone()),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
        (
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME".to_string(),
            fake_url.clone(),
        ),
        ("AWS_ACCESS_KEY_ID".to_string(), "fake".to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), "fake".to_string()),
        ("RUST_LOG".to_string(), "warn".to_string()),
        (
            "GATEWAY_DATA_DIR".to_string(),
            data_dir.join("data").display().to_string(),
        ),
    ];
    let translator_pid =
        gateway::start_translator(supervisor, bin_dir, translator, env, READY_TIMEOUT).await?;
    let gateway_config = GatewayConfig {
        ratelimit: None,
        listen: loopback(free_port()?),
        admin_port: free_port()?,
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
    let duration = Duration::from_secs(options.seconds);
    let warmup = Duration::from_secs(1);
    let mut rows = Vec::new();
    for stream in [false, true] {
        for concurrency in CONCURRENCY {
            for (name, probes) in [
                ("direct fake Bedrock", &targets.direct),
                ("plain Envoy passthrough", &targets.passthrough),
                ("gateway (Envoy+gate+translator)", &targets.gateway),
            ] {
                let probe = if stream { &probes.1 } else { &probes.0 };
                eprintln!("xtask: bench {name}, stream={stream}, concurrency={concurrency}");
                let result = load::run(probe, concurrency, warmup, duration).await?;
                supervisor.check_alive()?;
                rows.push(Row {
                    name,
                    stream,
                    concurrency,
                    result,
                });
            }
        }
    }
    let processes = [
        ("envoy (gateway)", envoy_pid),
        ("translator-svc", translator_pid),
        ("fake-bedrock", fake_pid),
        ("envoy (passthrough)", passthrough_pid),
    ];
    print_report(&rows, &processes, options);
    Ok(())
}

struct Row {
    name: &'static str,
    stream: bool,
    concurrency: usize,
    result: LoadResult,
}

fn print_report(rows: &[Row], processes: &[(&str, u32)], options: &BenchOptions) {
    println!(
        "\nBench: {} s per scenario after 1 s warm-up, {} build, 2-core machine shared by client and servers.",
        options.seconds,
        if options.release { "release" } else { "debug" }
    );
    println!(
        "{:<33} {:>6} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "target", "stream", "conc", "req/s", "p50 ms", "p99 ms", "ttfb p50", "ttfb p99", "errors"
    );
    for row in rows {
        let r = &row.result;
        println!(
            "{:<33} {:>6} {:>5} {:>9.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>7}",
            row.name,
            if row.stream { "yes" } else { "no" },
            row.concurrency,
            r.requests_per_second(),
            quantile_ms(&r.total, 0.50),
            quantile_ms(&r.total, 0.99),
            quantile_ms(&r.ttfb, 0.50),
            quantile_ms(&r.ttfb, 0.99),
            r.errors,
        );
        if let Some(error) = &r.first_error {
            println!("    first error: {error}");
        }
    }
    println!(
        "\nAdded by the gateway over the direct call (non-stream: total latency; stream: time to first byte):"
    );
    for stream in [false, true] {
        for concurrency in CONCURRENCY {
            let find = |name: &str| {
                rows.iter().find(|r| {
                    r.name.starts_with(name) && r.stream == stream && r.concurrency == concurrency
                })
            };
            let (Some(direct), Some(envoy), Some(gateway)) =
                (find("direct"), find("plain Envoy"), find("gateway"))
            else {
                continue;
            };
            let pick = |r: &LoadResult, p| {
                if stream {
                    quantile_ms(&r.ttfb, p)
                } else {
                    quantile_ms(&r.total, p)
                }
            };
            println!(
                "  {:<10} conc {:>2}: gateway +{:.3} ms p50, +{:.3} ms p99   (plain Envoy +{:.3} ms p50, +{:.3} ms p99)",
                if stream { "stream" } else { "non-stream" },
                concurrency,
                pick(&gateway.result, 0.50) - pick(&direct.result, 0.50),
                pick(&gateway.result, 0.99) - pick(&direct.result, 0.99),
                pick(&envoy.result, 0.50) - pick(&direct.result, 0.50),
                pick(&envoy.result, 0.99) - pick(&direct.result, 0.99),
            );
        }
    }
    println!("\nResident memory after the run (VmRSS):");
    for (name, pid) in processes {
        match rss_kib(*pid) {
            Some(kib) => println!("  {name:<22} {:>8.1} MiB", kib as f64 / 1024.0),
            None => println!("  {name:<22} (gone)"),
        }
    }
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
