//! rl-bench: checks per second and check latency (p50/p99/p99.9) of ratelimit-svc against Redis,
//! at a fixed offered rate (open loop) and flat out (closed loop), for the store alone and for the
//! full gRPC path Envoy uses. Starts its own redis-server unless `--redis-url` is given.
//!
//! Usage: `cargo run --release -p ratelimit-svc --bin rl-bench -- [--rate 5000] [--seconds 5]
//!         [--concurrency 64] [--keys 1000] [--redis-url redis://127.0.0.1:6379/]
//!         [--closed-loop false] [--paths memory,redis,grpc] [--grpc-addr 127.0.0.1:50052]`
//!
//! `--grpc-addr` runs the gRPC path against a service already running there (e.g. under
//! `valgrind --tool=callgrind` or `perf`) instead of starting one.
//!
//! For the gRPC path through a separate ratelimit-svc process, the table also gives the CPU time
//! (user + system, from `/proc`) that the service and the bench's own redis-server spent per check.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::google::protobuf::UInt64Value;
use ratelimit_svc::check::{CheckIn, Checker, DescriptorIn, FailureMode};
use ratelimit_svc::config::Config;
use ratelimit_svc::limiter::SystemClock;
use ratelimit_svc::limits::Rules;
use ratelimit_svc::metrics::Metrics;
use ratelimit_svc::server;
use ratelimit_svc::store::{CounterStore, MemoryStore, RedisStore};
use tonic::transport::Channel;

struct Options {
    rate: u64,
    seconds: u64,
    concurrency: usize,
    keys: u64,
    redis_url: Option<String>,
    /// `--closed-loop false` skips the flat-out runs (e.g. under a real-time scheduler).
    closed_loop: bool,
    /// `--paths`: which of `memory`, `redis` (the store alone) and `grpc` to run.
    paths: Vec<String>,
    /// `--grpc-addr`: an already running service for the gRPC path.
    grpc_addr: Option<std::net::SocketAddr>,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        rate: 5_000,
        seconds: 5,
        concurrency: 64,
        keys: 1_000,
        redis_url: None,
        closed_loop: true,
        paths: vec!["memory".into(), "redis".into(), "grpc".into()],
        grpc_addr: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rate" => options.rate = value.parse()?,
            "--seconds" => options.seconds = value.parse()?,
            "--concurrency" => options.concurrency = value.parse()?,
            "--keys" => options.keys = value.parse()?,
            "--redis-url" => options.redis_url = Some(value),
            "--closed-loop" => options.closed_loop = value.parse()?,
            "--paths" => options.paths = value.split(',').map(str::to_owned).collect(),
            "--grpc-addr" => options.grpc_addr = Some(value.parse()?),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(options)
}

/// What Envoy sends for one /v1/messages request: rpm (hits 1) and the tpm probe (hits 0).
fn entries(key: &str) -> [Vec<(&str, &str)>; 2] {
    [
        vec![("route", "messages"), ("key_id", key), ("rpm", "1000000")],
        vec![("route", "messages"), ("key_id", key), ("tpm", "100000000")],
    ]
}

#[derive(Clone)]
enum Target {
    Store(Arc<Checker>),
    Grpc(Vec<RateLimitServiceClient<Channel>>),
}

