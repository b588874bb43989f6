//! `cargo xtask up`: the whole gateway on this machine with embedded defaults. Builds the filter
//! and the services, starts (optionally) the fake Bedrock, translator-svc and Envoy, prints how to
//! use it, and stops every child on Ctrl-C, SIGTERM or when one of them dies.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

use crate::cmd;
use crate::gateway::{self, GatewayConfig};
use crate::stack::{Spawn, Supervisor};
use crate::tools;

pub struct UpOptions {
    pub fake_bedrock: bool,
    pub release: bool,
    pub port: u16,
}

impl Default for UpOptions {
    fn default() -> Self {
        Self {
            fake_bedrock: false,
            release: false,
            port: 8080,
        }
    }
}

const TRANSLATOR_ADDR: &str = "127.0.0.1:50051";
const PTC_ADDR: &str = "127.0.0.1:50053";
const RATELIMIT_ADDR: &str = "127.0.0.1:50052";
const RATELIMIT_HTTP_ADDR: &str = "127.0.0.1:9092";
const ADMIN_PORT: u16 = 9901;
const STATS_PORT: u16 = 9902;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(root: &Path, options: UpOptions) -> Result<()> {
    let envoy = tools::ensure_envoy(root)?;
    let wasm = tools::build_filter(root)?;
    let mut packages = vec!["translator-svc", "ratelimit-svc"];
    if options.fake_bedrock {
        packages.push("fake-bedrock");
    }
    // Programmatic Tool Calling runs when a Docker engine is reachable (spec: "sandbox if a
    // Docker engine is reachable"); without one the gateway answers PTC requests with a 400.
    let sandbox = tools::docker_engine_up();
    if sandbox {
        packages.push("ptc-svc");
    } else {
        eprintln!("xtask: no Docker engine reachable: starting without the PTC sandbox");
    }
    let bin_dir = tools::build_binaries(root, &packages, options.release)?;
    if sandbox {
        // Idempotent: a no-op when the image already carries the current runner.
        cmd::run(&mut std::process::Command::new(bin_dir.join("ptc-image")))?;
    }
    let data_dir = root.join(".gateway");
    std::fs::create_dir_all(&data_dir)?;
    let master_key = master_key(&data_dir)?;

    let runtime = tokio::runtime::Runtime::new()?;
    // block_on runs on this (main) thread, which lives as long as the children: see Supervisor::spawn.
    runtime.block_on(async {
        let mut supervisor = Supervisor::new(&data_dir.join("logs"), true)?;
        let built = Built {
            envoy: &envoy,
            wasm: &wasm,
            bin_dir: &bin_dir,
            sandbox,
        };
        let result = serve(&mut supervisor, &options, built, &data_dir, &master_key).await;
        eprintln!("xtask: stopping the gateway");
        supervisor.shutdown(Duration::from_secs(10)).await;
        result
    })
}

/// What `serve` needs from the build.
struct Built<'a> {
    envoy: &'a Path,
    wasm: &'a Path,
    bin_dir: &'a Path,
    /// Start ptc-svc (a Docker engine answered).
    sandbox: bool,
}

