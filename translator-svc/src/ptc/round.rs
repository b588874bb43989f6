//! One PTC round (ptc.md section 5): model calls through the relay, code tool calls run in the
//! session, client-visible blocks collected in production order, and the round's response shape.
//! A streaming round also reports each step as it happens (`Emit`) for the live SSE form.

use std::collections::HashMap;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::mpsc::UnboundedSender;

use gateway_proto::ptc::v1::{ExecuteRequest, FailureCode, QueuedExecution, outcome};
use serde_json::{Map, Value, json};

use super::Ptc;
use super::live::{Emit, ModelTurn, decode};
use super::sandbox::to_api_error;
pub use super::session::Live;
use super::tools::PtcTools;
use super::transcript::{fill_code_results, report, to_server_id};
use crate::convert::response::TokenUsage;
use crate::error::ApiError;
use crate::relay::{CallContext, Outcome, Relay, SseChunk};
use crate::usage::PtcCall;

/// What an execution step left for the round.
pub enum Step {
    Paused,
    /// The report for the model (6.3): text and is_error.
    Finished(String, bool),
}

pub struct Round<'a> {
    pub ptc: &'a Ptc,
    pub relay: &'a Relay,
    /// For inner model calls: the client's context minus the PTC beta.
    pub call: CallContext,
    pub key_id: String,
    pub tools: PtcTools,
    /// The model-facing request without `messages`.
    pub base: Map<String, Value>,
    /// A live idle session the request named (reused when code runs).
    pub named: Option<Live>,
    pub session: Option<Live>,
    pub content: Vec<Value>,
    pub usage: TokenUsage,
    /// The client-facing message id (known before the commit of a stream).
    pub message_id: String,
    /// The execution whose output the next model call follows (usage records, ptc.md 16).
    pub last_execution: Option<String>,
    model_calls: u32,
    /// Where a streaming round reports its steps; `None` for a JSON response.
    emit: Option<UnboundedSender<Emit>>,
    committed: bool,
    started: Instant,
    /// Set when the round returned (an answer or an error). A round dropped before that lost its
    /// client mid-way: see the `Drop` impl.
    settled: bool,
}

/// A round dropped before it returned lost its client mid-way (a new round is not detached, so
/// dropping the response drops it): nobody will see a usage header or trailer, so Envoy charges
/// nothing for the model calls it already finished. Those are charged to the key's TPM limit
/// here (ptc.md 16); the call in flight is charged by the relay when its stream is dropped.
impl Drop for Round<'_> {
    fn drop(&mut self) {
        if !self.settled {
            tracing::info!(request_id = %self.call.request_id, model_calls = self.model_calls, "PTC round left by its client; charging its finished model calls");
            self.relay.charge_directly(&self.call, &self.usage);
        }
    }
}

/// The end of a round: stop reason and stop sequence.
pub struct End {
    pub stop_reason: String,
    pub stop_sequence: Value,
}

impl End {
    pub fn tool_use() -> Self {
        End {
            stop_reason: "tool_use".into(),
            stop_sequence: Value::Null,
        }
    }
}

fn add(total: &mut TokenUsage, u: &TokenUsage) {
    total.input_tokens += u.input_tokens;
    total.output_tokens += u.output_tokens;
    total.cache_read_input_tokens += u.cache_read_input_tokens;
    total.cache_creation_input_tokens += u.cache_creation_input_tokens;
}

impl<'a> Round<'a> {
    pub fn new(
        ptc: &'a Ptc,
        relay: &'a Relay,
        call: CallContext,
        tools: PtcTools,
        base: Map<String, Value>,
        message_id: String,
        emit: Option<UnboundedSender<Emit>>,
    ) -> Self {
        let key_id = call.key_id.clone().unwrap_or_else(|| "anonymous".into());
        Round {
            ptc,
            relay,
            call,
            key_id,
            tools,
            base,
            named: None,
            session: None,
            content: Vec::new(),
            usage: TokenUsage::default(),
            message_id,
            last_execution: None,
            model_calls: 0,
            emit,
            committed: false,
            started: Instant::now(),
            settled: false,
        }
    }

    fn send(&self, emit: Emit) {
        if let Some(tx) = &self.emit {
            // A closed channel means the client went away; the round is being dropped anyway.
            let _ = tx.send(emit);
        }
    }

    /// The commit point of a streaming round (no-op for JSON or once committed).
    pub fn commit(&mut self, input_tokens: u64) {
        if self.committed || self.emit.is_none() {
            return;
        }
        self.committed = true;
        let container = self
            .session
            .as_ref()
            .or(self.named.as_ref())
            .map(|live| json!({"id": live.id, "expires_at": live.expires_at}));
        self.send(Emit::Commit {
            container,
            input_tokens,
        });
    }

