//! Programmatic Tool Calling orchestration (ptc.md): activation, the model-facing request (code
//! tool, guide, rebuilt transcript), the round loop and its response shapes. Sandboxes live in
//! ptc-svc behind the `Sandbox` seam; nothing per request is kept here (replicas stay stateless).

mod claim;
pub mod config;
mod continuation;
mod health;
pub mod live;
mod round;
pub mod sandbox;
mod session;
mod stream;
pub mod tools;
pub mod transcript;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use gateway_proto::ptc::v1::Limits;
use serde_json::{Map, Value};
use tokio::sync::mpsc::UnboundedSender;

pub use config::PtcConfig;
pub use sandbox::{GrpcSandbox, Sandbox};
pub use transcript::rebuild_inactive;

use crate::convert::response::TokenUsage;
use crate::error::ApiError;
use crate::relay::{CallContext, Outcome, Relay};
use live::Emit;
use round::Round;
use transcript::Names;

/// The PTC orchestrator: configuration, the sandbox client and the cached health aggregate.
pub struct Ptc {
    config: PtcConfig,
    sandbox: Arc<dyn Sandbox>,
    health: Mutex<Option<(Instant, u16, Value)>>,
}

const DEFAULT_TOOL_TYPES: &[&str] = &["code_execution_20250825"];

/// True when the request declares a code execution tool: it is PTC's (or refused when disabled).
pub fn declares_code_tool(ptc: Option<&Ptc>, request: &Value) -> bool {
    match ptc {
        Some(ptc) => tools::declares_code_tool(request, &ptc.config.tool_types),
        None => {
            let defaults: Vec<String> = DEFAULT_TOOL_TYPES.iter().map(|s| s.to_string()).collect();
            tools::declares_code_tool(request, &defaults)
        }
    }
}

/// `POST /v1/messages` in PTC mode (or its refusal when PTC is off). A boxed future with a
/// declared `Send`: inner model calls go through the relay again (async recursion). A streaming
/// round owns its `Ptc` and a relay clone: its body outlives this call.
pub fn messages(
    ptc: Option<Arc<Ptc>>,
    relay: &Relay,
    mut call: CallContext,
    request: Value,
) -> BoxFuture<'_, Result<Outcome, ApiError>> {
    Box::pin(async move {
        let Some(ptc) = ptc else {
            return Err(ApiError::invalid_request(
                "code execution is not available on this gateway",
            ));
        };
        let prepared = ptc.prepare(&mut call, &request)?;
        let charge_to = call.clone();
        let result = if prepared.stream {
            return stream::serve(ptc, relay.clone(), call, prepared).await;
        } else if prepared.is_continuation() {
            detached(ptc, relay.clone(), call, prepared, None).await
        } else {
            serve_round(&ptc, relay, call, prepared, None).await
        };
        match result {
            // `usage` is what the `x-gw-usage-tokens` header charges; the body keeps the round's.
            Ok(answer) => Ok(Outcome::Message {
                message: answer.message,
                usage: answer.spent,
            }),
            Err(failed) => Err(failed.charge(relay, &charge_to)),
        }
    })
}

/// A round's client response and the tokens this request spent producing it: what rate limiting
/// charges (ptc.md 16). A replayed stored response spent nothing: its round was charged when it
/// was served (by Envoy from that response's usage trailer, or directly when its client had left),
/// so the retry's `x-gw-usage-tokens` is 0 while its body still reports the round's usage.
pub struct Answer {
    message: Value,
    spent: TokenUsage,
}

impl Answer {
    fn served(message: Value) -> Self {
        let spent = usage_of(&message);
        Answer { message, spent }
    }

    fn replayed(message: Value) -> Self {
        Answer {
            message,
            spent: TokenUsage::default(),
        }
    }
}

/// A round that failed, and what its model calls spent before it did (ptc.md 16). Envoy charges
/// nothing for an error response (it carries no usage header or trailer), so these tokens are
/// charged to the key's TPM limit directly, once: by the request answering with the error, or by
/// the round's task when its client has left. A retry that takes the round over charges only the
/// model calls it makes itself.
pub struct Failed {
    error: ApiError,
    spent: TokenUsage,
}

impl Failed {
    /// Charges what the round spent and hands back the error for the client.
    fn charge(self, relay: &Relay, call: &CallContext) -> ApiError {
        relay.charge_directly(call, &self.spent);
        self.error
    }
}