impl Target {
    async fn check(&self, i: u64, keys: u64) -> anyhow::Result<()> {
        let key = format!("bench-{}", i % keys);
        let [rpm, tpm] = entries(&key);
        match self {
            Self::Store(checker) => {
                let request = CheckIn {
                    domain: "gateway",
                    descriptors: vec![
                        DescriptorIn {
                            entries: rpm,
                            limit_override: None,
                            hits_addend: None,
                            negative: false,
                        },
                        DescriptorIn {
                            entries: tpm,
                            limit_override: None,
                            hits_addend: Some(0),
                            negative: false,
                        },
                    ],
                    hits_addend: 0,
                    log_request_id: None,
                };
                checker.check(&request).await;
            }
            Self::Grpc(clients) => {
                let descriptor =
                    |entries: Vec<(&str, &str)>, hits: Option<u64>| RateLimitDescriptor {
                        entries: entries
                            .into_iter()
                            .map(|(k, v)| Entry {
                                key: k.to_owned(),
                                value: v.to_owned(),
                            })
                            .collect(),
                        limit: None,
                        hits_addend: hits.map(|value| UInt64Value { value }),
                        is_negative_hits: false,
                    };
                let mut client = clients[(i as usize) % clients.len()].clone();
                client
                    .should_rate_limit(RateLimitRequest {
                        domain: "gateway".to_owned(),
                        descriptors: vec![descriptor(rpm, None), descriptor(tpm, Some(0))],
                        hits_addend: 0,
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

struct Run {
    name: String,
    offered: String,
    checks: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    /// CPU microseconds per check of each watched process (name, us).
    cpu_us: Vec<(&'static str, f64)>,
}

/// A process whose CPU time the gRPC runs report.
#[derive(Clone, Copy)]
struct Watched {
    name: &'static str,
    pid: u32,
}

/// CPU time (ns) of all threads of `pid` so far, from `/proc/<pid>/task/*/schedstat`; `None`
/// off Linux or when the process is gone.
fn cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Runs `run` and reports how much CPU each watched process spent per check meanwhile.
async fn with_cpu<F>(
    watched: &[Watched],
    run: F,
) -> anyhow::Result<(usize, Duration, Vec<u64>, Vec<(&'static str, f64)>)>
where
    F: Future<Output = anyhow::Result<(usize, Duration, Vec<u64>)>>,
{
    let before: Vec<Option<u64>> = watched.iter().map(|w| cpu_ns(w.pid)).collect();
    let (checks, elapsed, latencies) = run.await?;
    let cpu = watched
        .iter()
        .zip(before)
        .filter_map(|(w, before)| {
            let spent = cpu_ns(w.pid)?.checked_sub(before?)?;
            Some((w.name, spent as f64 / 1_000.0 / checks.max(1) as f64))
        })
        .collect();
    Ok((checks, elapsed, latencies, cpu))
}

/// Open loop: a check every 1/rate s, each timed from when it is sent (not from the tick,
/// which tokio's 1 ms timer would smear into the numbers).
async fn open_loop(
    target: &Target,
    options: &Options,
) -> anyhow::Result<(usize, Duration, Vec<u64>)> {
    let total = options.rate * options.seconds;
    let period = Duration::from_secs_f64(1.0 / options.rate as f64);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = started + period.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let target = target.clone();
        let keys = options.keys;
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            target.check(i, keys).await.map(|()| sent.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        latencies.push(task.await??.as_micros() as u64);
    }
    Ok((latencies.len(), started.elapsed(), latencies))
}

/// Closed loop: `concurrency` callers back to back for the duration.
async fn closed_loop(
    target: &Target,
    options: &Options,
) -> anyhow::Result<(usize, Duration, Vec<u64>)> {
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..options.concurrency {
        let target = target.clone();
        let keys = options.keys;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = worker as u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                target.check(i, keys).await?;
                latencies.push(sent.elapsed().as_micros() as u64);
                i += 1_000_003;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok((latencies.len(), started.elapsed(), latencies))
}

async fn measure(
    name: &str,
    target: &Target,
    options: &Options,
    watched: &[Watched],
) -> anyhow::Result<Vec<Run>> {
    // Warm up connections and the script cache.
    for i in 0..200 {
        target.check(i, options.keys).await?;
    }
    let (checks, elapsed, latencies_us, cpu_us) =
        with_cpu(watched, open_loop(target, options)).await?;
    let open = Run {
        name: name.to_owned(),
        offered: format!("{}/s", options.rate),
        checks,
        elapsed,
        latencies_us,
        cpu_us,
    };
    if !options.closed_loop {
        return Ok(vec![open]);
    }
    let (checks, elapsed, latencies_us, cpu_us) =
        with_cpu(watched, closed_loop(target, options)).await?;
    let closed = Run {
        name: name.to_owned(),
        offered: format!("max, {} callers", options.concurrency),
        checks,
        elapsed,
        latencies_us,
        cpu_us,
    };
    Ok(vec![open, closed])
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn print_table(runs: &mut [Run]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "| path | offered | checks | checks/s | p50 us | p90 us | p99 us | p99.9 us | max us | CPU us/check |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|")?;
    for run in runs {
        run.latencies_us.sort_unstable();
        let l = &run.latencies_us;
        let cpu = run
            .cpu_us
            .iter()
            .map(|(name, us)| format!("{name} {us:.1}"))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            run.name,
            run.offered,
            run.checks,
            run.checks as f64 / run.elapsed.as_secs_f64(),
            percentile(l, 50.0),
            percentile(l, 90.0),
            percentile(l, 99.0),
            percentile(l, 99.9),
            l.last().copied().unwrap_or(0),
            cpu
        )?;
    }
    Ok(())
}

/// A child process (redis-server, ratelimit-svc) killed by pid on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> anyhow::Result<(ChildGuard, String)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child =
        Command::new(std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into()))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (install it or pass --redis-url)")?;
    let child = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("redis-server did not listen on {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((child, format!("redis://127.0.0.1:{port}/")))
}

fn checker(store: Arc<dyn CounterStore>) -> Arc<Checker> {
    Arc::new(Checker::new(
        Rules::empty(),
        store,
        Arc::new(SystemClock),
        FailureMode::Open,
        Arc::new(Metrics::new()),
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let (redis, url) = match &options.redis_url {
        Some(url) => (None, url.clone()),
        None => {
            let (child, url) = start_redis()?;
            (Some(child), url)
        }
    };
    let timeout = Duration::from_millis(500);
    let wants = |path: &str| options.paths.iter().any(|p| p == path);
    let mut runs = Vec::new();
    if wants("memory") {
        let memory = Target::Store(checker(Arc::new(MemoryStore::new())));
        runs.extend(measure("store: memory", &memory, &options, &[]).await?);
    }
    if wants("redis") {
        let redis = Target::Store(checker(Arc::new(RedisStore::new(&url, timeout)?)));
        runs.extend(measure("store: redis", &redis, &options, &[]).await?);
    }
    if wants("grpc") {
        let redis_pid = redis.as_ref().map(|child| child.0.id());
        runs.extend(measure_grpc(&options, &url, timeout, redis_pid).await?);
    }
    print_table(&mut runs)?;
    Ok(())
}

/// The full path Envoy uses: gRPC into ratelimit-svc, which calls Redis.
async fn measure_grpc(
    options: &Options,
    url: &str,
    timeout: Duration,
    redis_pid: Option<u32>,
) -> anyhow::Result<Vec<Run>> {
    // The service as a separate process when its binary sits next to this one (as in
    // production: its own runtime and threads), else in-process. It logs at the level an
    // operator runs it with (LOG_LEVEL, inherited; default info).
    let sibling = std::env::current_exe()?.with_file_name("ratelimit-svc");
    let mut watched = Vec::new();
    let (grpc_addr, _service, running, name) = if let Some(addr) = options.grpc_addr {
        (addr, None, None, "gRPC -> running service -> its store")
    } else if sibling.is_file() {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(&sibling)
            .env("RATELIMIT_LISTEN", format!("127.0.0.1:{port}"))
            .env("RATELIMIT_HTTP_LISTEN", "127.0.0.1:0")
            .env("REDIS_URL", url)
            .env(
                "RATELIMIT_REDIS_TIMEOUT_MS",
                timeout.as_millis().to_string(),
            )
            .stdout(Stdio::null())
            .spawn()
            .context("starting ratelimit-svc")?;
        let child = ChildGuard(child);
        watched.push(Watched {
            name: "svc",
            pid: child.0.id(),
        });
        wait_listening(port)?;
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
        (
            addr,
            Some(child),
            None,
            "gRPC -> ratelimit-svc process -> redis",
        )
    } else {
        let mut config = Config::from_lookup(|_| None)?;
        config.listen = "127.0.0.1:0".parse()?;
        config.http_listen = "127.0.0.1:0".parse()?;
        config.redis_url = Some(url.to_owned());
        config.redis_timeout = timeout;
        let running = server::start(&config, Arc::new(SystemClock)).await?;
        (
            running.grpc_addr,
            None,
            Some(running),
            "gRPC -> in-process service -> redis",
        )
    };
    if let Some(pid) = redis_pid {
        watched.push(Watched { name: "redis", pid });
    }
    // Two HTTP/2 connections, like an Envoy with two workers.
    let mut clients = Vec::new();
    for _ in 0..2 {
        clients.push(RateLimitServiceClient::connect(format!("http://{grpc_addr}")).await?);
    }
    let runs = measure(name, &Target::Grpc(clients), options, &watched).await?;
    if let Some(running) = running {
        running.shutdown().await?;
    }
    Ok(runs)
}

fn wait_listening(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
