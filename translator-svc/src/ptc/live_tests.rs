#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

//! Golden pairs for the streaming round: `fixtures/ptc-stream/<name>.in.jsonl` holds what a
//! round reports (one `{"commit"|"model"|"block"|"usage"|"finish"|"error": ...}` per line) and
//! `<name>.sse` the client's SSE (plus a closing `: usage` comment for the rate-limit trailer).

use serde_json::{Value, json};

use super::*;
use crate::convert::stream::golden::{
    MESSAGE_ID, REQUEST_ID, assert_golden, fixture_dir, names, read,
};

fn usage_of_json(v: &Value) -> TokenUsage {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    TokenUsage {
        input_tokens: n("input_tokens"),
        output_tokens: n("output_tokens"),
        cache_read_input_tokens: n("cache_read_input_tokens"),
        cache_creation_input_tokens: n("cache_creation_input_tokens"),
    }
}

/// Replays one fixture through `LiveRound` the way the async shell does.
fn run(input: &str) -> (Vec<SseEvent>, TokenUsage) {
    let mut live = LiveRound::new(
        MESSAGE_ID.into(),
        json!("claude-sonnet-4-5"),
        "execute_code",
        "code_execution",
    );
    let mut out = Vec::new();
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let item: Value = serde_json::from_str(line).unwrap();
        let (key, value) = item.as_object().unwrap().iter().next().unwrap();
        let emit = match key.as_str() {
            "commit" => Emit::Commit {
                container: Some(value["container"].clone()).filter(|c| !c.is_null()),
                input_tokens: value["input_tokens"].as_u64().unwrap(),
            },
            "model" => Emit::Model(SseEvent::new(
                value["event"].as_str().unwrap(),
                value["data"].clone(),
            )),
            "block" => Emit::Block(value.clone()),
            "usage" => Emit::Usage(usage_of_json(value)),
            "finish" => {
                let usage = usage_of_json(&value["usage"]);
                out.extend(live.finish(value));
                return (out, usage);
            }
            "error" => {
                let usage = live.usage();
                let error = error_of(&json!({"error": value}));
                out.push(SseEvent::error(&error, REQUEST_ID));
                return (out, usage);
            }
            other => panic!("unknown fixture line {other}"),
        };
        out.extend(live.on_emit(emit));
    }
    panic!("a fixture ends with finish or error");
}

fn render(events: &[SseEvent], usage: TokenUsage) -> String {
    let mut text: String = events
        .iter()
        .map(|e| String::from_utf8(e.encode().to_vec()).unwrap())
        .collect();
    text.push_str(&format!(
        ": usage input={} output={} cache_read={} cache_creation={}\n",
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens
    ));
    text
}

/// The message a client SDK accumulates from the events (what both SDKs do).
fn fold(events: &[SseEvent]) -> Value {
    let mut message = json!({});
    let mut partial: HashMap<u64, String> = HashMap::new();
    for e in events {
        let d = &e.data;
        let index = d["index"].as_u64().unwrap_or(0);
        match e.event.as_str() {
            "message_start" => message = d["message"].clone(),
            "content_block_start" => {
                assert_eq!(
                    index as usize,
                    message["content"].as_array().unwrap().len(),
                    "indices are contiguous"
                );
                message["content"]
                    .as_array_mut()
                    .unwrap()
                    .push(d["content_block"].clone());
            }
            "content_block_delta" => {
                let block = &mut message["content"][index as usize];
                let delta = &d["delta"];
                let mut append = |key: &str, more: &Value| {
                    block[key] = json!(format!(
                        "{}{}",
                        block[key].as_str().unwrap(),
                        more.as_str().unwrap()
                    ));
                };
                match delta["type"].as_str().unwrap() {
                    "text_delta" => append("text", &delta["text"]),
                    "thinking_delta" => append("thinking", &delta["thinking"]),
                    "signature_delta" => append("signature", &delta["signature"]),
                    "input_json_delta" => partial
                        .entry(index)
                        .or_default()
                        .push_str(delta["partial_json"].as_str().unwrap()),
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                if let Some(json) = partial.remove(&index) {
                    message["content"][index as usize]["input"] =
                        serde_json::from_str(&json).unwrap();
                }
            }
            "message_delta" => {
                message["stop_reason"] = d["delta"]["stop_reason"].clone();
                message["stop_sequence"] = d["delta"]["stop_sequence"].clone();
                message["container"] = d["delta"]["container"].clone();
                message["usage"] = d["usage"].clone();
            }
            _ => {}
        }
    }
    message
}

#[test]
fn golden_streams() {
    let dir = fixture_dir("ptc-stream");
    let fixtures = names(&dir, ".in.jsonl");
    assert!(fixtures.len() >= 4, "{fixtures:?}");
    for name in fixtures {
        let input = read(&dir.join(format!("{name}.in.jsonl")));
        let (events, usage) = run(&input);
        assert_golden(&dir.join(format!("{name}.sse")), &render(&events, usage));
        // Whatever ran through the machine, the client folds it into the round's response.
        let last: Value = serde_json::from_str(input.trim().lines().last().unwrap()).unwrap();
        if let Some(message) = last.get("finish") {
            assert_eq!(&fold(&events), message, "{name}");
        }
    }
}

#[test]
fn pings_frame_and_errors_of_the_inner_call_are_not_forwarded() {
    let mut live = LiveRound::new(
        MESSAGE_ID.into(),
        json!("m"),
        "execute_code",
        "code_execution",
    );
    let out = live.on_emit(Emit::Model(SseEvent::ping()));
    assert!(out.is_empty());
    let out = live.on_emit(Emit::Commit {
        container: None,
        input_tokens: 7,
    });
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].data["message"]["usage"]["input_tokens"], 7);
    assert_eq!(out[0].data["message"]["container"], Value::Null);
    assert_eq!(out[1], SseEvent::ping());
    // A second commit (a later model call) is not a second message_start.
    assert!(
        live.on_emit(Emit::Commit {
            container: None,
            input_tokens: 9
        })
        .is_empty()
    );
    for event in ["message_delta", "message_stop", "error", "ping"] {
        let e = SseEvent::new(event, json!({"type": event}));
        assert!(live.on_emit(Emit::Model(e)).is_empty(), "{event}");
    }
    // A delta for a block that never started is dropped rather than mis-indexed.
    let stray = SseEvent::new(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": 5, "delta": {"type": "text_delta", "text": "x"}}),
    );
    assert!(live.on_emit(Emit::Model(stray)).is_empty());
}