/// A PTC request checked and turned into its model-facing parts.
pub struct Prepared {
    tools: tools::PtcTools,
    stream: bool,
    client_messages: Vec<Value>,
    container: Option<String>,
    /// The model-facing request without `messages`.
    base: Map<String, Value>,
    message_id: String,
}

impl Prepared {
    fn is_continuation(&self) -> bool {
        continuation::answered_ids(&self.client_messages).is_some()
    }
}

/// A continuation round in a task of its own: once the client's results reach the code, the
/// round runs to its response and is stored for replay even when the client goes away (a
/// timeout, a dropped stream), so the SDK's retry gets that response (ptc.md 5.6, 10). The
/// caller only waits for it; a streaming caller also gets its steps. A round that ends after its
/// caller left, answered or failed, charges what it spent to the key's TPM limit itself: Envoy
/// charges from the response's usage header or trailer, which that client never got (ptc.md 16).
fn detached(
    ptc: Arc<Ptc>,
    relay: Relay,
    call: CallContext,
    prepared: Prepared,
    emit: Option<UnboundedSender<Emit>>,
) -> impl Future<Output = Result<Answer, Failed>> + Send + 'static {
    use tracing::Instrument;
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
    let round = async move {
        let charge_to = call.clone();
        let result = serve_round(&ptc, &relay, call, prepared, emit).await;
        if let Err(unsent) = answer_tx.send(result) {
            let (spent, outcome) = match &unsent {
                Ok(answer) => (answer.spent, "answered"),
                Err(failed) => (failed.spent, "failed"),
            };
            tracing::info!(request_id = %charge_to.request_id, outcome, "PTC round ended after its client left");
            relay.charge_directly(&charge_to, &spent);
        }
    };
    tokio::spawn(round.instrument(tracing::Span::current()));
    async move {
        answer_rx.await.unwrap_or_else(|_| {
            tracing::error!("a PTC round task ended abnormally");
            Err(Failed {
                error: ApiError::api("the code execution round ended abnormally"),
                spent: TokenUsage::default(),
            })
        })
    }
}

/// One round: a continuation (validate, deliver, finish the turn) or a new request (model loop).
/// `emit` set: a streaming round reporting its steps as they happen.
async fn serve_round(
    ptc: &Ptc,
    relay: &Relay,
    call: CallContext,
    prepared: Prepared,
    emit: Option<UnboundedSender<Emit>>,
) -> Result<Answer, Failed> {
    let Prepared {
        tools,
        client_messages,
        container,
        base,
        message_id,
        ..
    } = prepared;
    let names = Names {
        client_code_name: Some(&tools.client_code_name),
        code_tool_name: &tools.code_tool_name,
    };
    let messages = transcript::rebuild(&client_messages, &names);
    let code_tool_name = tools.code_tool_name.clone();
    let mut round = Round::new(ptc, relay, call, tools, base, message_id, emit);
    let result = drive(
        &mut round,
        &client_messages,
        messages,
        container,
        &code_tool_name,
    )
    .await;
    round.settle();
    result.map_err(|error| Failed {
        error,
        spent: round.usage,
    })
}

/// The body of `serve_round`, so that every way out of it settles the round.
async fn drive(
    round: &mut Round<'_>,
    client_messages: &[Value],
    messages: Vec<Value>,
    container: Option<String>,
    code_tool_name: &str,
) -> Result<Answer, ApiError> {
    if let Some(answered) = continuation::answered_ids(client_messages) {
        return match continuation::resume(round, client_messages, messages, answered, container)
            .await?
        {
            continuation::Resumed::Replay(message) => Ok(Answer::replayed(message)),
            continuation::Resumed::Done(message) => Ok(Answer::served(message)),
        };
    }
    if let Some(container) = &container {
        round.check_named(container).await?;
    }
    let messages = transcript::fill_code_results(messages, code_tool_name, &Default::default());
    let end = round.model_loop(messages).await?;
    Ok(Answer::served(round.response(&end)))
}

