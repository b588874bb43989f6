//! ptc-svc binary: config -> telemetry -> engine -> serve -> drain and clean up on SIGINT/SIGTERM.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use ptc_svc::config::{Config, PullPolicy};
use ptc_svc::sandbox::docker::DockerSandbox;
use ptc_svc::{server, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The logger may not exist yet (bad LOG_LEVEL), so write the reason plainly.
            let _ = writeln!(std::io::stderr(), "ptc-svc: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(&config)?;
    let sandbox = DockerSandbox::connect(config.sandbox.clone()).await;
    if config.sandbox.pull_policy == PullPolicy::IfMissing
        && let Err(error) = sandbox.pull_if_missing().await
    {
        tracing::warn!(%error, image = %config.sandbox.image, "cannot pull the sandbox image");
    }
    // A missing image is reported by /health/ptc and per request; it does not stop the service,
    // so an operator can load the image without a restart.
    let running = server::start(config, Arc::new(sandbox)).await?;
    let stop = running.stopper();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining sessions");
        let _ = stop.send(true);
    });
    running.wait().await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = tokio::signal::ctrl_c();
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = interrupt => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = interrupt.await;
        }
    }
}
