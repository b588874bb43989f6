//! The streaming form of a PTC round (ptc.md section 7) as synchronous state machines: `LiveRound`
//! turns what the round produces (commit, inner model SSE events, complete blocks) into the
//! client's one SSE message, re-indexed, with the code `tool_use` rewritten on the fly; `ModelTurn`
//! folds one inner model stream back into the message the round loop reasons about. No I/O here:
//! the async shell (`stream.rs`) adds pings and the final `error` event.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::transcript::to_server_id;
use crate::anthropic::stream::SseEvent;
use crate::convert::response::TokenUsage;
use crate::error::{ApiError, ErrorType};

/// What a streaming round reports while it runs, in production order.
#[derive(Debug, Clone, PartialEq)]
pub enum Emit {
    /// The commit point: `message_start` (and `ping`) now.
    Commit {
        container: Option<Value>,
        input_tokens: u64,
    },
    /// One event of an inner model call, as the relay's converters produced it.
    Model(SseEvent),
    /// A complete client-visible block made by the round (code result, sandbox `tool_use`).
    Block(Value),
    /// The final usage of one finished (or abandoned) inner model call.
    Usage(TokenUsage),
}

fn kind(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or_default()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The client side of a streaming round.
pub struct LiveRound {
    message_id: String,
    model: Value,
    code_tool_name: String,
    client_code_name: String,
    committed: bool,
    next_index: usize,
    /// Inner model call's block index -> client index (reset per model call).
    indices: HashMap<u64, usize>,
    usage: TokenUsage,
}

impl LiveRound {
    pub fn new(
        message_id: String,
        model: Value,
        code_tool_name: &str,
        client_code_name: &str,
    ) -> Self {
        LiveRound {
            message_id,
            model,
            code_tool_name: code_tool_name.to_string(),
            client_code_name: client_code_name.to_string(),
            committed: false,
            next_index: 0,
            indices: HashMap::new(),
            usage: TokenUsage::default(),
        }
    }

    pub fn committed(&self) -> bool {
        self.committed
    }

    /// Tokens of the model calls seen so far (the round's sum once it ends).
    pub fn usage(&self) -> TokenUsage {
        self.usage
    }

    pub fn on_emit(&mut self, emit: Emit) -> Vec<SseEvent> {
        match emit {
            Emit::Commit {
                container,
                input_tokens,
            } => self.commit(container, input_tokens),
            Emit::Model(event) => self.on_model(event),
            Emit::Block(block) => {
                let index = self.next_index;
                self.next_index += 1;
                block_events(index, &block)
            }
            Emit::Usage(u) => {
                self.usage.input_tokens += u.input_tokens;
                self.usage.output_tokens += u.output_tokens;
                self.usage.cache_read_input_tokens += u.cache_read_input_tokens;
                self.usage.cache_creation_input_tokens += u.cache_creation_input_tokens;
                Vec::new()
            }
        }
    }

    fn commit(&mut self, container: Option<Value>, input_tokens: u64) -> Vec<SseEvent> {
        if self.committed {
            return Vec::new();
        }
        self.committed = true;
        let message = json!({
            "id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 0,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            "container": container.unwrap_or(Value::Null),
        });
        vec![
            SseEvent::new(
                "message_start",
                json!({"type": "message_start", "message": message}),
            ),
            SseEvent::ping(),
        ]
    }

    /// Inner model events: blocks re-indexed and rewritten; the inner message frame (start,
    /// delta, stop), its pings and its error are the round's business, not forwarded.
    fn on_model(&mut self, event: SseEvent) -> Vec<SseEvent> {
        let mut data = event.data;
        let inner = data.get("index").and_then(Value::as_u64);
        match (event.event.as_str(), inner) {
            ("message_start", _) => {
                // A new model call: its indices start again at 0.
                self.indices.clear();
                Vec::new()
            }
            ("content_block_start", Some(inner)) => {
                let index = self.next_index;
                self.next_index += 1;
                self.indices.insert(inner, index);
                if let Some(block) = data.get_mut("content_block") {
                    self.rewrite_start(block);
                }
                data["index"] = json!(index);
                vec![SseEvent::new("content_block_start", data)]
            }
            ("content_block_delta" | "content_block_stop", Some(inner)) => {
                match self.indices.get(&inner) {
                    Some(index) => {
                        data["index"] = json!(index);
                        vec![SseEvent::new(event.event, data)]
                    }
                    None => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    /// The code tool's start becomes `server_tool_use`; direct tool_use starts get their caller.
    fn rewrite_start(&self, block: &mut Value) {
        if kind(block) != "tool_use" {
            return;
        }
        if str_of(block, "name") == self.code_tool_name {
            *block = json!({"type": "server_tool_use", "id": to_server_id(str_of(block, "id")),
                            "name": self.client_code_name, "input": {}});
        } else if let Some(obj) = block.as_object_mut() {
            obj.insert("caller".into(), json!({"type": "direct"}));
        }
    }

    /// The end of a round that ran to its response: blocks the client has not seen yet (a
    /// stored round replayed after the commit), then `message_delta` and `message_stop`. Before
    /// the commit, the whole message in buffered form.
    pub fn finish(mut self, message: &Value) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if !self.committed {
            // A stored round replayed before the commit keeps its own id (ptc.md 5.6).
            if let Some(id) = message.get("id").and_then(Value::as_str) {
                self.message_id = id.to_string();
            }
            let input = message
                .pointer("/usage/input_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            out.extend(self.commit(message.get("container").cloned(), input));
        }
        let blocks = message["content"].as_array().cloned().unwrap_or_default();
        for block in blocks.iter().skip(self.next_index) {
            out.extend(self.on_emit(Emit::Block(block.clone())));
        }
        out.push(SseEvent::new(
            "message_delta",
            json!({"type": "message_delta",
                   "delta": {"stop_reason": message["stop_reason"],
                             "stop_sequence": message["stop_sequence"],
                             "container": message.get("container").cloned().unwrap_or(Value::Null)},
                   "usage": message["usage"]}),
        ));
        out.push(SseEvent::new(
            "message_stop",
            json!({"type": "message_stop"}),
        ));
        out
    }
}

/// One complete block as start, one delta and stop (the buffered form of section 7).
pub fn block_events(index: usize, block: &Value) -> Vec<SseEvent> {
    let start = |b: Value| {
        SseEvent::new(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": b}),
        )
    };
    let delta = |d: Value| {
        SseEvent::new(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": d}),
        )
    };
    let mut out = Vec::new();
    match kind(block) {
        "text" => {
            let mut b = block.clone();
            b["text"] = json!("");
            out.push(start(b));
            out.push(delta(json!({"type": "text_delta", "text": block["text"]})));
        }
        "thinking" => {
            out.push(start(
                json!({"type": "thinking", "thinking": "", "signature": ""}),
            ));
            out.push(delta(
                json!({"type": "thinking_delta", "thinking": block["thinking"]}),
            ));
            out.push(delta(
                json!({"type": "signature_delta", "signature": block["signature"]}),
            ));
        }
        "tool_use" | "server_tool_use" => {
            let mut b = block.clone();
            b["input"] = json!({});
            out.push(start(b));
            let input = block.get("input").cloned().unwrap_or(json!({}));
            out.push(delta(
                json!({"type": "input_json_delta", "partial_json": input.to_string()}),
            ));
        }
        _ => out.push(start(block.clone())),
    }
    out.push(SseEvent::new(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    ));
    out
}

/// The whole SSE message for a round answered at once (a replayed round before any commit).
pub fn buffered(message: &Value) -> Vec<SseEvent> {
    let live = LiveRound::new(
        str_of(message, "id").to_string(),
        message.get("model").cloned().unwrap_or(Value::Null),
        "",
        "",
    );
    live.finish(message)
}

/// One inner model call folded back into a message: the blocks as the model produced them
/// (model-facing ids and names), stop reason and sequence, or the error it ended with.
#[derive(Default)]
pub struct ModelTurn {
    blocks: Vec<Value>,
    /// Partial tool input JSON of the open tool block.
    partial: HashMap<u64, String>,
    /// Inner index -> position in `blocks`.
    positions: HashMap<u64, usize>,
    stop_reason: Value,
    stop_sequence: Value,
    input_tokens: Option<u64>,
    error: Option<ApiError>,
    stopped: bool,
}

impl ModelTurn {
    pub fn on_event(&mut self, event: &SseEvent) {
        let data = &event.data;
        let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
        match event.event.as_str() {
            "message_start" => {
                self.input_tokens = data
                    .pointer("/message/usage/input_tokens")
                    .and_then(Value::as_u64);
            }
            "content_block_start" => {
                let block = data.get("content_block").cloned().unwrap_or(json!({}));
                self.positions.insert(index, self.blocks.len());
                self.blocks.push(block);
            }
            "content_block_delta" => self.on_delta(index, &data["delta"]),
            "content_block_stop" => {
                if let (Some(json), Some(&at)) =
                    (self.partial.remove(&index), self.positions.get(&index))
                {
                    let input = if json.trim().is_empty() {
                        json!({})
                    } else {
                        // Unparsable input stays a string: the code tool reports it as
                        // `invalid_tool_input`, a direct tool's client sees what the model wrote.
                        serde_json::from_str(&json).unwrap_or(Value::String(json))
                    };
                    self.blocks[at]["input"] = input;
                }
            }
            "message_delta" => {
                self.stop_reason = data["delta"]["stop_reason"].clone();
                self.stop_sequence = data["delta"]["stop_sequence"].clone();
            }
            "message_stop" => self.stopped = true,
            "error" => self.error = Some(error_of(data)),
            _ => {}
        }
    }

    fn on_delta(&mut self, index: u64, delta: &Value) {
        let Some(&at) = self.positions.get(&index) else {
            return;
        };
        let block = &mut self.blocks[at];
        let append = |block: &mut Value, key: &str, more: &str| {
            let text = format!("{}{more}", str_of(block, key));
            block[key] = Value::String(text);
        };
        match kind(delta) {
            "text_delta" => append(block, "text", str_of(delta, "text")),
            "thinking_delta" => append(block, "thinking", str_of(delta, "thinking")),
            "signature_delta" => append(block, "signature", str_of(delta, "signature")),
            "input_json_delta" => self
                .partial
                .entry(index)
                .or_default()
                .push_str(str_of(delta, "partial_json")),
            "citations_delta" => {
                if let Some(citation) = delta.get("citation") {
                    match block.get_mut("citations").and_then(Value::as_array_mut) {
                        Some(list) => list.push(citation.clone()),
                        None => block["citations"] = json!([citation]),
                    }
                }
            }
            _ => {}
        }
    }

    /// Input tokens of the call's `message_start` (known on the Invoke path).
    pub fn input_tokens(&self) -> Option<u64> {
        self.input_tokens
    }

    /// The model's message, or why the call failed (an `error` event, or a stream that ended
    /// before `message_stop`).
    pub fn into_message(self) -> Result<Value, ApiError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if !self.stopped {
            return Err(ApiError::api("upstream stream ended unexpectedly"));
        }
        Ok(
            json!({"content": self.blocks, "stop_reason": self.stop_reason,
                  "stop_sequence": self.stop_sequence}),
        )
    }
}

/// The `ApiError` an inner `error` event describes.
fn error_of(data: &Value) -> ApiError {
    let types = [
        ErrorType::InvalidRequest,
        ErrorType::Authentication,
        ErrorType::Permission,
        ErrorType::NotFound,
        ErrorType::RequestTooLarge,
        ErrorType::RateLimit,
        ErrorType::Api,
        ErrorType::Overloaded,
    ];
    let name = data
        .pointer("/error/type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let error_type = types
        .into_iter()
        .find(|t| t.as_str() == name)
        .unwrap_or(ErrorType::Api);
    let message = data
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("upstream stream failed");
    ApiError::new(error_type, message)
}

/// An encoded relay SSE chunk (`event: <type>\ndata: <json>\n\n`) back as an event.
pub fn decode(bytes: &[u8]) -> Option<SseEvent> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut event = None;
    let mut data = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("event: ") {
            event = Some(name.to_string());
        } else if let Some(json) = line.strip_prefix("data: ") {
            data = serde_json::from_str(json).ok();
        }
    }
    Some(SseEvent::new(event?, data?))
}

#[cfg(test)]
#[path = "live_tests.rs"]
mod tests;
