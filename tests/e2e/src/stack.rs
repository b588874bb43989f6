//! The whole gateway for one test: the fake Bedrock (in-process), translator-svc (the built
//! binary), real Envoy with the rendered template and the real wasm filter, and on request
//! ratelimit-svc (in-process, in-memory store) and ptc-svc (the built binary, sandboxes on the
//! local Docker engine), all on ephemeral loopback ports. Readiness is awaited, never slept for; logs go to a temporary directory and are
//! printed when the test fails; everything stops when the `Stack` is dropped.
//!
//! With PTC, translator-svc reaches ptc-svc the way Kubernetes deploys it: through Envoy's PTC
//! router (`envoy/ptc-router.fragment.yaml`, ring hash on `x-gw-container-id`), with the ptc-svc
//! replicas knowing each other as peers. Several translator-svc instances share Envoy's translator
//! cluster round robin. With `ptc_behind_dns` Envoy finds the replicas through a DNS name the
//! harness serves (`crate::dns`, a headless Service's stand-in), and a test can add replicas.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use fake_bedrock::FakeBedrock;
use ratelimit_svc::limiter::ManualClock;
use tempfile::TempDir;

use crate::dns::DnsResponder;
use crate::envoy::{Envoy, EnvoyExtras, EnvoyOptions, PtcDns};
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
    /// How many ptc-svc replicas (with `with_ptc`; at least 1).
    pub ptc_replicas: usize,
    /// Extra ptc-svc variables, for every replica (e.g. a short `PTC_SESSION_IDLE_S`).
    pub ptc_env: Vec<(String, String)>,
    /// The ptc-svc replicas listen on their own loopback addresses (127.0.0.2-5) at one port and
    /// Envoy finds them through a DNS name served by the harness (`crate::dns`), as in
    /// Kubernetes; more can be added while the stack runs (`Stack::add_ptc_replica`).
    pub ptc_dns: bool,
    /// How many translator-svc instances behind Envoy (at least 1).
    pub translators: usize,
    /// An OTLP/HTTP collector: Envoy and translator-svc export their spans to it.
    pub otel_endpoint: Option<String>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            claude_api: ClaudeApi::Invoke,
            translator_env: Vec::new(),
            with_ratelimit: false,
            with_ptc: false,
            ptc_replicas: 1,
            ptc_env: Vec::new(),
            ptc_dns: false,
            translators: 1,
            otel_endpoint: None,
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

    /// Export traces from Envoy and translator-svc to the OTLP/HTTP collector at `endpoint`
    /// (`http://127.0.0.1:PORT`), translator-svc's batches every 100 ms.
    pub fn with_otel(mut self, endpoint: &str) -> Self {
        self.otel_endpoint = Some(endpoint.to_string());
        self.translator_env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .translator_env("OTEL_BSP_SCHEDULE_DELAY", "100")
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

    /// `n` ptc-svc replicas behind the PTC router (implies `with_ptc`).
    pub fn ptc_replicas(mut self, n: usize) -> Self {
        self.with_ptc = true;
        self.ptc_replicas = n.max(1);
        self
    }

    /// Put the ptc-svc replicas behind a DNS name (see `StackOptions::ptc_dns`).
    pub fn ptc_behind_dns(mut self) -> Self {
        self.with_ptc = true;
        self.ptc_dns = true;
        self
    }

    /// A ptc-svc variable for every replica.
    pub fn ptc_env(mut self, name: &str, value: &str) -> Self {
        self.ptc_env.push((name.to_string(), value.to_string()));
        self
    }

    /// `n` translator-svc instances, round robin behind Envoy.
    pub fn translators(mut self, n: usize) -> Self {
        self.translators = n.max(1);
        self
    }
}

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running gateway. Field order is drop order: Envoy stops first, the fake last.
pub struct Stack {
    envoy: Envoy,
    translator: ChildProcess,
    /// translator-svc instances beyond the first (`StackOptions::translators`).
    more_translators: Vec<ChildProcess>,
    /// In-process ratelimit-svc (when asked for); stopped when the stack is dropped.
    ratelimit: Option<ratelimit_svc::server::Running>,
    /// ptc-svc replicas (when asked for); terminated gracefully so they remove their containers.
    ptc: Vec<PtcReplica>,
    /// The DNS name the replicas are found by (`StackOptions::ptc_dns`).
    ptc_pool: Option<PtcPool>,
    /// The fake Bedrock translator-svc calls; tests enqueue scenarios and read recorded requests.
    pub fake: FakeBedrock,
    /// `http://127.0.0.1:PORT` of the Envoy listener: what clients use as ANTHROPIC_BASE_URL.
    pub url: String,
    /// The gateway's master key (`MASTER_API_KEY`).
    pub master_key: String,
    /// The secret Envoy adds as `x-gw-internal-secret`.
    pub internal_secret: String,
    /// `http://127.0.0.1:PORT` of translator-svc itself, behind Envoy (the first instance).
    pub translator_url: String,
    /// Every translator-svc instance's address, in start order.
    pub translator_addrs: Vec<SocketAddr>,
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
        let mut ptc = Vec::new();
        let mut ptc_router = None;
        let mut ptc_pool = None;
        if let Some(bin) = ptc_bin.as_ref().filter(|_| options.ptc_dns) {
            let pool = PtcPool::start(bin, &options.ptc_env).await?;
            let addrs: Vec<SocketAddr> = (0..options.ptc_replicas.max(1))
                .map(|index| pool.addr(index))
                .collect::<Result<_>>()?;
            for (index, addr) in addrs.iter().enumerate() {
                // Every replica, itself included, as the headless Service would answer.
                let peers: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                ptc.push(
                    start_ptc(bin, logs.path(), index, *addr, &peers, &options.ptc_env).await?,
                );
                pool.dns.add(ipv4(*addr)?);
            }
            ptc_pool = Some(pool);
        } else if let Some(bin) = &ptc_bin {
            // The replicas name each other as peers and translator-svc names the router before
            // any of them listens, so these ports are picked first (bound to port 0, released).
            let ports = free_ports(options.ptc_replicas.max(1))?;
            for (index, port) in ports.iter().enumerate() {
                let peers: Vec<String> = ports
                    .iter()
                    .filter(|other| *other != port)
                    .map(|other| format!("127.0.0.1:{other}"))
                    .collect();
                let addr = SocketAddr::from(([127, 0, 0, 1], *port));
                ptc.push(start_ptc(bin, logs.path(), index, addr, &peers, &options.ptc_env).await?);
            }
        }
        if !ptc.is_empty() {
            let router_port = free_ports(1)?[0];
            env.push((
                "PTC_ENDPOINT".to_string(),
                format!("http://127.0.0.1:{router_port}"),
            ));
            ptc_router = Some((router_port, ptc.iter().map(|r| r.addr).collect()));
        }
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