#[test]
fn a_second_model_call_continues_the_index_sequence() {
    let mut live = LiveRound::new(
        MESSAGE_ID.into(),
        json!("m"),
        "execute_code",
        "code_execution",
    );
    live.on_emit(Emit::Commit {
        container: None,
        input_tokens: 0,
    });
    let start = |i: u64| {
        Emit::Model(SseEvent::new(
            "content_block_start",
            json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}),
        ))
    };
    let message_start = || {
        Emit::Model(SseEvent::new(
            "message_start",
            json!({"type": "message_start"}),
        ))
    };
    live.on_emit(message_start());
    assert_eq!(live.on_emit(start(0))[0].data["index"], 0);
    assert_eq!(
        live.on_emit(Emit::Block(json!({"type": "code_execution_tool_result"})))[0].data["index"],
        1
    );
    live.on_emit(message_start());
    assert_eq!(live.on_emit(start(0))[0].data["index"], 2);
    let stop = live.on_emit(Emit::Model(SseEvent::new(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    )));
    assert_eq!(stop[0].data["index"], 2);
}

fn event(line: Value) -> SseEvent {
    let name = line["type"].as_str().unwrap().to_string();
    SseEvent::new(name, line)
}

#[test]
fn model_turn_folds_a_stream_into_the_model_message() {
    let mut turn = ModelTurn::default();
    for e in [
        json!({"type": "message_start", "message": {"usage": {"input_tokens": 42}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "redacted_thinking", "data": "AAA="}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "execute_code", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"co"}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "de\": \"print(1)\"}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {}}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}}),
        json!({"type": "message_stop"}),
    ] {
        turn.on_event(&event(e));
    }
    assert_eq!(turn.input_tokens(), Some(42));
    let message = turn.into_message().unwrap();
    assert_eq!(
        message,
        json!({"content": [
            {"type": "redacted_thinking", "data": "AAA="},
            {"type": "tool_use", "id": "toolu_1", "name": "execute_code", "input": {"code": "print(1)"}},
            {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {}}],
            "stop_reason": "tool_use", "stop_sequence": null})
    );
}

#[test]
fn model_turn_reports_the_error_or_a_cut_stream() {
    let mut turn = ModelTurn::default();
    turn.on_event(&event(json!({"type": "message_start", "message": {}})));
    turn.on_event(&event(
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}),
    ));
    let error = turn.into_message().unwrap_err();
    assert_eq!(error.error_type, ErrorType::RateLimit);
    assert_eq!(error.message, "slow down");

    let mut turn = ModelTurn::default();
    turn.on_event(&event(json!({"type": "message_start", "message": {}})));
    let error = turn.into_message().unwrap_err();
    assert_eq!(error.error_type, ErrorType::Api);
}

#[test]
fn decode_reads_back_what_the_relay_encodes() {
    let e = SseEvent::new(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta", "text": "a\nb"}}),
    );
    assert_eq!(decode(&e.encode()), Some(e));
    assert_eq!(decode(b"garbage"), None);
}
