//! Golden tests for the stream state machines (`fixtures/stream/`: JSONL in, `.sse` out), each
//! output also decoded and checked against the SSE invariants, plus a seeded property test.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::golden::{REQUEST_ID, api_error, assert_golden, fixture_dir, options, read};
use super::*;
use crate::converse::stream::StreamEvent;
use crate::convert::response::TokenUsage;
use crate::convert::sse::{check_invariants, encode_all, parse};
use crate::ids;

/// A stream fixture: JSONL of upstream events, `#` comment lines, and two directives:
/// `{"options": {...}}` (see `golden::options`) and `{"end": "completed" | "metadata_timeout" |
/// {"error": {"type", "message"}}}` (default `completed`).
struct Script {
    opts: ResponseOptions,
    events: Vec<Value>,
    end: StreamEnd,
}

fn load(path: &Path) -> Script {
    let mut script = Script {
        opts: options(None),
        events: Vec::new(),
        end: StreamEnd::Completed,
    };
    for line in read(path).lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}: bad line {line}: {e}", path.display()));
        if let Some(o) = v.get("options") {
            script.opts = options(Some(o));
        } else if let Some(end) = v.get("end") {
            script.end = match end {
                Value::String(s) if s == "completed" => StreamEnd::Completed,
                Value::String(s) if s == "metadata_timeout" => StreamEnd::MetadataTimeout,
                other => StreamEnd::Error(api_error(&other["error"])),
            };
        } else {
            script.events.push(v);
        }
    }
    script
}

/// Checks what every produced stream must satisfy, then compares with the golden file.
fn check_output(events: &[SseEvent], golden: &Path) {
    let sse = encode_all(events);
    let parsed = parse(&sse).unwrap();
    assert_eq!(parsed, events, "SSE round trip");
    check_invariants(&parsed).unwrap_or_else(|e| panic!("{}: {e}\n{sse}", golden.display()));
    check_tool_inputs(&parsed);
    assert_golden(golden, &sse);
}

/// The `input_json_delta` fragments of each tool block concatenate to a JSON object (SDKs
/// silently turn invalid JSON into `{}`).
fn check_tool_inputs(events: &[SseEvent]) {
    let mut input: Option<String> = None;
    for e in events {
        match e.event.as_str() {
            "content_block_start" if e.data["content_block"]["type"] == "tool_use" => {
                input = Some(String::new());
            }
            "content_block_delta" if e.data["delta"]["type"] == "input_json_delta" => {
                if let Some(input) = input.as_mut() {
                    input.push_str(e.data["delta"]["partial_json"].as_str().unwrap());
                }
            }
            "content_block_stop" => {
                if let Some(json) = input.take().filter(|s| !s.is_empty()) {
                    let parsed: Value = serde_json::from_str(&json)
                        .unwrap_or_else(|err| panic!("tool input {json:?}: {err}"));
                    assert!(parsed.is_object(), "{json}");
                }
            }
            _ => {}
        }
    }
}

fn run_converse(name: &str) {
    let dir = fixture_dir("stream/converse");
    let script = load(&dir.join(format!("{name}.jsonl")));
    let mut state = ConverseStreamState::new(script.opts);
    let mut out = Vec::new();
    let mut metadata_seen = false;
    for v in script.events {
        let event: StreamEvent = serde_json::from_value(v).unwrap();
        let is_metadata = matches!(event, StreamEvent::Metadata(_));
        let is_stop = matches!(event, StreamEvent::MessageStop(_));
        let produced = state.on_event(event);
        // The end of the message is held until metadata, whichever of the two comes last.
        if produced.iter().any(|e| e.event == "message_delta") {
            assert!(
                is_metadata || (is_stop && metadata_seen),
                "{name}: message_delta too early"
            );
        }
        metadata_seen |= is_metadata;
        out.extend(produced);
    }
    let usage = state.usage();
    out.extend(state.finish(script.end));
    if let Some(delta) = out.iter().find(|e| e.event == "message_delta") {
        assert_eq!(delta.data["usage"]["output_tokens"], usage.output_tokens);
        assert_eq!(delta.data["usage"]["input_tokens"], usage.input_tokens);
    }
    check_output(&out, &dir.join(format!("{name}.sse")));
}

fn run_invoke(name: &str) {
    let dir = fixture_dir("stream/invoke");
    let script = load(&dir.join(format!("{name}.jsonl")));
    let mut state = InvokeStreamState::new(script.opts);
    let mut out = Vec::new();
    for v in script.events {
        out.extend(state.on_chunk(v));
    }
    out.extend(state.finish(script.end));
    for e in &out {
        assert!(
            !e.data.to_string().contains("amazon-bedrock-"),
            "vendor key leaked: {}",
            e.data
        );
    }
    check_output(&out, &dir.join(format!("{name}.sse")));
}

