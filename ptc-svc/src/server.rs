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
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
            // Drain while the server still answers in-flight and paused sessions' calls.
            drained.drain().await;
        };
        let result = tonic::transport::Server::builder()
            .trace_fn(crate::telemetry::grpc_span)
            // HTTP/1.1 too, for Prometheus scraping /metrics (gRPC stays HTTP/2).
            .accept_http1(true)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
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
