//! ratelimit-svc binary: config -> telemetry -> serve -> graceful shutdown on SIGINT/SIGTERM.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use ratelimit_svc::config::Config;
use ratelimit_svc::limiter::SystemClock;
use ratelimit_svc::{server, telemetry};

// One thread runs everything. A check is a few microseconds of CPU between network waits
// (Envoy -> here -> Redis -> here -> Envoy); on the work-stealing runtime each of those
// hand-offs could wake the other worker (eventfd, futex, a context switch), which cost more
// CPU and latency than the check itself. Redis, the shared bottleneck, is single-threaded
// anyway; more throughput means more replicas.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // A bad setting (including LOG_LEVEL and OTEL_*) exits 2 before anything starts; the logger
    // may not exist yet, so the reason is written plainly.
    let started = Config::from_env()
        .map_err(anyhow::Error::from)
        .and_then(|config| Ok((telemetry::otel_from_env()?, config)))
        .and_then(|(otel, mut config)| {
            config.export_traces = otel.is_some();
            Ok((telemetry::init(&config, otel.as_ref())?, config))
        });
    let (telemetry, config) = match started {
        Ok(started) => started,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "ratelimit-svc: {error:#}");
            return ExitCode::from(2);
        }
    };
    let result = run(&config).await;
    // Spans of the last calls are still queued for export.
    telemetry.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "ratelimit-svc failed");
            let _ = writeln!(std::io::stderr(), "ratelimit-svc: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: &Config) -> anyhow::Result<()> {
    // Installed before the server announces itself: a SIGTERM that follows the "listening" line
    // at once must still mean a clean stop, not the default action (death by signal).
    let shutdown = shutdown_signal()?;
    let running = server::start(config, Arc::new(SystemClock)).await?;
    let stop = running.stopper();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    running.wait().await
}

/// SIGINT or SIGTERM; the handlers are registered when this returns, not when it is awaited.
#[cfg(unix)]
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

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