    /// A client-visible block made by the round itself (not streamed from the model).
    fn produce(&mut self, block: Value) {
        self.send(Emit::Block(block.clone()));
        self.content.push(block);
    }

    /// One model call through the relay (which meters it). Streaming rounds stream it: every
    /// event goes to the client side as it arrives, and is folded back into the message here.
    async fn model_call(&mut self, messages: &[Value]) -> Result<Value, ApiError> {
        let mut body = self.base.clone();
        body.insert("messages".into(), Value::Array(messages.to_vec()));
        body.insert("stream".into(), Value::Bool(self.emit.is_some()));
        // Each model call of the round is its own usage record under the round's request id.
        let mut call = self.call.clone();
        call.ptc = Some(PtcCall {
            model_call: self.model_calls + 1,
            container_id: self
                .session
                .as_ref()
                .or(self.named.as_ref())
                .map(|live| live.id.clone()),
            execution_id: self.last_execution.clone(),
        });
        let outcome = self.relay.messages(call, Value::Object(body)).await?;
        self.model_calls += 1;
        match outcome {
            Outcome::Message { message, usage } => {
                add(&mut self.usage, &usage);
                Ok(message)
            }
            Outcome::Stream(mut events) => {
                let mut turn = ModelTurn::default();
                let mut usage = TokenUsage::default();
                while let Some(chunk) = events.next().await {
                    match chunk {
                        SseChunk::Event(bytes) => {
                            let Some(event) = decode(&bytes) else {
                                continue;
                            };
                            turn.on_event(&event);
                            // A new request commits on the first upstream model event.
                            self.commit(turn.input_tokens().unwrap_or(0));
                            self.send(Emit::Model(event));
                        }
                        SseChunk::End(u) => usage = u,
                    }
                }
                self.send(Emit::Usage(usage));
                add(&mut self.usage, &usage);
                turn.into_message()
            }
        }
    }

    /// `PTC_MAX_MODEL_CALLS` or `PTC_ROUND_BUDGET_S` used up. The budget only ends a round that
    /// produced something, so a `pause_turn` always makes progress.
    fn out_of_budget(&self) -> bool {
        let config = &self.ptc.config;
        if self.model_calls >= config.max_model_calls {
            return true;
        }
        let over = !self.content.is_empty() && self.started.elapsed() >= config.round_budget;
        if over {
            tracing::info!(request_id = %self.call.request_id, budget_s = config.round_budget.as_secs_f64(), "PTC round budget used up; answering pause_turn");
        }
        over
    }

    /// Model turns until the model stops calling the code tool, code pauses, or the budget ends.
    pub async fn model_loop(&mut self, mut messages: Vec<Value>) -> Result<End, ApiError> {
        loop {
            if self.out_of_budget() {
                return Ok(End {
                    stop_reason: "pause_turn".into(),
                    stop_sequence: Value::Null,
                });
            }
            let message = self.model_call(&messages).await?;
            let blocks = message
                .get("content")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut code_uses: Vec<(String, Value)> = Vec::new();
            let mut direct = false;
            for b in &blocks {
                let is_tool_use = b.get("type").and_then(Value::as_str) == Some("tool_use");
                let name = b.get("name").and_then(Value::as_str).unwrap_or_default();
                let id = b.get("id").and_then(Value::as_str).unwrap_or_default();
                if is_tool_use && name == self.tools.code_tool_name {
                    let input = b.get("input").cloned().unwrap_or(json!({}));
                    self.content.push(json!({
                        "type": "server_tool_use",
                        "id": to_server_id(id),
                        "name": self.tools.client_code_name,
                        "input": input,
                    }));
                    code_uses.push((id.to_string(), input));
                } else if is_tool_use {
                    direct = true;
                    let mut b = b.clone();
                    if let Some(obj) = b.as_object_mut() {
                        obj.insert("caller".into(), json!({"type": "direct"}));
                    }
                    self.content.push(b);
                } else {
                    self.content.push(b.clone());
                }
            }
            if code_uses.is_empty() {
                return Ok(End {
                    stop_reason: message
                        .get("stop_reason")
                        .and_then(Value::as_str)
                        .unwrap_or("end_turn")
                        .to_string(),
                    stop_sequence: message.get("stop_sequence").cloned().unwrap_or(Value::Null),
                });
            }
            let mut results = HashMap::new();
            for (i, (id, input)) in code_uses.iter().enumerate() {
                let queue = &code_uses[i + 1..];
                match self.run_code(&to_server_id(id), input, queue).await? {
                    Step::Paused => return Ok(End::tool_use()),
                    Step::Finished(text, is_error) => {
                        results.insert(id.clone(), (text, is_error));
                    }
                }
            }
            if direct {
                // D': the client runs the direct tools of this turn first.
                return Ok(End::tool_use());
            }
            messages.push(json!({"role": "assistant", "content": blocks}));
            messages = fill_code_results(messages, &self.tools.code_tool_name, &results);
        }
    }

