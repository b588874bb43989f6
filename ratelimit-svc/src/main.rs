//! ratelimit-svc binary: config -> telemetry -> serve -> graceful shutdown on SIGINT/SIGTERM.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use ratelimit_svc::config::Config;
use ratelimit_svc::limiter::SystemClock;
use ratelimit_svc::{server, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The logger may not exist yet (bad LOG_LEVEL), so write the reason plainly.
            let _ = writeln!(std::io::stderr(), "ratelimit-svc: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(&config)?;
    let running = server::start(&config, Arc::new(SystemClock)).await?;
    let stop = running.stopper();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    running.wait().await
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
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
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