        if let Some(running) = &ratelimit {
            // translator-svc charges the tokens of streams a client abandons (Envoy cannot).
            env.push((
                "RATELIMIT_ENDPOINT".to_string(),
                format!("http://{}", running.grpc_addr),
            ));
        }
        env.extend(options.translator_env.iter().cloned());
        let mut translators = Vec::new();
        let mut translator_addrs = Vec::new();
        for index in 0..options.translators.max(1) {
            let name = if index == 0 {
                "translator-svc".to_string()
            } else {
                format!("translator-svc-{index}")
            };
            let mut env = env.clone();
            if index > 0 {
                // Each instance its own embedded store; the master key comes from the environment.
                env.push((
                    "GATEWAY_DATA_DIR".to_string(),
                    logs.path()
                        .join(format!("data-{index}"))
                        .display()
                        .to_string(),
                ));
            }
            let mut translator =
                ChildProcess::spawn(&name, &translator_bin, &[], &env, logs.path())?;
            let addr = translator
                .wait_for_line("translator-svc listening on", READY_TIMEOUT)
                .await?;
            let addr = addr
                .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
                .next()
                .unwrap_or_default()
                .trim_start_matches("http://")
                .to_string();
            wait_ready(&mut translator, &format!("http://{addr}/ready")).await?;
            translator_addrs.push(
                addr.parse::<SocketAddr>()
                    .with_context(|| format!("{name} printed a bad address: {addr}"))?,
            );
            translators.push(translator);
        }
        let mut translators = translators.into_iter();
        let Some(translator) = translators.next() else {
            anyhow::bail!("no translator-svc started");
        };
        let more_translators: Vec<ChildProcess> = translators.collect();
        let translator_url = format!("http://{}", translator_addrs[0]);