macro_rules! golden_tests {
    ($module:ident, $runner:ident, $dir:literal: $($name:ident),* $(,)?) => {
        mod $module {
            $( #[test] fn $name() { super::$runner(stringify!($name)); } )*

            #[test]
            fn every_fixture_has_a_test() {
                let dir = super::fixture_dir($dir);
                let found = super::golden::names(&dir, ".jsonl");
                let listed: Vec<&str> = vec![$(stringify!($name)),*];
                assert_eq!(found, listed, "fixtures in {} vs tests", dir.display());
            }
        }
    };
}

golden_tests!(converse_golden, run_converse, "stream/converse":
    error,
    guardrail_refusal,
    index_mapping,
    metadata_missing,
    metadata_timeout,
    parallel_tools,
    redacted_thinking,
    stop_sequence_claude,
    stop_sequence_non_claude,
    text,
    thinking_signature,
    tool_input,
    truncated,
    unknown_events,
    usage_after_stop,
);

golden_tests!(invoke_golden, run_invoke, "stream/invoke":
    delta_without_usage,
    error,
    missing_message_stop,
    normal,
    ping_error_passthrough,
    tool_use_unknown_blocks,
    truncated,
);

fn converse(v: Value) -> StreamEvent {
    serde_json::from_value(v).unwrap()
}

fn types(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

#[test]
fn converse_holds_the_end_until_metadata() {
    let mut s = ConverseStreamState::new(options(None));
    assert!(!s.committed());
    assert!(s.on_event(StreamEvent::Unknown).is_empty());
    assert!(!s.committed(), "unknown events do not commit");
    let out = s.on_event(converse(json!({"messageStart": {"role": "assistant"}})));
    assert_eq!(types(&out), ["message_start", "ping"]);
    assert!(s.committed());
    s.on_event(converse(
        json!({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "a"}}}),
    ));
    let out = s.on_event(converse(json!({"messageStop": {"stopReason": "end_turn"}})));
    assert_eq!(types(&out), ["content_block_stop"]);
    assert!(s.awaiting_metadata());
    let out = s.on_event(converse(json!({"metadata": {"usage": {
        "inputTokens": 5, "outputTokens": 6, "cacheReadInputTokens": 7, "cacheWriteInputTokens": 8}}})));
    assert_eq!(types(&out), ["message_delta", "message_stop"]);
    assert!(!s.awaiting_metadata());
    let usage = TokenUsage {
        input_tokens: 5,
        output_tokens: 6,
        cache_read_input_tokens: 7,
        cache_creation_input_tokens: 8,
    };
    assert_eq!(s.usage(), usage);
    assert!(
        s.on_event(converse(json!({"metadata": {}}))).is_empty(),
        "nothing after message_stop"
    );
    assert!(s.finish(StreamEnd::Error(ApiError::api("late"))).is_empty());
}

#[test]
fn converse_metadata_before_stop_ends_at_stop() {
    let mut s = ConverseStreamState::new(options(None));
    s.on_event(converse(json!({"messageStart": {"role": "assistant"}})));
    let out = s.on_event(converse(
        json!({"metadata": {"usage": {"outputTokens": 3}}}),
    ));
    assert!(out.is_empty());
    let out = s.on_event(converse(
        json!({"messageStop": {"stopReason": "max_tokens"}}),
    ));
    assert_eq!(types(&out), ["message_delta", "message_stop"]);
    assert_eq!(out[0].data["delta"]["stop_reason"], "max_tokens");
    assert_eq!(out[0].data["usage"]["output_tokens"], 3);
}

#[test]
fn converse_generates_missing_tool_ids() {
    let mut s = ConverseStreamState::new(options(None));
    let start = json!({"contentBlockStart": {"contentBlockIndex": 0,
        "start": {"toolUse": {"toolUseId": "", "name": "f"}}}});
    let out = s.on_event(converse(start));
    let id = out[2].data["content_block"]["id"].as_str().unwrap();
    assert!(ids::has_shape(id, "toolu_"), "{id}");
}

#[test]
fn error_before_any_event_is_not_committed() {
    let s = ConverseStreamState::new(options(None));
    assert!(!s.committed());
    let out = s.finish(StreamEnd::Error(ApiError::rate_limit("slow down")));
    assert_eq!(types(&out), ["error"]);
    assert_eq!(
        out[0].data,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"},
               "request_id": REQUEST_ID})
    );
}

#[test]
fn invoke_usage_accounting() {
    let mut s = InvokeStreamState::new(options(None));
    s.on_chunk(json!({"type": "message_start", "message": {"id": "msg_1", "model": "x",
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 2,
                  "output_tokens": 1}}}));
    assert_eq!(s.usage().output_tokens, 1);
    s.on_chunk(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}));
    assert!(s.awaiting_metadata(), "delta without usage is held");
    let out = s.on_chunk(json!({"type": "message_stop",
        "amazon-bedrock-invocationMetrics": {"inputTokenCount": 10, "outputTokenCount": 42}}));
    assert_eq!(types(&out), ["message_delta", "message_stop"]);
    assert_eq!(out[0].data["usage"]["output_tokens"], 42);
    assert_eq!(out[1].data, json!({"type": "message_stop"}));
    assert_eq!(
        s.usage(),
        TokenUsage {
            input_tokens: 10,
            output_tokens: 42,
            cache_read_input_tokens: 4,
            cache_creation_input_tokens: 2,
        }
    );
}

