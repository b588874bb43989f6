//! Real Envoy for a test: the checked-in template (`envoy/envoy.yaml.tmpl`, rendered by
//! `xtask::envoy_render`) with the real gate wasm, in front of a translator address the test
//! chooses. Listener and admin bind port 0 (no port races); the bound ports are read back from the
//! admin API. Killed when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use xtask::envoy_render::{EnvoyVars, PtcDnsResolver, render_envoy};

use crate::process::ChildProcess;

/// What to put behind Envoy.
pub struct EnvoyOptions {
    pub envoy_bin: PathBuf,
    /// `gate_filter.wasm` built for wasm32-wasip1.
    pub wasm: PathBuf,
    /// translator-svc (or a stand-in): HTTP and gRPC over h2c on one port.
    pub translator_addr: SocketAddr,
    /// Added by Envoy as `x-gw-internal-secret`.
    pub internal_secret: String,
    /// ratelimit-svc's gRPC address: `Some` renders the rate-limit filter and route policy from
    /// `envoy/ratelimit.fragment.yaml`; `None` renders the config without rate limiting.
    pub ratelimit_addr: Option<SocketAddr>,
    /// Where the rendered config and the log go.
    pub work_dir: PathBuf,
}

/// Optional parts of the config, beyond what every test needs.
#[derive(Debug, Clone, Default)]
pub struct EnvoyExtras {
    /// More translator-svc instances: client requests go round robin over all of them (the gate's
    /// Auth/Check calls stay on the first).
    pub more_translators: Vec<SocketAddr>,
    /// The PTC router (`envoy/ptc-router.fragment.yaml`): its listener port on 127.0.0.1 and the
    /// ptc-svc replicas it hashes container ids over. `None`: no PTC router.
    pub ptc_router: Option<(u16, Vec<SocketAddr>)>,
    /// With `ptc_router`: the replicas are found by a DNS name instead (its addresses ignored),
    /// as in Kubernetes, asked of the given server (`crate::dns::DnsResponder`).
    pub ptc_dns: Option<PtcDns>,
    /// An OTLP/HTTP collector (`http://host:port`) for Envoy's tracer
    /// (`envoy/tracing.fragment.yaml`).
    pub otel_endpoint: Option<String>,
}

/// The ptc-svc replicas as one DNS name (a headless Service's stand-in).
#[derive(Debug, Clone)]
pub struct PtcDns {
    pub name: String,
    /// The port every replica listens on.
    pub port: u16,
    /// The DNS server Envoy asks for the name (every 5 s, Envoy's default).
    pub server: SocketAddr,
}

/// A running Envoy.
pub struct Envoy {
    process: ChildProcess,
    port: u16,
    admin: String,
}

const READY_TIMEOUT: Duration = Duration::from_secs(60);

impl Envoy {
    pub async fn start(options: EnvoyOptions) -> Result<Self> {
        Self::start_with(options, EnvoyExtras::default()).await
    }

    pub async fn start_with(options: EnvoyOptions, extras: EnvoyExtras) -> Result<Self> {
        let mut vars = EnvoyVars {
            listen_port: 0,
            admin_port: 0,
            stats_port: 0,
            translator_host: options.translator_addr.ip().to_string(),
            translator_port: options.translator_addr.port(),
            // Without rate limiting the filter is absent and this cluster is never used.
            ratelimit_port: 1,
            ..EnvoyVars::local(&options.wasm, &options.internal_secret)
        };
        if let Some(ratelimit) = options.ratelimit_addr {
            vars.ratelimit_host = ratelimit.ip().to_string();
            vars.ratelimit_port = ratelimit.port();
            vars = vars
                .with_rate_limiting()
                .map_err(|e| anyhow!("adding rate limiting to the Envoy config: {e}"))?;
        }
        let more: Vec<(String, u16)> = extras
            .more_translators
            .iter()
            .map(|addr| (addr.ip().to_string(), addr.port()))
            .collect();
        if !more.is_empty() {
            let more: Vec<(&str, u16)> = more.iter().map(|(h, p)| (h.as_str(), *p)).collect();
            vars = vars
                .with_more_translators(&more)
                .map_err(|e| anyhow!("adding translator endpoints: {e}"))?;
        }
        if let Some((port, replicas)) = &extras.ptc_router {
            let replicas: Vec<(String, u16)> = replicas
                .iter()
                .map(|addr| (addr.ip().to_string(), addr.port()))
                .collect();
            let mut replicas: Vec<(&str, u16)> =
                replicas.iter().map(|(h, p)| (h.as_str(), *p)).collect();
            let mut resolver = None;
            if let Some(dns) = &extras.ptc_dns {
                replicas = vec![(dns.name.as_str(), dns.port)];
                resolver = Some(PtcDnsResolver { server: dns.server });
            }
            vars = vars
                .with_ptc_router_resolved_by("127.0.0.1", *port, &replicas, resolver)
                .map_err(|e| anyhow!("adding the PTC router: {e}"))?;
        }
        if let Some(endpoint) = &extras.otel_endpoint {
            vars = vars
                .with_tracing(endpoint, "gateway-envoy")
                .map_err(|e| anyhow!("adding tracing: {e}"))?;
        }
        let config = render_envoy(&vars).map_err(|e| anyhow!("rendering the Envoy config: {e}"))?;
        let config_path = options.work_dir.join("envoy.yaml");
        std::fs::write(&config_path, config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let admin_path = options.work_dir.join("envoy-admin-address");
        let args: Vec<String> = vec![
            "-c".into(),
            config_path.display().to_string(),
            // One worker: the per-worker verdict cache behaves the same on every request.
            "--concurrency".into(),
            "1".into(),
            // Several Envoys may run at once; hot restart would make them share memory.
            "--disable-hot-restart".into(),
            "--admin-address-path".into(),
            admin_path.display().to_string(),
            "-l".into(),
            std::env::var("E2E_ENVOY_LOG").unwrap_or_else(|_| "warning".into()),
        ];
        let mut process =
            ChildProcess::spawn("envoy", &options.envoy_bin, &args, &[], &options.work_dir)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            process.check_running()?;
            if let Ok(admin) = std::fs::read_to_string(&admin_path)
                && !admin.trim().is_empty()
                && let Some(port) = listener_port(&client, admin.trim()).await
            {
                let admin = admin.trim().to_string();
                return Ok(Self {
                    process,
                    port,
                    admin,
                });
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "envoy not ready within {READY_TIMEOUT:?}\n{}",
                    process.log_tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `http://127.0.0.1:PORT` of the gateway listener.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` of the admin interface (stats).
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The last `n` lines of Envoy's log (access log included).
    pub fn log_tail(&self, n: usize) -> String {
        self.process.log_tail(n)
    }

    /// Envoy's whole log so far (access log lines included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.process.log_path()).unwrap_or_default()
    }
}

/// The bound port of the `gateway` listener once the server is live.
async fn listener_port(client: &reqwest::Client, admin: &str) -> Option<u16> {
    let ready = client
        .get(format!("http://{admin}/ready"))
        .send()
        .await
        .ok()?;
    if !ready.status().is_success() {
        return None;
    }
    let listeners: serde_json::Value = client
        .get(format!("http://{admin}/listeners?format=json"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    listeners["listener_statuses"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == "gateway")?["local_address"]["socket_address"]["port_value"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
}