async fn serve(
    supervisor: &mut Supervisor,
    options: &UpOptions,
    built: Built<'_>,
    data_dir: &Path,
    master_key: &str,
) -> Result<()> {
    let internal_secret = gateway::random_token(40);
    let mut env = vec![
        ("MASTER_API_KEY".to_string(), master_key.to_string()),
        (
            "GATEWAY_INTERNAL_SECRET".to_string(),
            internal_secret.clone(),
        ),
        ("LOG_FORMAT".to_string(), "text".to_string()),
        ("NO_COLOR".to_string(), "1".to_string()),
        // The embedded key store lives with the rest of the run state.
        (
            "GATEWAY_DATA_DIR".to_string(),
            data_dir.display().to_string(),
        ),
    ];
    if std::env::var_os("AWS_REGION").is_none() {
        env.push(("AWS_REGION".to_string(), "us-east-1".to_string()));
    }
    if options.fake_bedrock {
        let (fake_url, _pid) =
            gateway::start_fake_bedrock(supervisor, built.bin_dir, &[], READY_TIMEOUT).await?;
        eprintln!("xtask: fake Bedrock at {fake_url}");
        env.extend([
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME".to_string(), fake_url),
            ("AWS_ACCESS_KEY_ID".to_string(), "fake".to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), "fake".to_string()),
        ]);
    }
    if built.sandbox {
        let (_pid, mut lines) = supervisor.spawn(Spawn {
            name: "ptc-svc",
            program: built.bin_dir.join("ptc-svc"),
            args: Vec::new(),
            env: vec![
                ("PTC_LISTEN".to_string(), PTC_ADDR.to_string()),
                ("LOG_FORMAT".to_string(), "text".to_string()),
                ("NO_COLOR".to_string(), "1".to_string()),
            ],
        })?;
        supervisor
            .wait_line(&mut lines, "ptc-svc listening", READY_TIMEOUT)
            .await?;
        env.push(("PTC_ENDPOINT".to_string(), format!("http://{PTC_ADDR}")));
    }
    let ratelimit: SocketAddr = RATELIMIT_ADDR.parse()?;
    gateway::start_ratelimit(
        supervisor,
        built.bin_dir,
        ratelimit,
        RATELIMIT_HTTP_ADDR.parse()?,
        None,
        READY_TIMEOUT,
    )
    .await?;
    // Tokens of streams a client abandons are charged here by translator-svc itself: Envoy gets
    // no usage trailer from a reset stream.
    env.push((
        "RATELIMIT_ENDPOINT".to_string(),
        format!("http://{ratelimit}"),
    ));
    let translator: SocketAddr = TRANSLATOR_ADDR.parse()?;
    gateway::start_translator(supervisor, built.bin_dir, translator, env, READY_TIMEOUT).await?;

    let listen = SocketAddr::from(([127, 0, 0, 1], options.port));
    let config = GatewayConfig {
        ratelimit: Some(ratelimit),
        listen,
        admin_port: ADMIN_PORT,
        stats_port: STATS_PORT,
        translator,
        wasm: built.wasm.to_path_buf(),
        internal_secret,
    };
    let config_path = data_dir.join("envoy.yaml");
    gateway::start_envoy(
        supervisor,
        built.envoy,
        &config,
        &config_path,
        None,
        READY_TIMEOUT,
    )
    .await?;
    banner(listen, master_key, options.fake_bedrock, data_dir);

    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = terminate.recv() => Ok(()),
        exited = supervisor.any_exit() => {
            let (name, status) = exited?;
            anyhow::bail!("{name} exited ({status})\n{}", supervisor.log_tail(name))
        }
    }
}

/// MASTER_API_KEY from the environment, else the key generated on the first run and kept in
/// `<data>/master_api_key` so a configured client keeps working across runs.
fn master_key(data_dir: &Path) -> Result<String> {
    if let Ok(key) = std::env::var("MASTER_API_KEY")
        && !key.trim().is_empty()
    {
        return Ok(key);
    }
    let path: PathBuf = data_dir.join("master_api_key");
    if let Ok(key) = std::fs::read_to_string(&path)
        && key.trim().starts_with("sk-gw-")
    {
        return Ok(key.trim().to_string());
    }
    let key = format!("sk-gw-{}", gateway::random_token(40));
    std::fs::write(&path, &key).with_context(|| format!("writing {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(key)
}

fn banner(listen: SocketAddr, key: &str, fake: bool, data_dir: &Path) {
    let upstream = if fake {
        "the fake Bedrock (no AWS needed)"
    } else {
        "Amazon Bedrock (your AWS credentials and AWS_REGION)"
    };
    println!(
        "\n\
         ================================================================\n\
         Gateway ready: http://{listen}  ->  {upstream}\n\
         Master key:    {key}\n\
         \n\
         Claude Code:\n\
         \x20 export ANTHROPIC_BASE_URL=http://{listen}\n\
         \x20 export ANTHROPIC_API_KEY={key}\n\
         \x20 claude\n\
         Anthropic SDKs read the same two variables.\n\
         \n\
         Logs and config: {}   (Ctrl-C stops everything)\n\
         ================================================================\n",
        data_dir.display()
    );
}