#[test]
fn invoke_cumulative_delta_usage_is_set_not_added() {
    let mut s = InvokeStreamState::new(options(None));
    s.on_chunk(json!({"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1}}}));
    s.on_chunk(json!({"type": "message_delta", "usage": {"output_tokens": 5}}));
    s.on_chunk(json!({"type": "message_delta", "usage": {"input_tokens": 12, "output_tokens": 9}}));
    assert_eq!(s.usage().output_tokens, 9);
    assert_eq!(s.usage().input_tokens, 12);
}

/// A small generator of plausible and implausible ConverseStream events.
fn random_event(rng: &mut StdRng) -> Value {
    let idx = rng.random_range(0..4u32);
    let pick = |rng: &mut StdRng, options: &[&str]| {
        options[rng.random_range(0..options.len())].to_string()
    };
    match rng.random_range(0..14) {
        0 => json!({"messageStart": {"role": "assistant"}}),
        1 => {
            let id = pick(rng, &["tooluse_1", "", "bad id/1"]);
            json!({"contentBlockStart": {"contentBlockIndex": idx, "start": {"toolUse": {"toolUseId": id, "name": "f"}}}})
        }
        2 => json!({"contentBlockStart": {"contentBlockIndex": idx, "start": {"image": {}}}}),
        3 | 4 => {
            let text = pick(rng, &["", "a", "hello\nworld", "é"]);
            json!({"contentBlockDelta": {"contentBlockIndex": idx, "delta": {"text": text}}})
        }
        5 => {
            json!({"contentBlockDelta": {"contentBlockIndex": idx, "delta": {"reasoningContent": {"text": "hm"}}}})
        }
        6 => {
            json!({"contentBlockDelta": {"contentBlockIndex": idx, "delta": {"reasoningContent": {"signature": "sig"}}}})
        }
        7 => {
            let blob = pick(rng, &["AAEC", "!!not base64", ""]);
            json!({"contentBlockDelta": {"contentBlockIndex": idx, "delta": {"reasoningContent": {"redactedContent": blob}}}})
        }
        8 => {
            let input = pick(rng, &["{\"a\":", "1}", ""]);
            json!({"contentBlockDelta": {"contentBlockIndex": idx, "delta": {"toolUse": {"input": input}}}})
        }
        9 => {
            json!({"contentBlockDelta": {"contentBlockIndex": idx, "delta": {"citation": {"x": 1}}}})
        }
        10 | 11 => json!({"contentBlockStop": {"contentBlockIndex": idx}}),
        12 => {
            let reason = pick(
                rng,
                &[
                    "end_turn",
                    "tool_use",
                    "stop_sequence",
                    "guardrail_intervened",
                    "weird",
                ],
            );
            json!({"messageStop": {"stopReason": reason}})
        }
        _ => {
            if rng.random_bool(0.5) {
                json!({"metadata": {"usage": {"inputTokens": 1, "outputTokens": 2}}})
            } else {
                json!({"somethingNew": {}})
            }
        }
    }
}

/// Random event sequences never panic and always yield a well-formed Anthropic stream.
#[test]
fn converse_random_sequences_keep_the_invariants() {
    for seed in 0..3000u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let opts = ResponseOptions {
            stop_sequences: vec!["END".into()],
            ..options(None)
        };
        let mut state = ConverseStreamState::new(opts);
        let mut out = Vec::new();
        let mut saw_stop = false;
        for _ in 0..rng.random_range(0..40) {
            let v = random_event(&mut rng);
            saw_stop |= v.get("messageStop").is_some();
            out.extend(state.on_event(converse(v)));
        }
        let usage = state.usage();
        let end = match rng.random_range(0..3) {
            0 => StreamEnd::Completed,
            1 => StreamEnd::MetadataTimeout,
            _ => StreamEnd::Error(ApiError::overloaded("gone")),
        };
        let is_error = matches!(end, StreamEnd::Error(_));
        out.extend(state.finish(end));
        let parsed = parse(&encode_all(&out)).unwrap();
        assert_eq!(parsed, out, "seed {seed}");
        check_invariants(&parsed)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", encode_all(&out)));
        let last = out.last().map(|e| e.event.as_str());
        let completed = out.iter().any(|e| e.event == "message_stop");
        if completed {
            let delta = out.iter().find(|e| e.event == "message_delta").unwrap();
            assert_eq!(
                delta.data["usage"]["output_tokens"], usage.output_tokens,
                "seed {seed}"
            );
        } else if is_error || !saw_stop {
            assert_eq!(last, Some("error"), "seed {seed}");
        }
        if saw_stop && !is_error {
            assert_eq!(last, Some("message_stop"), "seed {seed}");
        }
    }
}
