//! Wiring: rules, store and checker behind the gRPC and HTTP listeners, with graceful shutdown.
//! `main` uses it with the system clock; tests bind port 0 and inject a clock or a store.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::check::Checker;
use crate::config::Config;
use crate::http::{HttpState, router};
use crate::limiter::Clock;
use crate::limits::Rules;
use crate::metrics::Metrics;
use crate::rls::Rls;
use crate::store::{CounterStore, MemoryStore, RedisStore};

/// A started service. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    /// Stops accepting, lets in-flight calls finish, and waits for both servers.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.wait().await
    }

    /// Waits until both servers stop (after `shutdown`, or on a server error).
    pub async fn wait(self) -> anyhow::Result<()> {
        for task in self.tasks {
            task.await.context("server task panicked")??;
        }
        Ok(())
    }

    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// Loads the rules and builds the store named by `config`, then starts.
pub async fn start(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Running> {
    let rules = match &config.rules_path {
        Some(path) => Rules::load(path)
            .with_context(|| format!("RATELIMIT_CONFIG: invalid rules in {}", path.display()))?,
        None => Rules::empty(),
    };
    let store: Arc<dyn CounterStore> = match &config.redis_url {
        Some(url) => Arc::new(RedisStore::new(url, config.redis_timeout).context("REDIS_URL")?),
        None => Arc::new(MemoryStore::new()),
    };
    start_with(config, rules, store, clock).await
}

/// Starts with explicit parts (tests use a fake store or a manual clock).
pub async fn start_with(
    config: &Config,
    rules: Rules,
    store: Arc<dyn CounterStore>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Running> {
    let metrics = Arc::new(Metrics::new());
    tracing::info!(
        store = store.kind(),
        domains = rules.domain_count(),
        failure_mode = config.failure_mode.name(),
        "ratelimit-svc starting"
    );
    let checker = Arc::new(Checker::new(
        rules,
        store,
        clock,
        config.failure_mode,
        metrics.clone(),
    ));
    let grpc_listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("RATELIMIT_LISTEN: cannot listen on {}", config.listen))?;
    let http_listener = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| {
            format!(
                "RATELIMIT_HTTP_LISTEN: cannot listen on {}",
                config.http_listen
            )
        })?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let rls = Rls::server(checker.clone());
    health_reporter.set_serving::<envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer<Rls>>().await;
    let grpc = tonic::transport::Server::builder()
        .trace_fn(crate::telemetry::call_span(
            config.export_traces,
            &config.log_level,
        ))
        .add_service(health_service)
        .add_service(rls)
        .serve_with_incoming_shutdown(
            // No Nagle delay: a check is one small frame each way and p99 latency is the point.
            TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
            until_stopped(stopped.clone()),
        );
    let http = axum::serve(
        http_listener,
        router(HttpState {
            checker,
            metrics: metrics.clone(),
        }),
    )
    .with_graceful_shutdown(until_stopped(stopped));
    tracing::info!(%grpc_addr, %http_addr, "ratelimit-svc listening");
    let tasks = vec![
        tokio::spawn(async move { grpc.await.context("gRPC server failed") }),
        tokio::spawn(async move { http.await.context("HTTP server failed") }),
    ];
    Ok(Running {
        grpc_addr,
        http_addr,
        metrics,
        stop,
        tasks,
    })
}

async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stopped.wait_for(|stop| *stop).await;
}