    /// Starts one execution; `queue` = the later code tool_uses of the same turn (model ids).
    pub async fn run_code(
        &mut self,
        execution_id: &str,
        input: &Value,
        queue: &[(String, Value)],
    ) -> Result<Step, ApiError> {
        let Some(code) = input.get("code").and_then(Value::as_str) else {
            let content = json!({"type": "code_execution_tool_result_error", "error_code": "invalid_tool_input"});
            return Ok(self.finish_block(execution_id, content));
        };
        let container_id = self.ensure_session().await?;
        self.last_execution = Some(execution_id.to_string());
        let names = self.tools.callable_names();
        let request = ExecuteRequest {
            container_id,
            key_id: self.key_id.clone(),
            execution_id: execution_id.to_string(),
            code: code.to_string(),
            tool_names: names.clone(),
            queue: queue
                .iter()
                .map(|(id, input)| QueuedExecution {
                    execution_id: to_server_id(id),
                    code: input
                        .get("code")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    tool_names: names.clone(),
                })
                .collect(),
        };
        let outcome = self
            .ptc
            .sandbox
            .execute(request, self.ptc.code_deadline())
            .await
            .map_err(|s| to_api_error(&s))?;
        self.apply(outcome, execution_id)
    }

    /// Turns an outcome into client-visible blocks.
    pub fn apply(
        &mut self,
        outcome: gateway_proto::ptc::v1::Outcome,
        execution_id: &str,
    ) -> Result<Step, ApiError> {
        if let Some(live) = self.session.as_mut()
            && !outcome.expires_at.is_empty()
        {
            live.expires_at = outcome.expires_at.clone();
        }
        match outcome.result {
            Some(outcome::Result::Paused(paused)) => {
                for call in paused.calls {
                    let input: Value =
                        serde_json::from_str(&call.arguments_json).unwrap_or(json!({}));
                    self.produce(json!({
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.tool,
                        "input": input,
                        "caller": {"type": self.tools.caller_type, "tool_id": execution_id},
                    }));
                }
                Ok(Step::Paused)
            }
            Some(outcome::Result::Finished(f)) => {
                self.log_execution(execution_id, "finished", f.duration_ms, outcome.replayed);
                let content = json!({
                    "type": "code_execution_result",
                    "stdout": f.stdout,
                    "stderr": f.stderr,
                    "return_code": f.return_code,
                    "content": [],
                });
                Ok(self.finish_block(execution_id, content))
            }
            Some(outcome::Result::Failed(failed)) => {
                tracing::info!(execution_id, detail = %failed.detail, "code execution failed");
                self.log_execution(execution_id, "failed", failed.duration_ms, outcome.replayed);
                if outcome.session_closed {
                    self.session = None;
                }
                let code = match FailureCode::try_from(failed.code) {
                    Ok(FailureCode::ExecutionTimeExceeded) => "execution_time_exceeded",
                    _ => "unavailable",
                };
                let content =
                    json!({"type": "code_execution_tool_result_error", "error_code": code});
                Ok(self.finish_block(execution_id, content))
            }
            None => Err(ApiError::api("code execution returned no outcome")),
        }
    }

    /// Sandbox time per execution (ptc.md 16), beside the usage lines of the round's model calls.
    fn log_execution(&self, execution_id: &str, result: &str, duration_ms: u64, replayed: bool) {
        tracing::info!(
            request_id = %self.call.request_id,
            container_id = self.session.as_ref().map(|live| live.id.as_str()),
            execution_id,
            result,
            duration_ms,
            replayed,
            "code execution ended"
        );
    }

    fn finish_block(&mut self, execution_id: &str, content: Value) -> Step {
        let (text, is_error) = report(&content);
        self.produce(json!({
            "type": "code_execution_tool_result",
            "tool_use_id": execution_id,
            "content": content,
        }));
        Step::Finished(text, is_error)
    }

    /// The client response of this round (section 5.5).
    /// The round returned: whatever it spent is charged through its response from here on.
    pub fn settle(&mut self) {
        self.settled = true;
    }

    pub fn response(&self, end: &End) -> Value {
        let mut message = json!({
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.base.get("model").cloned().unwrap_or(Value::Null),
            "content": self.content,
            "stop_reason": end.stop_reason,
            "stop_sequence": end.stop_sequence,
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
                "cache_creation_input_tokens": self.usage.cache_creation_input_tokens,
                "cache_read_input_tokens": self.usage.cache_read_input_tokens,
            },
        });
        if let Some(live) = self.session.as_ref().or(self.named.as_ref())
            && let Some(obj) = message.as_object_mut()
        {
            obj.insert(
                "container".into(),
                json!({"id": live.id, "expires_at": live.expires_at}),
            );
        }
        message
    }
}
