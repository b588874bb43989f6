//! Golden tests for the non-streaming conversions (`fixtures/response/`) and unit tests of the
//! stop reason, stop sequence, usage and Invoke passthrough rules.

use serde_json::{Value, json};

use super::*;
use crate::convert::stream::golden::{
    MESSAGE_ID, assert_golden, fixture_dir, names, options, read,
};
use crate::error::ErrorType;

/// What both SDKs need from a non-streaming message (spec 20).
fn assert_sdk_shape(message: &Value) {
    for key in [
        "id",
        "type",
        "role",
        "model",
        "content",
        "stop_reason",
        "stop_sequence",
    ] {
        assert!(message.get(key).is_some(), "missing {key}: {message}");
    }
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert!(message["content"].is_array());
    assert!(message["usage"]["input_tokens"].is_u64());
    assert!(message["usage"]["output_tokens"].is_u64());
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

fn run_converse(name: &str) {
    let dir = fixture_dir("response/converse");
    let input: Value =
        serde_json::from_str(&read(&dir.join(format!("{name}.input.json")))).unwrap();
    let opts = options(input.get("options"));
    let resp: ConverseResponse = serde_json::from_value(input["response"].clone()).unwrap();
    let message = to_messages_response(resp, &opts);
    assert_sdk_shape(&message);
    assert!(ids::has_shape(message["id"].as_str().unwrap(), "msg_"));
    assert_golden(
        &dir.join(format!("{name}.expected.json")),
        &pretty(&message),
    );
}

fn run_invoke(name: &str) {
    let dir = fixture_dir("response/invoke");
    let input: Value =
        serde_json::from_str(&read(&dir.join(format!("{name}.input.json")))).unwrap();
    let opts = options(input.get("options"));
    let body = input["body"].clone();
    let message = from_invoke_response(body.clone(), &opts).unwrap();
    assert_sdk_shape(&message);
    assert_eq!(message["model"], opts.requested_model.as_str());
    assert!(
        !message
            .as_object()
            .unwrap()
            .keys()
            .any(|k| is_vendor_key(k))
    );
    // Every block is kept verbatim, whatever its type.
    assert_eq!(message["content"], body["content"]);
    assert_golden(
        &dir.join(format!("{name}.expected.json")),
        &pretty(&message),
    );
}

macro_rules! golden_tests {
    ($module:ident, $runner:ident, $dir:literal: $($name:ident),* $(,)?) => {
        mod $module {
            $( #[test] fn $name() { super::$runner(stringify!($name)); } )*

            #[test]
            fn every_fixture_has_a_test() {
                let dir = crate::convert::stream::golden::fixture_dir($dir);
                let found = crate::convert::stream::golden::names(&dir, ".input.json");
                let listed: Vec<&str> = vec![$(stringify!($name)),*];
                assert_eq!(found, listed, "fixtures in {} vs tests", dir.display());
            }
        }
    };
}

golden_tests!(converse_golden, run_converse, "response/converse":
    cache_usage,
    cache_usage_without_ttl,
    citations_and_other,
    parallel_tools,
    redacted_thinking,
    stop_sequence_claude,
    stop_sequence_non_claude,
    text,
    thinking_signature,
    tool_use,
);

golden_tests!(invoke_golden, run_invoke, "response/invoke":
    missing_id,
    passthrough,
);

/// Every Converse stop reason, with and without tool blocks, in one readable table.
#[test]
fn stop_reasons_table() {
    let dir = fixture_dir("response/stop_reasons");
    let cases: Vec<Value> = serde_json::from_str(&read(&dir.join("cases.input.json"))).unwrap();
    let opts = ResponseOptions {
        message_id: MESSAGE_ID.into(),
        requested_model: "m".into(),
        stop_sequences: vec!["END".into()],
        ..ResponseOptions::default()
    };
    let table: Vec<Value> = cases
        .iter()
        .map(|case| {
            let block = if case["tool_block"] == true {
                json!({"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}})
            } else {
                json!({"text": "x"})
            };
            let mut resp =
                json!({"output": {"message": {"role": "assistant", "content": [block]}}});
            if let Some(reason) = case.get("stopReason") {
                resp["stopReason"] = reason.clone();
            }
            let message = to_messages_response(serde_json::from_value(resp).unwrap(), &opts);
            json!({
                "stopReason": case.get("stopReason"),
                "tool_block": case["tool_block"] == true,
                "stop_reason": message["stop_reason"],
                "stop_sequence": message["stop_sequence"],
            })
        })
        .collect();
    assert_golden(
        &dir.join("cases.expected.json"),
        &pretty(&Value::from(table)),
    );
    assert_eq!(names(&dir, ".input.json"), ["cases"]);
}

#[test]
fn stop_reason_mapping() {
    use StopReason::*;
    let m = map_converse_stop_reason;
    assert_eq!(m(Some("end_turn"), false), EndTurn);
    assert_eq!(m(Some("end_turn"), true), ToolUse);
    assert_eq!(m(Some("tool_use"), false), EndTurn);
    assert_eq!(m(Some("tool_use"), true), ToolUse);
    assert_eq!(m(Some("max_tokens"), true), MaxTokens);
    assert_eq!(m(Some("stop_sequence"), false), StopSequence);
    assert_eq!(
        m(Some("model_context_window_exceeded"), false),
        ModelContextWindowExceeded
    );
    assert_eq!(m(Some("guardrail_intervened"), false), Refusal);
    assert_eq!(m(Some("content_filtered"), false), Refusal);
    assert_eq!(m(Some("malformed_model_output"), false), EndTurn);
    assert_eq!(m(Some("malformed_tool_use"), false), EndTurn);
    assert_eq!(m(Some("new_reason"), false), EndTurn);
    assert_eq!(m(None, false), EndTurn);
    assert_eq!(m(None, true), ToolUse);
}

#[test]
fn stop_sequence_sources() {
    let claude = ResponseOptions {
        stop_sequences: vec!["A".into(), "B".into()],
        is_claude: true,
        ..ResponseOptions::default()
    };
    let fields = json!({"stop_sequence": "B"});
    let seq = |reason, fields: Option<&Value>, opts: &ResponseOptions| {
        converse_stop_sequence(reason, fields, opts)
    };
    assert_eq!(
        seq(StopReason::StopSequence, Some(&fields), &claude).as_deref(),
        Some("B")
    );
    // Two candidates and no report: unknown.
    assert_eq!(seq(StopReason::StopSequence, None, &claude), None);
    // Not a stop-sequence stop: always null.
    assert_eq!(seq(StopReason::EndTurn, Some(&fields), &claude), None);
    let other = ResponseOptions {
        stop_sequences: vec!["###".into()],
        is_claude: false,
        ..ResponseOptions::default()
    };
    // Non-Claude additional fields are model-specific and not trusted for this.
    assert_eq!(
        seq(StopReason::StopSequence, Some(&fields), &other).as_deref(),
        Some("###")
    );
}

#[test]
fn empty_tool_id_is_generated_and_bad_one_sanitized() {
    let resp: ConverseResponse = serde_json::from_value(json!({
        "output": {"message": {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": "", "name": "a", "input": {"x": 1}}},
            {"toolUse": {"toolUseId": "call:1/x", "name": "b"}}
        ]}},
        "stopReason": "tool_use"
    }))
    .unwrap();
    let message = to_messages_response(resp, &ResponseOptions::default());
    let generated = message["content"][0]["id"].as_str().unwrap();
    assert!(ids::has_shape(generated, "toolu_"), "{generated}");
    assert_eq!(
        message["content"][1]["id"],
        ids::sanitize_tool_id("call:1/x")
    );
    assert_eq!(message["content"][1]["input"], json!({}));
    assert_eq!(message["stop_reason"], "tool_use");
}

#[test]
fn absent_usage_is_zero_with_standard_tier() {
    let message = to_messages_response(ConverseResponse::default(), &ResponseOptions::default());
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": 0, "service_tier": "standard"})
    );
    assert_eq!(message["content"], json!([]));
    assert_eq!(message["stop_sequence"], Value::Null);
}

#[test]
fn usage_of_reads_either_path() {
    let message = json!({"usage": {"input_tokens": 3, "output_tokens": 4,
        "cache_read_input_tokens": 5, "cache_creation_input_tokens": 6}});
    assert_eq!(
        usage_of(&message),
        TokenUsage {
            input_tokens: 3,
            output_tokens: 4,
            cache_read_input_tokens: 5,
            cache_creation_input_tokens: 6
        }
    );
    assert_eq!(usage_of(&json!({})), TokenUsage::default());
}

#[test]
fn invoke_body_must_be_an_object() {
    let err = from_invoke_response(json!([1]), &ResponseOptions::default()).unwrap_err();
    assert_eq!(err.error_type, ErrorType::Api);
}

#[test]
fn invoke_keeps_key_order_and_replaces_model_in_place() {
    let opts = ResponseOptions {
        requested_model: "opus".into(),
        ..ResponseOptions::default()
    };
    let body = json!({"id": "msg_bdrk_1", "type": "message", "model": "anthropic.claude", "x": 1,
                      "amazon-bedrock-trace": {}});
    let out = from_invoke_response(body, &opts).unwrap();
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "type", "model", "x", "stop_sequence"]);
    assert_eq!(out["model"], "opus");
    assert_eq!(out["id"], "msg_bdrk_1");
    let body = json!({"type": "message", "stop_reason": "end_turn", "usage": {}});
    let out = from_invoke_response(body, &opts).unwrap();
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "type",
            "stop_reason",
            "stop_sequence",
            "usage",
            "model"
        ]
    );
}

