//! InvokeModelWithResponseStream chunks -> Anthropic SSE events (spec 13.3). Each chunk already
//! is an Anthropic event and passes unchanged, except the model name, Bedrock's vendor keys, and
//! a `message_delta` without output tokens, which is held and filled from invocation metrics.

use serde_json::{Map, Value};

use crate::anthropic::stream::SseEvent;
use crate::convert::response::{ResponseOptions, TokenUsage, is_vendor_key};
use crate::convert::stream::{StreamEnd, message_start, unexpected_end};

/// Where Bedrock puts `inputTokenCount`/`outputTokenCount` on the last chunk.
const INVOCATION_METRICS: &str = "amazon-bedrock-invocationMetrics";

/// Converts one Invoke stream into Anthropic SSE events.
#[derive(Debug)]
pub struct InvokeStreamState {
    opts: ResponseOptions,
    started: bool,
    /// `message_stop` or an upstream `error` was emitted; nothing follows.
    finished: bool,
    /// A `message_delta` lacking `usage.output_tokens`, waiting for the metrics on the next event.
    held: Option<Value>,
    message_delta_seen: bool,
    from_start: Counts,
    from_delta: Counts,
    from_metrics: Counts,
}

/// Token counts one source reported; `None` when it did not say.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
}

impl Counts {
    fn of_usage(usage: Option<&Value>) -> Self {
        let count = |key: &str| usage.and_then(|u| u.get(key)).and_then(Value::as_u64);
        Counts {
            input: count("input_tokens"),
            output: count("output_tokens"),
            cache_read: count("cache_read_input_tokens"),
            cache_creation: count("cache_creation_input_tokens"),
        }
    }

    fn of_metrics(metrics: Option<&Value>) -> Self {
        let count = |key: &str| metrics.and_then(|m| m.get(key)).and_then(Value::as_u64);
        Counts {
            input: count("inputTokenCount"),
            output: count("outputTokenCount"),
            ..Counts::default()
        }
    }

    /// `message_delta` usage is cumulative: set the values it carries, never add.
    fn set_from(&mut self, newer: Counts) {
        self.input = newer.input.or(self.input);
        self.output = newer.output.or(self.output);
        self.cache_read = newer.cache_read.or(self.cache_read);
        self.cache_creation = newer.cache_creation.or(self.cache_creation);
    }
}

impl InvokeStreamState {
    pub fn new(opts: ResponseOptions) -> Self {
        InvokeStreamState {
            opts,
            started: false,
            finished: false,
            held: None,
            message_delta_seen: false,
            from_start: Counts::default(),
            from_delta: Counts::default(),
            from_metrics: Counts::default(),
        }
    }

