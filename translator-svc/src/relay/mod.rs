//! The use case: resolve the model, convert the request for its Bedrock API, call Bedrock (with the
//! service-tier fallback), convert the answer back, and meter usage. No axum types here.

mod served;
mod stream;

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;
use serde_json::Value;
use std::sync::RwLock;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::keys::{KeyPolicies, KeyPolicy};

use crate::bedrock::{Bedrock, BedrockError, ConverseCall, InvokeCall};
use crate::beta::BetaPolicy;
use crate::config::Config;
use crate::convert::response::{
    ResponseOptions, TokenUsage, cache_write_1h_of, converse_service_tier, from_invoke_response,
    requests_only_1h_cache, to_messages_response, usage_of,
};
use crate::convert::{
    CountTokensPlan, RequestOptions, ServerToolsPolicy, estimate_input_tokens, to_converse_request,
    to_count_tokens_input, to_invoke_body,
};
use crate::error::ApiError;
use crate::ids;
use crate::media::MediaFetcher;
use crate::models::{Backend, Family, ModelTable, Route};
use crate::usage::{Outcome as UsageOutcome, UsageRecord, UsageSink};
use served::Served;

/// Bedrock rejects an InvokeModel body over this many bytes; we answer 413 ourselves instead.
const MAX_UPSTREAM_BODY_BYTES: usize = 25_000_000;
/// How long a request may wait for a free upstream slot before it is told the gateway is busy.
const QUEUE_WAIT: Duration = Duration::from_millis(250);

/// One piece of an SSE response: an already-encoded event, or, once at the very end, the usage
/// the response consumed (the edge reports it to the rate limiter as a trailer).
pub enum SseChunk {
    Event(Bytes),
    End(TokenUsage),
}

/// An SSE body, written as it comes.
pub type SseBody = Pin<Box<dyn Stream<Item = SseChunk> + Send>>;

pub enum Outcome {
    Message { message: Value, usage: TokenUsage },
    Stream(SseBody),
}

/// What the gateway knows about the caller.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub request_id: String,
    pub key_id: Option<String>,
    /// The key's service tier from the gate filter (`default` means none).
    pub tier: Option<String>,
    /// The client's `anthropic-beta` values, parsed, in order.
    pub client_betas: Vec<String>,
    pub session_id: Option<String>,
    /// Set by a PTC round for its model calls (usage records per call, ptc.md 16).
    pub ptc: Option<crate::usage::PtcCall>,
    /// The key's tokens-per-minute limit from the gate filter (`x-gw-tpm`; 0 = unlimited), for
    /// charging a stream the client abandoned (`ratelimit.rs`).
    pub tpm: Option<u64>,
}

pub struct TokenCount {
    pub input_tokens: u64,
    pub estimated: bool,
}

/// Cheap to clone (shared handles): a PTC streaming round owns a clone for its `'static` body.
#[derive(Clone)]
pub struct Relay {
    config: Arc<Config>,
    /// Replaced as a whole when operator entries change (see `set_models`).
    models: Arc<RwLock<Arc<ModelTable>>>,
    policies: Arc<dyn KeyPolicies>,
    betas: BetaPolicy,
    bedrock: Arc<dyn Bedrock>,
    permits: Arc<Semaphore>,
    usage: Arc<dyn UsageSink>,
    media: MediaFetcher,
    /// Programmatic Tool Calling; `None` when no ptc-svc is configured.
    ptc: Option<Arc<crate::ptc::Ptc>>,
    /// Charges the tokens of streams the client abandoned; `None` without `RATELIMIT_ENDPOINT`.
    charger: Option<crate::ratelimit::TokenCharger>,
}

/// Everything fixed for one request once the model is resolved.
struct Plan {
    call: CallContext,
    route: Route,
    tier: Option<String>,
    /// The key's prompt-cache TTL preference, applied to every cache marker.
    cache_ttl: Option<String>,
    stream: bool,
    response: ResponseOptions,
    started: Instant,
}

