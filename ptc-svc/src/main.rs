//! ptc-svc binary: config -> telemetry -> engine -> serve -> drain and clean up on SIGINT/SIGTERM.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use ptc_svc::config::{Config, PullPolicy};
use ptc_svc::sandbox::docker::DockerSandbox;
use ptc_svc::{server, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    // A bad setting (including LOG_LEVEL and OTEL_*) exits 2 before anything starts; the logger
    // may not exist yet, so the reason is written plainly.
    let started = Config::from_env()
        .map_err(anyhow::Error::from)
        .and_then(|config| Ok((telemetry::otel_from_env()?, config)))
        .and_then(|(otel, config)| Ok((telemetry::init(&config, otel.as_ref())?, config)));
    let (telemetry, config) = match started {
        Ok(started) => started,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "ptc-svc: {error:#}");
            return ExitCode::from(2);
        }
    };
    let result = run(config).await;
    // Spans of the last calls are still queued for export.
    telemetry.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "ptc-svc failed");
            let _ = writeln!(std::io::stderr(), "ptc-svc: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let sandbox = DockerSandbox::connect(config.sandbox.clone()).await;
    if config.sandbox.pull_policy == PullPolicy::IfMissing
        && let Err(error) = sandbox.pull_if_missing().await
    {
        tracing::warn!(%error, image = %config.sandbox.image, "cannot pull the sandbox image");
    }
    // A missing image is reported by /health/ptc and per request; it does not stop the service,
    // so an operator can load the image without a restart.
    let shutdown = shutdown_signal()?;
    let running = server::start(config, Arc::new(sandbox)).await?;
    let stop = running.stopper();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: draining sessions");
        let _ = stop.send(true);
    });
    running.wait().await
}

/// SIGINT or SIGTERM; the handlers are registered when this returns, not when it is awaited, so
/// a signal that follows the "listening" line at once still means a clean stop.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
