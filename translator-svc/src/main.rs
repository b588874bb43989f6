//! translator-svc binary: config -> telemetry -> state -> serve -> graceful shutdown.

use std::process::ExitCode;

use translator_svc::config::Config;
use translator_svc::{app, telemetry};

/// Every request allocates a few hundred small objects (JSON values, headers, SDK config bags)
/// on one worker thread and frees some on another. glibc malloc (arena locks, fastbin
/// consolidation) took ~14% of the CPU of a request; with mimalloc's per-thread pages a request
/// costs ~12% less CPU. Only this binary: in-process tests keep the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// SIGINT or SIGTERM; the handlers are registered when this returns, not when it is awaited, so
/// a signal that follows the "listening" line at once still means a clean stop.
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

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            // Logging is not configured yet; this one line is the whole diagnosis.
            #[expect(
                clippy::print_stderr,
                reason = "configuration errors are reported before telemetry exists"
            )]
            {
                eprintln!("translator-svc: {e}");
            }
            return ExitCode::from(2);
        }
    };
    let telemetry = match telemetry::init(config.log_format, &config.telemetry) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            #[expect(
                clippy::print_stderr,
                reason = "the logger could not be installed, so stderr is all there is"
            )]
            {
                eprintln!("translator-svc: {e:#}");
            }
            return ExitCode::from(2);
        }
    };
    let listen = config.listen;
    let result = async {
        let bedrock = app::bedrock_client(&config).await?;
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (state, grpc, keys) = app::state(config, bedrock).await?;
        let shutdown = shutdown_signal()?;
        tracing::info!(%addr, "translator-svc listening on {addr}");
        translator_svc::api::serve(listener, state, grpc, shutdown).await?;
        // Write the usage of the last requests before the process (and the embedded store) ends.
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(10), keys.usage_sink.flush()).await;
        anyhow::Ok(())
    }
    .await;
    let code = match result {
        Ok(()) => {
            tracing::info!("translator-svc stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "translator-svc failed");
            ExitCode::FAILURE
        }
    };
    // Spans of the last requests are still queued for export.
    telemetry.shutdown().await;
    code
}
