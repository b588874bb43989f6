//! Assembles the service from its `Config`: telemetry sinks, the Bedrock client, the model table,
//! the relay and the gRPC routes. `main.rs` and in-process tests both start the service here.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::api::{AppState, Readiness};
use crate::auth;
use crate::bedrock::{self, Bedrock, BedrockSettings};
use crate::beta::BetaPolicy;
use crate::config::{ClaudeApi, Config};
use crate::keys;
use crate::models::{Backend, ModelEntry, ModelTable};
use crate::relay::Relay;

/// The process-wide Prometheus recorder (one per process, shared by in-process test services).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Histograms (not summaries) so dashboards can aggregate across replicas.
            let builder = PrometheusBuilder::new()
                .set_buckets(crate::usage::LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // A second install (another in-process instance) keeps the first recorder.
            let _ = metrics::set_global_recorder(recorder);
            crate::usage::catalog::describe();
            handle
        })
        .clone()
}

fn operator_models(config: &Config) -> anyhow::Result<Vec<ModelEntry>> {
    let mut entries = Vec::new();
    if let Some(path) = &config.model_map_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("MODEL_MAP_FILE: cannot read {}", path.display()))?;
        let mut from_file: Vec<ModelEntry> = serde_json::from_str(&text).with_context(|| {
            format!(
                "MODEL_MAP_FILE: {} is not a JSON array of model entries",
                path.display()
            )
        })?;
        entries.append(&mut from_file);
    }
    if let Some(inline) = &config.model_map_json {
        let mut inline: Vec<ModelEntry> =
            serde_json::from_str(inline).context("MODEL_MAP: not a JSON array of model entries")?;
        entries.append(&mut inline);
    }
    Ok(entries)
}

pub fn model_table(config: &Config) -> anyhow::Result<ModelTable> {
    let claude_backend = match config.claude_api {
        ClaudeApi::Invoke => Backend::Invoke,
        ClaudeApi::Converse => Backend::Converse,
    };
    Ok(ModelTable::builtin(
        &config.model_default_profile,
        config.model_derive_claude_ids,
    )
    .with_claude_backend(claude_backend)
    .with_overrides(operator_models(config)?))
}

pub fn beta_policy(config: &Config) -> anyhow::Result<BetaPolicy> {
    BetaPolicy::from_env_values(
        config.beta_flags_rename.as_deref(),
        config.beta_flags_drop.as_deref(),
        config.beta_flags_allow.as_deref(),
        config.beta_flags_unknown.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("BETA_FLAGS_*: {e}"))
}

pub async fn bedrock_client(config: &Config) -> anyhow::Result<Arc<dyn Bedrock>> {
    let settings = BedrockSettings {
        region: config.aws_region.clone(),
        endpoint_url: config.bedrock_endpoint_url.clone(),
        role_arn: config.bedrock_role_arn.clone(),
        role_region: config.bedrock_region.clone(),
        connect_timeout: config.bedrock_connect_timeout,
        read_timeout: config.upstream_idle_timeout,
        max_attempts: config.bedrock_max_attempts,
    };
    bedrock::connect(&settings).await
}

/// Build the whole service around a given Bedrock client.
pub async fn state(
    config: Config,
    bedrock: Arc<dyn Bedrock>,
) -> anyhow::Result<(Arc<AppState>, tonic::service::Routes, keys::Wired)> {
    let keys = keys::wire(&config.keys).await?;
    let config = Arc::new(config);
    let models = model_table(&config)?.with_overrides(keys.model_source.model_overrides().await);
    let policies: Arc<dyn keys::KeyPolicies> = keys.verifier.clone();
    let ptc = crate::ptc::Ptc::from_config(&config.ptc)?;
    let relay = Relay::new(
        config.clone(),
        models,
        policies,
        beta_policy(&config)?,
        // Every Bedrock call is timed and its failures counted, whatever the client behind it.
        Arc::new(bedrock::Timed::new(bedrock)),
        Arc::new(crate::usage::Metered::new(keys.usage_sink.clone())),
        ptc.clone(),
    );
    let verifier: Arc<dyn auth::KeyVerifier> = keys.verifier.clone();
    let grpc = tonic::service::Routes::new(auth::auth_service(verifier));
    let state = Arc::new(AppState {
        config,
        relay,
        metrics: metrics_handle(),
        readiness: Readiness::default(),
        admin: keys.admin_router.clone(),
        ptc,
    });
    spawn_model_refresh(&state, &keys);
    Ok((state, grpc, keys))
}

/// Re-read operator model entries every `STORE_REFRESH_SECS` (spec 6.1: cached at most 30 s), so
/// mapping edits through the admin API reach every replica without a restart.
fn spawn_model_refresh(state: &Arc<AppState>, keys: &keys::Wired) {
    let weak = Arc::downgrade(state);
    let source = keys.model_source.clone();
    let period = state.config.keys.refresh_interval;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { break };
            match model_table(&state.config) {
                Ok(table) => state
                    .relay
                    .set_models(table.with_overrides(source.model_overrides().await)),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot rebuild the model table")
                }
            }
        }
    });
}

/// A service running on a background task (tests, and `main` through `serve`).
pub struct Running {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The key store (and the embedded DynamoDB server) live as long as the service.
    pub keys: keys::Wired,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Bind `config.listen` and serve on a background task.
pub async fn spawn(config: Config, bedrock: Arc<dyn Bedrock>) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("TRANSLATOR_LISTEN: cannot bind {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (state, grpc, keys) = state(config, bedrock).await?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(crate::api::serve(listener, state, grpc, async move {
        let _ = rx.await;
    }));
    Ok(Running {
        addr,
        shutdown: Some(tx),
        task,
        keys,
    })
}