        let envoy = Envoy::start_with(
            EnvoyOptions {
                envoy_bin,
                wasm,
                translator_addr: translator_addrs[0],
                internal_secret: internal_secret.clone(),
                ratelimit_addr: ratelimit.as_ref().map(|running| running.grpc_addr),
                work_dir: logs.path().to_path_buf(),
            },
            EnvoyExtras {
                more_translators: translator_addrs[1..].to_vec(),
                ptc_router,
                ptc_dns: ptc_pool.as_ref().map(|pool| PtcDns {
                    name: pool.dns.name().to_string(),
                    port: pool.port,
                    server: pool.dns.addr(),
                }),
                otel_endpoint: options.otel_endpoint.clone(),
            },
        )
        .await
        .map_err(|error| error.context(translator.log_tail(40)))?;
        let url = envoy.url();
        Ok(Some(Self {
            envoy,
            translator,
            more_translators,
            ratelimit,
            ptc,
            ptc_pool,
            fake,
            url,
            master_key,
            internal_secret,
            translator_url,
            translator_addrs,
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

    /// Creates an API key through the gateway's admin API; `spec` is the create body (name,
    /// limits). Returns the key's id and its secret.
    pub async fn create_key(&self, spec: serde_json::Value) -> Result<(String, String)> {
        let created: serde_json::Value = self
            .http()
            .post(format!("{}/admin/v1/keys", self.url))
            .header("x-api-key", &self.master_key)
            .json(&spec)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let field = |pointer: &str| {
            created
                .pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
                .with_context(|| format!("no {pointer} in the created key: {created}"))
        };
        Ok((field("/key/id")?, field("/secret")?))
    }

    /// `http://127.0.0.1:PORT` of Envoy's admin interface (stats, listeners).
    pub fn envoy_admin_url(&self) -> String {
        self.envoy.admin_url()
    }

    /// (name, pid) of each process of the chain, for memory readings.
    pub fn pids(&self) -> Vec<(&str, u32)> {
        let mut pids = vec![("envoy", self.envoy.pid())];
        for process in self
            .translators()
            .chain(self.ptc.iter().map(|r| &r.process))
        {
            pids.push((process.name(), process.pid()));
        }
        pids
    }

    fn translators(&self) -> impl Iterator<Item = &ChildProcess> {
        std::iter::once(&self.translator).chain(&self.more_translators)
    }

    /// The whole log of each translator-svc instance, in `translator_addrs` order.
    pub fn translator_logs(&self) -> Vec<String> {
        self.translators()
            .map(|t| std::fs::read_to_string(t.log_path()).unwrap_or_default())
            .collect()
    }

    /// Envoy's whole log: its access log lines (gateway and PTC router) included.
    pub fn envoy_log(&self) -> String {
        self.envoy.log()
    }

    /// The JSON access-log lines of Envoy's log, once `ready` holds for them or 20 s passed
    /// (Envoy writes access logs on its flush interval, not per request).
    pub async fn access_log(
        &self,
        ready: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let lines: Vec<serde_json::Value> = self
                .envoy_log()
                .lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line.trim()).ok())
                .filter(serde_json::Value::is_object)
                .collect();
            if ready(&lines) || std::time::Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Each ptc-svc replica's address and whole log, in start order.
    pub fn ptc_replicas(&self) -> Vec<(SocketAddr, String)> {
        self.ptc
            .iter()
            .map(|r| {
                let log = std::fs::read_to_string(r.process.log_path()).unwrap_or_default();
                (r.addr, log)
            })
            .collect()
    }

    /// Starts one more ptc-svc replica behind the DNS name (`StackOptions::ptc_behind_dns`),
    /// knowing every replica as its peer, itself included, and returns its address once Envoy's
    /// PTC router has it among its hosts.
    pub async fn add_ptc_replica(&mut self) -> Result<SocketAddr> {
        let Some(pool) = &self.ptc_pool else {
            anyhow::bail!("add_ptc_replica needs StackOptions::ptc_behind_dns");
        };
        let index = self.ptc.len();
        let addr = pool.addr(index)?;
        let mut peers: Vec<String> = self.ptc.iter().map(|r| r.addr.to_string()).collect();
        peers.push(addr.to_string());
        let replica =
            start_ptc(&pool.bin, self.logs.path(), index, addr, &peers, &pool.env).await?;
        self.ptc.push(replica);
        pool.dns.add(ipv4(addr)?);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if self.ptc_router_hosts().await?.contains(&addr) {
                return Ok(addr);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "Envoy's PTC router did not pick up {addr} within 20 s (DNS answered {} A queries)\n{}",
                    pool.dns.answered(),
                    self.envoy.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The hosts Envoy's PTC router cluster (`ptc`) holds right now, from the admin interface.
    pub async fn ptc_router_hosts(&self) -> Result<Vec<SocketAddr>> {
        let text = self
            .http()
            .get(format!("{}/clusters", self.envoy_admin_url()))
            .send()
            .await?
            .text()
            .await?;
        // Lines `ptc::127.0.0.2:41234::cx_active::0`, one per host and statistic.
        let mut hosts: Vec<SocketAddr> = text
            .lines()
            .filter_map(|line| line.strip_prefix("ptc::"))
            .filter_map(|rest| rest.split("::").next()?.parse().ok())
            .collect();
        hosts.sort();
        hosts.dedup();
        Ok(hosts)
    }

    /// Where the logs are written.
    pub fn log_dir(&self) -> PathBuf {
        self.logs.path().to_path_buf()
    }

    /// The tail of every log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out: Vec<String> = self.translators().map(|t| t.log_tail(80)).collect();
        out.push(self.envoy.log_tail(80));
        out.extend(self.ptc.iter().map(|r| r.process.log_tail(60)));
        out.join("\n")
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
        for replica in &mut self.ptc {
            replica.process.terminate(Duration::from_secs(20));
        }
    }
}

/// One ptc-svc replica.
struct PtcReplica {
    process: ChildProcess,
    addr: SocketAddr,
}

/// Starts ptc-svc replica `index` on loopback `addr` (its own replica id, so its containers are
/// its own), knowing `peers`, and returns it once it is listening.
async fn start_ptc(
    bin: &std::path::Path,
    log_dir: &std::path::Path,
    index: usize,
    addr: SocketAddr,
    peers: &[String],
    extra_env: &[(String, String)],
) -> Result<PtcReplica> {
    let mut env: Vec<(String, String)> = [
        ("PTC_LISTEN", addr.to_string()),
        ("PTC_PEERS", peers.join(",")),
        (
            "PTC_REPLICA_ID",
            format!(
                "gateway-e2e-{}-{}-{index}",
                std::process::id(),
                random_token(8)
            ),
        ),
        ("PTC_DRAIN_S", "2".to_string()),
        ("LOG_FORMAT", "text".to_string()),
        ("NO_COLOR", "1".to_string()),
        ("RUST_LOG", "info".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    env.extend(extra_env.iter().cloned());
    let name = if index == 0 {
        "ptc-svc".to_string()
    } else {
        format!("ptc-svc-{index}")
    };
    let mut ptc = ChildProcess::spawn(&name, bin, &[], &env, log_dir)?;
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
    let addr = addr
        .parse()
        .with_context(|| format!("ptc-svc printed a bad local_addr: {addr}"))?;
    Ok(PtcReplica { process: ptc, addr })
}

/// The most replicas a DNS-named pool holds (127.0.0.2 up to 127.0.0.5).
const PTC_POOL_MAX: u8 = 4;

/// ptc-svc replicas behind one DNS name, like a headless Service: each listens on its own address
/// in 127.0.0.2-5 (all loopback on Linux) at one port, and the responder answers the live ones.
struct PtcPool {
    dns: DnsResponder,
    port: u16,
    bin: PathBuf,
    env: Vec<(String, String)>,
}

impl PtcPool {
    async fn start(bin: &std::path::Path, env: &[(String, String)]) -> Result<Self> {
        let dns = DnsResponder::start("ptc-svc.gateway-e2e.test", &[]).await?;
        let port = free_pool_port()?;
        Ok(Self {
            dns,
            port,
            bin: bin.to_path_buf(),
            env: env.to_vec(),
        })
    }

    /// Replica `index`'s address. Later replicas get lower addresses: a new replica's own address
    /// then sorts first among its peers, so the call to itself (a headless Service's answer
    /// includes the asker) really happens before the owner is found.
    fn addr(&self, index: usize) -> Result<SocketAddr> {
        let index = u8::try_from(index).ok().filter(|i| *i < PTC_POOL_MAX);
        let Some(index) = index else {
            anyhow::bail!("a DNS-named ptc-svc pool holds at most {PTC_POOL_MAX} replicas");
        };
        let last = 1 + PTC_POOL_MAX - index;
        Ok(SocketAddr::from(([127, 0, 0, last], self.port)))
    }
}

/// A port free on every pool address right now (bound together, then released).
fn free_pool_port() -> Result<u16> {
    for _ in 0..20 {
        let probe =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
        let port = probe.local_addr()?.port();
        let free = (0..PTC_POOL_MAX)
            .map(|i| std::net::TcpListener::bind((std::net::Ipv4Addr::new(127, 0, 0, 2 + i), port)))
            .collect::<std::io::Result<Vec<_>>>();
        if free.is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!(
        "no port free on 127.0.0.2-{} after 20 tries",
        1 + PTC_POOL_MAX
    )
}

fn ipv4(addr: SocketAddr) -> Result<std::net::Ipv4Addr> {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => Ok(ip),
        std::net::IpAddr::V6(ip) => anyhow::bail!("{ip} is not IPv4"),
    }
}

/// `n` distinct loopback ports nothing listens on right now: bound to port 0 together, then
/// released. Only for addresses that must be known before their server starts (a small window,
/// loopback only).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").context("binding a loopback port"))
        .collect::<Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
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
