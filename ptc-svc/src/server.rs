//! Wiring: sweep orphans, serve gRPC on the configured listener, sweep expired sessions, and on
//! shutdown drain (no new sessions, running executions may finish) and remove every container.

use std::sync::Arc;

use gateway_proto::ptc::v1::ptc_server::PtcServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::PtcService;
use crate::api::forward::Peers;
use crate::config::Config;
use crate::sandbox::Sandbox;
use crate::session::{Sessions, now_ms};

/// Bodies carry code, outputs and stored rounds: allow more than tonic's 4 MiB default.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// After the drain, how long open connections get to close. The graceful stop sends GOAWAY and a
/// PING and waits for every connection to end; a client that never answers (a frozen or
/// partitioned translator) would otherwise hold the process until it is killed, before the
/// containers are removed. Every call has finished by then, so closing the rest loses nothing.
const CONNECTION_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Running {
    pub local_addr: std::net::SocketAddr,
    pub sessions: Arc<Sessions>,
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// A handle that starts the graceful shutdown when sent `true`.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }

    /// Waits until the server stopped and every session was drained.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await?
    }

    /// Stops serving at once, without draining or removing containers: what a crash leaves
    /// behind (the next start of the same replica id sweeps them). For tests.
    pub fn abort(self) {
        self.task.abort();
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.wait().await
    }
}

/// Binds `config.listen` and serves until stopped.
pub async fn start(config: Config, sandbox: Arc<dyn Sandbox>) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("PTC_LISTEN: cannot bind {}: {e}", config.listen))?;
    serve(listener, config, sandbox).await
}

/// Serves on an already bound listener (tests bind port 0 first, to know peers' addresses).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    sandbox: Arc<dyn Sandbox>,
) -> anyhow::Result<Running> {
    let local_addr = listener.local_addr()?;
    // Containers of this replica that survived a crash are orphans: nobody can reach them.
    match sandbox
        .sweep(Some(&config.replica_id), now_ms() / 1000)
        .await
    {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed orphaned sandbox containers"),
        Err(error) => tracing::warn!(%error, "orphan sweep failed; the engine may be unreachable"),
    }
    let config = Arc::new(config);
    let sessions = Sessions::new(Arc::clone(&config), sandbox);
    let peers = Arc::new(Peers::new(config.replica_id.clone(), config.peers.clone()));
    let service = PtcServer::new(PtcService::new(Arc::clone(&sessions), peers))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let routes = tonic::service::Routes::from(crate::metrics::router(Arc::clone(&sessions)))
        .add_service(service);
    let (stop, mut stopped) = watch::channel(false);
    let sweeper = tokio::spawn(sweep_loop(Arc::clone(&sessions), stop.subscribe()));
    let drained = Arc::clone(&sessions);
    let mut serve_stop = stop.subscribe();
    let task = tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let (drain_done, drain_finished) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
            // Drain while the server still answers in-flight and paused sessions' calls.
            drained.drain().await;
            let _ = drain_done.send(());
        };
        let serving = tonic::transport::Server::builder()
            .trace_fn(crate::telemetry::grpc_span)
            // HTTP/1.1 too, for Prometheus scraping /metrics (gRPC stays HTTP/2).
            .accept_http1(true)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, shutdown);
        let result = tokio::select! {
            result = serving => result,
            () = async {
                if drain_finished.await.is_err() {
                    // The server ended without a shutdown: its own result decides.
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(CONNECTION_GRACE).await;
            } => {
                tracing::warn!(grace_ms = CONNECTION_GRACE.as_millis() as u64,
                    "connections still open after the drain; closing them");
                Ok(())
            }
        };
        let _ = serve_stop.wait_for(|stop| *stop).await;
        sweeper.abort();
        result.map_err(anyhow::Error::from)
    });
    tracing::info!(%local_addr, replica = %config.replica_id, image = %config.sandbox.image, "ptc-svc listening");
    Ok(Running {
        local_addr,
        sessions,
        stop,
        task,
    })
}

async fn sweep_loop(sessions: Arc<Sessions>, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(sessions.config.sweep_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        sessions.sweep_expired().await;
        // Containers whose hard lifetime passed, of any replica (one that crashed for good).
        if let Err(error) = sessions.sandbox.sweep(None, now_ms() / 1000).await {
            tracing::warn!(%error, "expired-container sweep failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, Instant};

    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::sandbox::fake::FakeSandbox;

    /// A client that opened an HTTP/2 connection and then stopped answering (it never acks the
    /// shutdown PING) does not hold the stop beyond the grace.
    #[tokio::test]
    async fn a_silent_http2_client_does_not_hold_the_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = Config::from_lookup(|_| None).unwrap();
        let (sandbox, _containers) = FakeSandbox::scripted();
        let running = serve(listener, config, Arc::new(sandbox)).await.unwrap();
        let mut silent = tokio::net::TcpStream::connect(running.local_addr)
            .await
            .unwrap();
        // The HTTP/2 preface and an empty SETTINGS frame; then nothing is ever read or sent.
        silent
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;

        let started = Instant::now();
        tokio::time::timeout(CONNECTION_GRACE * 3, running.shutdown())
            .await
            .expect("the shutdown finished despite the silent connection")
            .unwrap();
        assert!(
            started.elapsed() >= CONNECTION_GRACE,
            "it waited for the grace first"
        );
        drop(silent);
    }
}