    /// Feeds one decoded chunk (one Anthropic event JSON).
    pub fn on_chunk(&mut self, mut chunk: Value) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let Some(kind) = chunk.get("type").and_then(Value::as_str).map(str::to_owned) else {
            tracing::warn!("dropping an Invoke stream chunk without a type");
            return out;
        };
        if self.finished {
            return out;
        }
        let metrics = match chunk.as_object_mut() {
            Some(event) => take_vendor_keys(event),
            None => None,
        };
        match kind.as_str() {
            "ping" if !self.started => {}
            "ping" => out.push(SseEvent::new(kind, chunk)),
            "error" => {
                self.held = None;
                out.push(self.upstream_error(chunk));
                self.finished = true;
            }
            "message_start" if self.started => {
                tracing::warn!("dropping a repeated message_start");
            }
            "message_start" => self.message_start(chunk, &mut out),
            _ => {
                if !self.started {
                    tracing::warn!(kind, "Invoke stream did not start with message_start");
                    self.started = true;
                    out.extend(message_start(&self.opts));
                }
                if metrics.is_some() {
                    self.from_metrics = Counts::of_metrics(metrics.as_ref());
                }
                self.release_held(&mut out);
                match kind.as_str() {
                    "message_delta" => self.message_delta(chunk, &mut out),
                    "message_stop" => {
                        out.push(SseEvent::new(kind, chunk));
                        self.finished = true;
                    }
                    _ => out.push(SseEvent::new(kind, chunk)),
                }
            }
        }
        out
    }

    /// A `message_delta` is held for the metrics of `message_stop`; the shell may time out.
    pub fn awaiting_metadata(&self) -> bool {
        self.held.is_some() && !self.finished
    }

    /// Ends the stream. When upstream stopped after `message_delta` but before `message_stop`,
    /// the message is completed; when it stopped earlier, the stream is reported as broken.
    pub fn finish(mut self, end: StreamEnd) -> Vec<SseEvent> {
        if self.finished {
            return Vec::new();
        }
        match end {
            StreamEnd::Error(err) => vec![SseEvent::error(&err, &self.opts.request_id)],
            StreamEnd::Completed | StreamEnd::MetadataTimeout => {
                if self.held.is_none() && !self.message_delta_seen {
                    return vec![unexpected_end(&self.opts)];
                }
                let mut out = Vec::new();
                self.release_held(&mut out);
                let stop = Value::Object(Map::from_iter([("type".into(), "message_stop".into())]));
                out.push(SseEvent::new("message_stop", stop));
                out
            }
        }
    }

    /// Usage for accounting: `message_start`, then the last `message_delta` (set, never added),
    /// then the invocation metrics as a fallback.
    pub fn usage(&self) -> TokenUsage {
        let (start, delta, metrics) = (self.from_start, self.from_delta, self.from_metrics);
        TokenUsage {
            input_tokens: delta.input.or(start.input).or(metrics.input).unwrap_or(0),
            output_tokens: delta
                .output
                .or(metrics.output)
                .or(start.output)
                .unwrap_or(0),
            cache_read_input_tokens: delta.cache_read.or(start.cache_read).unwrap_or(0),
            cache_creation_input_tokens: delta.cache_creation.or(start.cache_creation).unwrap_or(0),
        }
    }

    /// `message_start` was emitted: failures from now on are SSE `error` events.
    pub fn committed(&self) -> bool {
        self.started
    }

    fn message_start(&mut self, mut chunk: Value, out: &mut Vec<SseEvent>) {
        if let Some(message) = chunk.get_mut("message").and_then(Value::as_object_mut) {
            let model = Value::String(self.opts.requested_model.clone());
            message.insert("model".into(), model);
            self.from_start = Counts::of_usage(message.get("usage"));
        }
        self.started = true;
        out.push(SseEvent::new("message_start", chunk));
        out.push(SseEvent::ping());
    }

    fn message_delta(&mut self, chunk: Value, out: &mut Vec<SseEvent>) {
        let usage = chunk.get("usage");
        if usage
            .and_then(|u| u.get("output_tokens"))
            .is_some_and(Value::is_u64)
        {
            self.from_delta.set_from(Counts::of_usage(usage));
            self.message_delta_seen = true;
            out.push(SseEvent::new("message_delta", chunk));
        } else {
            self.held = Some(chunk);
        }
    }

    /// Emits the held `message_delta` with `output_tokens` from the metrics, else 0.
    fn release_held(&mut self, out: &mut Vec<SseEvent>) {
        let Some(mut held) = self.held.take() else {
            return;
        };
        let output_tokens = self.from_metrics.output.unwrap_or(0);
        if let Some(event) = held.as_object_mut() {
            let usage = event
                .entry("usage")
                .or_insert_with(|| Value::Object(Map::new()));
            if !usage.is_object() {
                *usage = Value::Object(Map::new());
            }
            if let Some(usage) = usage.as_object_mut() {
                usage.insert("output_tokens".into(), output_tokens.into());
            }
        }
        self.message_delta(held, out);
    }

    /// Upstream `error` events pass through, with this call's `request_id` when they lack one.
    fn upstream_error(&self, mut chunk: Value) -> SseEvent {
        if let Some(event) = chunk.as_object_mut() {
            event
                .entry("request_id")
                .or_insert_with(|| Value::String(self.opts.request_id.clone()));
        }
        SseEvent::new("error", chunk)
    }
}

/// Removes Bedrock's keys from an event, returning the invocation metrics if present.
fn take_vendor_keys(event: &mut Map<String, Value>) -> Option<Value> {
    let metrics = event.shift_remove(INVOCATION_METRICS);
    event.retain(|key, _| !is_vendor_key(key));
    metrics
}