impl Plan {
    fn usage_record(
        &self,
        api: &'static str,
        usage: TokenUsage,
        outcome: UsageOutcome,
        ttft: Option<Duration>,
        served: &Served,
    ) -> UsageRecord {
        UsageRecord {
            request_id: self.call.request_id.clone(),
            key_id: self.call.key_id.clone(),
            requested_model: self.route.requested_model.clone(),
            resolved_model: self.route.resolved_id.clone(),
            api,
            tier: served.tier(),
            stream: self.stream,
            cache_write_1h_tokens: served.cache_write_1h(&usage),
            usage,
            latency: self.started.elapsed(),
            time_to_first_token: ttft,
            outcome,
            ptc: self.call.ptc.clone(),
        }
    }
}

impl Relay {
    pub fn new(
        config: Arc<Config>,
        models: ModelTable,
        policies: Arc<dyn KeyPolicies>,
        betas: BetaPolicy,
        bedrock: Arc<dyn Bedrock>,
        usage: Arc<dyn UsageSink>,
        ptc: Option<Arc<crate::ptc::Ptc>>,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(config.max_concurrent_calls));
        let charger = crate::ratelimit::TokenCharger::connect_lazy(&config.ratelimit)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "disconnected streams will not be charged to TPM limits");
                None
            });
        let media = MediaFetcher {
            allow_http: config.media_fetch_allow_http,
            allow_private: config.media_fetch_allow_private,
        };
        Relay {
            media,
            config,
            models: Arc::new(RwLock::new(Arc::new(models))),
            betas,
            bedrock,
            permits,
            usage,
            policies,
            ptc,
            charger,
        }
    }

    /// The model table in force (a snapshot: a concurrent reload does not change it).
    pub fn models(&self) -> Arc<ModelTable> {
        self.models
            .read()
            .map(|m| Arc::clone(&m))
            .unwrap_or_else(|poisoned| Arc::clone(&poisoned.into_inner()))
    }

    /// Keepalive interval of SSE responses (PTC streams ping on the same clock).
    pub(crate) fn sse_ping_interval(&self) -> Duration {
        self.config.sse_ping_interval
    }

    /// Charges `usage` to the caller's TPM limit in ratelimit-svc directly: for a response whose
    /// end Envoy never saw (no usage trailer), e.g. a PTC round finished after its client left.
    /// No-op without `RATELIMIT_ENDPOINT`, a key or its limit.
    pub(crate) fn charge_directly(&self, call: &CallContext, usage: &TokenUsage) {
        if let (Some(charger), Some(key_id), Some(tpm)) = (&self.charger, &call.key_id, call.tpm) {
            charger.charge(crate::ratelimit::TokenCharge {
                request_id: call.request_id.clone(),
                key_id: key_id.clone(),
                tpm,
                // Counted as the `x-gw-usage-tokens` trailer counts them.
                tokens: usage.input_tokens
                    + usage.cache_creation_input_tokens
                    + usage.output_tokens,
            });
        }
    }

    /// Swap in a rebuilt table (operator entries edited at run time).
    pub fn set_models(&self, table: ModelTable) {
        match self.models.write() {
            Ok(mut guard) => *guard = Arc::new(table),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(table),
        }
    }

    /// The caller's key policy; a key restricted to some models may not use others (403).
    async fn key_policy(
        &self,
        call: &CallContext,
        requested: Option<&str>,
    ) -> Result<KeyPolicy, ApiError> {
        let Some(key_id) = call.key_id.as_deref() else {
            return Ok(KeyPolicy::default());
        };
        let policy = self.policies.policy(key_id).await.map_err(|e| {
            // Failing closed: the restriction cannot be checked, so the request is not served.
            tracing::warn!(request_id = %call.request_id, error = %e, "cannot read the key policy");
            ApiError::overloaded("the key store is unavailable, retry shortly").with_retry_after(1)
        })?;
        let policy = policy.unwrap_or_default();
        if let Some(model) = requested
            && !policy.allows_model(model)
        {
            return Err(ApiError::permission(format!(
                "this API key is not allowed to use the model {model}"
            )));
        }
        Ok(policy)
    }

    fn options<'a>(&'a self, plan: &'a Plan) -> RequestOptions<'a> {
        RequestOptions {
            route: &plan.route,
            client_betas: &plan.call.client_betas,
            policy: &self.betas,
            server_tools: if self.config.server_tools_strip {
                ServerToolsPolicy::Strip
            } else {
                ServerToolsPolicy::Reject
            },
            context_edits_allowed: &self.config.context_edits_allowed,
            tool_types_pass: &self.config.tool_types_pass,
            tool_type_rename: &self.config.tool_type_rename,
            invoke_top_level_allow: &self.config.invoke_top_level_allow,
            strip_billing_header: self.config.strip_billing_header_block,
            cache_ttl_override: plan.cache_ttl.clone(),
            adaptive_fallback_budget: self.config.adaptive_fallback_budget,
            service_tier: plan.tier.clone(),
        }
    }

    async fn plan(&self, call: CallContext, request: &Value) -> Result<Plan, ApiError> {
        let requested = request
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid_at("model", "field required (a string)"))?;
        let policy = self.key_policy(&call, Some(requested)).await?;
        let route = self.models().resolve(requested)?;
        let tier = call
            .tier
            .clone()
            .filter(|t| t != "default")
            .or_else(|| self.config.default_service_tier.clone());
        let stop_sequences = request
            .get("stop_sequences")
            .and_then(Value::as_array)
            .map(|seqs| {
                seqs.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let response = ResponseOptions {
            requested_model: requested.to_string(),
            message_id: ids::message_id(),
            request_id: call.request_id.clone(),
            stop_sequences,
            is_claude: route.entry.family == Family::Claude,
        };
        Ok(Plan {
            stream: request
                .get("stream")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            call,
            route,
            tier,
            cache_ttl: policy.cache_ttl.map(|ttl| ttl.as_str().to_string()),
            response,
            started: Instant::now(),
        })
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        match tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                metrics::counter!("translator_overloaded_total").increment(1);
                Err(
                    ApiError::overloaded("the gateway is at its concurrency limit, retry shortly")
                        .with_retry_after(1),
                )
            }
        }
    }

    pub async fn messages(
        &self,
        call: CallContext,
        mut request: Value,
    ) -> Result<Outcome, ApiError> {
        if crate::ptc::declares_code_tool(self.ptc.as_deref(), &request) {
            return crate::ptc::messages(self.ptc.clone(), self, call, request).await;
        }
        crate::ptc::rebuild_inactive(&mut request, &self.config.ptc.code_tool_name);
        let plan =
            tracing::Instrument::instrument(self.plan(call, &request), tracing::info_span!("plan"))
                .await?;
        // The request span declared `model`; every later line of the request carries it.
        tracing::Span::current().record("model", plan.route.requested_model.as_str());
        self.media
            .inline_all(self.config.media_fetch_enabled, &mut request)
            .await?;
        let opts = self.options(&plan);
        let permit = self.acquire().await?;
        metrics::counter!("translator_requests_total",
            "model" => plan.route.requested_model.clone(),
            "api" => backend_label(plan.route.entry.backend),
            "stream" => if plan.stream { "true" } else { "false" })
        .increment(1);
        match plan.route.entry.backend {
            Backend::Invoke => {
                // The request is not needed after conversion: handed over, not copied.
                let invoke = to_invoke_body(std::mem::take(&mut request), &opts)?;
                let body = serde_json::to_vec(&invoke.body).map_err(|e| {
                    ApiError::api(format!("could not encode the upstream request: {e}"))
                })?;
                if body.len() > MAX_UPSTREAM_BODY_BYTES {
                    return Err(ApiError::too_large(format!(
                        "request is {} bytes once translated; Bedrock accepts at most {MAX_UPSTREAM_BODY_BYTES}",
                        body.len()
                    )));
                }
                let call = InvokeCall {
                    model_id: plan.route.resolved_id.clone(),
                    body: Bytes::from(body),
                    service_tier: plan.tier.clone(),
                };
                if plan.stream {
                    let upstream = self
                        .with_tier_fallback(
                            &plan,
                            call,
                            |b, c| b.invoke_stream(c),
                            |c| InvokeCall {
                                service_tier: None,
                                ..c
                            },
                        )
                        .await;
                    let (upstream, sent_tier) = self.settle(&plan, "invoke", upstream)?;
                    let mut served = Served::new(sent_tier, requests_only_1h_cache(&invoke.body));
                    served.reported_tier = upstream.service_tier;
                    let machine = stream::Machine::invoke(plan.response.clone());
                    stream::start(self, plan, machine, upstream.events, permit, served).await
                } else {
                    let result = self
                        .with_tier_fallback(
                            &plan,
                            call,
                            |b, c| b.invoke(c),
                            |c| InvokeCall {
                                service_tier: None,
                                ..c
                            },
                        )
                        .await;
                    let (output, sent_tier) = self.settle(&plan, "invoke", result)?;
                    let mut served = Served::new(sent_tier, requests_only_1h_cache(&invoke.body));
                    served.reported_tier = output.service_tier.clone();
                    let body: Value = serde_json::from_slice(&output.body).map_err(|_| {
                        ApiError::api("Bedrock returned a response that is not JSON")
                    })?;
                    let message = from_invoke_response(body, &plan.response)?;
                    let usage = usage_of(&message);
                    served.cache_write_1h = cache_write_1h_of(&message);
                    served.observe();
                    self.usage.record(plan.usage_record(
                        "invoke",
                        usage,
                        UsageOutcome::Ok,
                        None,
                        &served,
                    ));
                    drop(permit);
                    Ok(Outcome::Message { message, usage })
                }
            }
            Backend::Converse => {
                // A stream's input estimate (for a cut stream) reads the request before it is
                // handed over to the conversion.
                let input_estimate = plan.stream.then(|| estimate_input_tokens(&request));
                let converse = to_converse_request(std::mem::take(&mut request), &opts)?;
                let body = serde_json::to_value(&converse).map_err(|e| {
                    ApiError::api(format!("could not encode the upstream request: {e}"))
                })?;
                let only_1h_cache = requests_only_1h_cache(&body);
                let call = ConverseCall {
                    model_id: plan.route.resolved_id.clone(),
                    request: body,
                    service_tier: plan.tier.clone(),
                };
                let without_tier = |c: ConverseCall| {
                    let mut request = c.request;
                    if let Some(obj) = request.as_object_mut() {
                        obj.remove("serviceTier");
                    }
                    ConverseCall {
                        service_tier: None,
                        request,
                        ..c
                    }
                };
                if plan.stream {
                    let upstream = self
                        .with_tier_fallback(&plan, call, |b, c| b.converse_stream(c), without_tier)
                        .await;
                    let (upstream, sent_tier) = self.settle(&plan, "converse", upstream)?;
                    let mut served = Served::new(sent_tier, only_1h_cache);
                    served.input_estimate = input_estimate.unwrap_or_default();
                    let machine =
                        stream::Machine::converse(plan.response.clone(), self.config.metadata_wait);
                    stream::start(self, plan, machine, upstream, permit, served).await
                } else {
                    let result = self
                        .with_tier_fallback(&plan, call, |b, c| b.converse(c), without_tier)
                        .await;
                    let (output, sent_tier) = self.settle(&plan, "converse", result)?;
                    let mut served = Served::new(sent_tier, only_1h_cache);
                    served.reported_tier = converse_service_tier(&output);
                    let response = serde_json::from_value(output).map_err(|e| {
                        ApiError::api(format!(
                            "Bedrock returned an unexpected Converse response: {e}"
                        ))
                    })?;
                    let message = to_messages_response(response, &plan.response);
                    let usage = usage_of(&message);
                    served.cache_write_1h = cache_write_1h_of(&message);
                    served.observe();
                    self.usage.record(plan.usage_record(
                        "converse",
                        usage,
                        UsageOutcome::Ok,
                        None,
                        &served,
                    ));
                    drop(permit);
                    Ok(Outcome::Message { message, usage })
                }
            }
        }
    }

    fn settle<T>(
        &self,
        plan: &Plan,
        api: &'static str,
        result: Result<T, BedrockError>,
    ) -> Result<T, ApiError> {
        result.map_err(|e| self.fail(plan, api, e))
    }

    /// Map a Bedrock failure before commit for the client, logging and recording it once.
    fn fail(&self, plan: &Plan, api: &'static str, e: BedrockError) -> ApiError {
        let error = e.to_api_error(&plan.route.requested_model);
        // Upstream internals (AWS request id, raw message) go to the log, never to the client.
        tracing::warn!(request_id = %plan.call.request_id, kind = ?e.kind, aws_request_id = ?e.aws_request_id, message = %e.message, "bedrock call failed");
        self.usage.record(plan.usage_record(
            api,
            Default::default(),
            UsageOutcome::Error(error.metric_label()),
            None,
            // Nothing ran: the record keeps the tier that was asked for.
            &Served::new(plan.tier.clone(), false),
        ));
        error
    }

    /// Call once; if Bedrock rejects the service tier, retry once on `default` (spec 10.6).
    /// Also returns the tier sent on the call that answered (`None` after the fallback).
    async fn with_tier_fallback<'b, C, T, F>(
        &'b self,
        plan: &Plan,
        call: C,
        op: F,
        strip_tier: impl FnOnce(C) -> C,
    ) -> Result<(T, Option<String>), BedrockError>
    where
        C: Clone,
        F: Fn(&'b dyn Bedrock, C) -> BoxFuture<'b, Result<T, BedrockError>>,
    {
        let bedrock = self.bedrock.as_ref();
        // Until Bedrock answers (for a stream: its first response); the stream has its own span.
        let span = tracing::info_span!(
            "bedrock",
            model_id = %plan.route.resolved_id,
            otel.kind = "client",
        );
        let call = async move {
            match op(bedrock, call.clone()).await {
                Err(e) if plan.tier.is_some() && e.is_service_tier_rejection() => {
                    tracing::warn!(request_id = %plan.call.request_id, tier = ?plan.tier, model = %plan.route.resolved_id, "model rejected the service tier; retrying on default");
                    metrics::counter!("translator_service_tier_fallback_total").increment(1);
                    op(bedrock, strip_tier(call)).await.map(|out| (out, None))
                }
                other => other.map(|out| (out, plan.tier.clone())),
            }
        };
        tracing::Instrument::instrument(call, span).await
    }

    pub async fn count_tokens(
        &self,
        call: CallContext,
        mut request: Value,
    ) -> Result<TokenCount, ApiError> {
        let plan = self.plan(call, &request).await?;
        crate::ptc::rebuild_inactive(&mut request, &self.config.ptc.code_tool_name);
        self.media
            .inline_all(self.config.media_fetch_enabled, &mut request)
            .await?;
        let opts = self.options(&plan);
        match to_count_tokens_input(&request, &opts)? {
            CountTokensPlan::Bedrock { model_id, input } => {
                match self.bedrock.count_tokens(model_id, input).await {
                    Ok(n) => Ok(TokenCount {
                        input_tokens: n,
                        estimated: false,
                    }),
                    Err(e) => {
                        tracing::info!(request_id = %plan.call.request_id, kind = ?e.kind, "CountTokens failed; answering with an estimate");
                        Ok(TokenCount {
                            input_tokens: estimate_input_tokens(&request),
                            estimated: true,
                        })
                    }
                }
            }
            CountTokensPlan::Estimate { input_tokens } => Ok(TokenCount {
                input_tokens,
                estimated: true,
            }),
        }
    }

    /// Anthropic model objects for every listed entry, plus their Bedrock ids when
    /// `MODELS_LIST_BEDROCK_IDS` is on (spec 17).
    pub fn model_objects(&self) -> Vec<Value> {
        let table = self.models();
        let listed = table.listed();
        let mut objects: Vec<Value> = listed
            .iter()
            .map(|e| crate::api::model_object(&e.key, &e.display_name, e.created_at.as_deref()))
            .collect();
        if self.config.models_list_bedrock_ids {
            for e in &listed {
                if !objects.iter().any(|o| o["id"] == e.bedrock_id.as_str()) {
                    objects.push(crate::api::model_object(
                        &e.bedrock_id,
                        &e.display_name,
                        e.created_at.as_deref(),
                    ));
                }
            }
        }
        objects
    }

    /// `id` arrives percent-decoded (axum's `Path` decodes it once).
    pub fn model_object(&self, id: &str) -> Option<Value> {
        self.models()
            .lookup(id)
            .map(|e| crate::api::model_object(id, &e.display_name, e.created_at.as_deref()))
    }
}

fn backend_label(backend: Backend) -> &'static str {
    match backend {
        Backend::Invoke => "invoke",
        Backend::Converse => "converse",
    }
}