#[test]
fn cache_write_ttl_split_is_read_from_either_path() {
    let message = json!({"usage": {"cache_creation_input_tokens": 300,
        "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200}}});
    assert_eq!(cache_write_1h_of(&message), Some(200));
    assert_eq!(
        cache_write_1h_of(&json!({"usage": {"cache_creation_input_tokens": 300}})),
        None
    );

    let start = json!({"type": "message_start", "message": {"usage": {"input_tokens": 5,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 40}}}});
    assert_eq!(upstream_cache_write_1h(&start), Some(40));
    let delta = json!({"type": "message_delta", "usage": {"output_tokens": 3}});
    assert_eq!(upstream_cache_write_1h(&delta), None);
    let metadata = json!({"metadata": {"usage": {"cacheWriteInputTokens": 70,
        "cacheDetails": [{"ttl": "5m", "inputTokens": 20}, {"ttl": "1h", "inputTokens": 50}]}}});
    assert_eq!(upstream_cache_write_1h(&metadata), Some(50));
    let no_details = json!({"metadata": {"usage": {"cacheWriteInputTokens": 70}}});
    assert_eq!(upstream_cache_write_1h(&no_details), None);
}

#[test]
fn converse_cache_details_reach_the_message_usage() {
    let resp: ConverseResponse = serde_json::from_value(json!({
        "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 73, "cacheWriteInputTokens": 70,
                  "cacheDetails": [{"ttl": "1h", "inputTokens": 70}]},
        "serviceTier": {"type": "default"}
    }))
    .unwrap();
    let message = to_messages_response(resp, &ResponseOptions::default());
    assert_eq!(cache_write_1h_of(&message), Some(70));
    assert_eq!(message["usage"]["service_tier"], "standard");
}

#[test]
fn the_served_tier_is_read_from_responses_and_metadata() {
    let response = json!({"stopReason": "end_turn", "serviceTier": {"type": "default"}});
    assert_eq!(converse_service_tier(&response).as_deref(), Some("default"));
    let metadata = json!({"metadata": {"usage": {}, "serviceTier": {"type": "flex"}}});
    assert_eq!(converse_service_tier(&metadata).as_deref(), Some("flex"));
    assert_eq!(converse_service_tier(&json!({"metadata": {}})), None);
}

#[test]
fn only_1h_cache_markers_mean_1h_writes() {
    let invoke = json!({"system": [{"type": "text", "text": "s",
        "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "u",
        "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}]});
    assert!(requests_only_1h_cache(&invoke));
    let mixed = json!({"system": [{"text": "s"}, {"cachePoint": {"type": "default", "ttl": "1h"}}],
        "messages": [{"role": "user", "content": [{"text": "u"}, {"cachePoint": {"type": "default"}}]}]});
    assert!(!requests_only_1h_cache(&mixed));
    let converse =
        json!({"system": [{"text": "s"}, {"cachePoint": {"type": "default", "ttl": "1h"}}]});
    assert!(requests_only_1h_cache(&converse));
    assert!(!requests_only_1h_cache(&json!({"messages": []})));
}

#[test]
fn output_estimate_counts_streamed_deltas() {
    use crate::anthropic::stream::SseEvent;
    let mut estimate = OutputEstimate::default();
    let delta = |delta: Value| {
        SseEvent::new(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        )
    };
    estimate.on_event(&delta(json!({"type": "text_delta", "text": "abcdefgh"})));
    estimate.on_event(&delta(json!({"type": "thinking_delta", "thinking": "ab"})));
    estimate.on_event(&delta(
        json!({"type": "input_json_delta", "partial_json": "{}"}),
    ));
    estimate.on_event(&delta(
        json!({"type": "signature_delta", "signature": "zzzzzzzz"}),
    ));
    estimate.on_event(&SseEvent::new(
        "message_start",
        json!({"message": {"content": "xxxx"}}),
    ));
    // 12 characters: 3 tokens; signatures and other events do not count.
    assert_eq!(estimate.tokens(), 3);
    estimate.on_event(&delta(json!({"type": "text_delta", "text": "日本"})));
    assert_eq!(estimate.tokens(), 5);
}