/// The `container` field: a string or `{"id": ...}`.
fn container_of(request: &Value) -> Option<String> {
    match request.get("container")? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

impl Ptc {
    pub fn new(config: PtcConfig, sandbox: Arc<dyn Sandbox>) -> Self {
        Ptc {
            config,
            sandbox,
            health: Mutex::new(None),
        }
    }

    /// From configuration: `None` when PTC is disabled (no `PTC_ENDPOINT` or `PTC_ENABLED=false`).
    pub fn from_config(config: &PtcConfig) -> anyhow::Result<Option<Arc<Ptc>>> {
        match (&config.endpoint, config.enabled) {
            (Some(endpoint), true) => {
                let sandbox = Arc::new(GrpcSandbox::connect_lazy(endpoint)?);
                Ok(Some(Arc::new(Ptc::new(config.clone(), sandbox))))
            }
            _ => Ok(None),
        }
    }

    pub fn config(&self) -> &PtcConfig {
        &self.config
    }

    /// gRPC deadline of calls that run code: the execution limit plus 5 s.
    fn code_deadline(&self) -> Duration {
        self.config.execution_timeout + Duration::from_secs(5)
    }

    /// Activation rules (section 1) and the model-facing parts; no I/O.
    fn prepare(&self, call: &mut CallContext, request: &Value) -> Result<Prepared, ApiError> {
        let tools = tools::analyze(request, &call.client_betas, &self.config)?;
        call.client_betas.retain(|b| b != tools::BETA);
        let Some(obj) = request.as_object() else {
            return Err(ApiError::invalid_request(
                "request body must be a JSON object",
            ));
        };
        let client_messages: Vec<Value> = match obj.get("messages") {
            Some(Value::Array(m)) => m.clone(),
            _ => return Err(ApiError::invalid_at("messages", "field required (a list)")),
        };
        let container = container_of(request);
        // A continuation's id names its round, so every request serving or replaying that round
        // (an identical retry, a racing duplicate) answers with the same id (ptc.md 5.6).
        let message_id = match (continuation::answered_ids(&client_messages), &container) {
            (Some(answered), Some(container)) => {
                let key_id = call.key_id.as_deref().unwrap_or("anonymous");
                continuation::round_message_id(key_id, container, &answered)
            }
            _ => crate::ids::message_id(),
        };
        Ok(Prepared {
            stream: obj.get("stream").and_then(Value::as_bool) == Some(true),
            container,
            base: self.model_base(obj, &tools),
            tools,
            client_messages,
            message_id,
        })
    }

    /// The per-session limits sent with `CreateSession`, from this service's configuration, so
    /// what the guide tells the model is what the sandbox enforces (ptc-svc never loosens its
    /// own limits).
    fn limits(&self) -> Limits {
        let c = &self.config;
        let u32_of = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Limits {
            execution_timeout_ms: u64::try_from(c.execution_timeout.as_millis())
                .unwrap_or(u64::MAX),
            max_stdout_bytes: u32_of(c.max_stdout_bytes),
            max_stderr_bytes: u32_of(c.max_stderr_bytes),
            max_calls_per_execution: u32_of(c.max_calls_per_execution),
            memory_bytes: c.memory_bytes.unwrap_or(0),
            milli_cpus: c.milli_cpus.unwrap_or(0),
            pids: c.pids.unwrap_or(0),
        }
    }

    /// The model-facing request without `messages`: code tool and direct tools, the guide last
    /// in `system`, `tool_choice` rewritten, `container` removed.
    fn model_base(
        &self,
        request: &Map<String, Value>,
        tools: &tools::PtcTools,
    ) -> Map<String, Value> {
        let mut base = request.clone();
        base.shift_remove("messages");
        base.shift_remove("container");
        base.insert("tools".into(), Value::Array(tools.upstream.clone()));
        tools::append_guide(&mut base, tools::guide(tools, &self.config));
        tools::rewrite_tool_choice(&mut base, tools);
        base
    }

    /// `/health/ptc` (section 15): HTTP status and body, cached 10 s.
    pub async fn health(&self) -> (u16, Value) {
        if let Ok(guard) = self.health.lock()
            && let Some((at, status, body)) = guard.as_ref()
            && at.elapsed() < Duration::from_secs(10)
        {
            return (*status, body.clone());
        }
        let (status, body) = health::health(self.sandbox.as_ref(), &self.config).await;
        if let Ok(mut guard) = self.health.lock() {
            *guard = Some((Instant::now(), status, body.clone()));
        }
        (status, body)
    }
}

/// The body to report when PTC is off.
pub fn disabled_health() -> Value {
    serde_json::json!({"status": "disabled", "enabled": false})
}

fn usage_of(message: &Value) -> TokenUsage {
    let n = |k: &str| {
        message
            .pointer(&format!("/usage/{k}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    TokenUsage {
        input_tokens: n("input_tokens"),
        output_tokens: n("output_tokens"),
        cache_read_input_tokens: n("cache_read_input_tokens"),
        cache_creation_input_tokens: n("cache_creation_input_tokens"),
    }
}
