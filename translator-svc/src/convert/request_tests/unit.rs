//! Focused tests of request conversion rules that read better as assertions than as fixtures.

use serde_json::{Value, json};

use super::super::*;
use super::fixtures_dir;
use crate::beta::BetaPolicy;
use crate::converse::request::{ContentBlock, ConverseRequest, SystemContentBlock, Tool};
use crate::error::ApiError;
use crate::models::{ModelTable, Route};

const CLAUDE_CODE_BETA: &str = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,per-turn-control-2026-07-01,mid-conversation-tool-changes-2026-07-01,thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20,effort-2025-11-24";

fn route(model: &str) -> Route {
    ModelTable::builtin("global", true).resolve(model).unwrap()
}

fn claude_code_body() -> Value {
    let text =
        std::fs::read_to_string(fixtures_dir().join("claude-code-turn2/input.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["request"].clone()
}

fn invoke(model: &str, body: &Value, betas: &[String]) -> Result<InvokeRequest, ApiError> {
    let route = route(model);
    let policy = BetaPolicy::default_policy();
    to_invoke_body(body.clone(), &RequestOptions::new(&route, betas, &policy))
}

fn converse(model: &str, body: &Value, betas: &[String]) -> Result<ConverseRequest, ApiError> {
    let route = route(model);
    let policy = BetaPolicy::default_policy();
    to_converse_request(body.clone(), &RequestOptions::new(&route, betas, &policy))
}

/// The fixture copy under `fixtures/request/` is the body recorded in `shared/fixtures/`
/// (checked where the shared directory is present, i.e. in the project checkout).
#[test]
fn claude_code_copy_matches_the_recording() {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/claude-code-2.1.332-turn2-request.json");
    let Ok(text) = std::fs::read_to_string(shared) else {
        return;
    };
    let recorded: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(recorded["body"], claude_code_body());
    assert_eq!(recorded["headers"]["anthropic-beta"], CLAUDE_CODE_BETA);
}

#[test]
fn claude_code_request_on_both_paths() {
    let body = claude_code_body();
    let betas = BetaPolicy::parse_header_values(&[CLAUDE_CODE_BETA]);
    let inv = invoke("claude-opus-5-5", &body, &betas).unwrap().body;
    assert!(inv.get("context_management").is_none());
    assert!(inv.get("stream").is_none() && inv.get("model").is_none());
    assert_eq!(
        inv["anthropic_beta"],
        json!([
            "interleaved-thinking-2025-05-14",
            "tool-search-tool-2025-10-19",
            "tool-examples-2025-10-29",
            "effort-2025-11-24"
        ])
    );
    assert_eq!(inv["output_config"], json!({"effort": "medium"}));
    assert_eq!(inv["thinking"], json!({"type": "adaptive"}));
    assert!(inv["metadata"]["user_id"].is_string());
    let messages = inv["messages"].as_array().unwrap();
    assert!(messages.iter().all(|m| m["role"] != "system"));
    assert_eq!(
        inv["system"].as_array().unwrap().len(),
        4,
        "system-role message folded"
    );
    assert_eq!(
        messages[1]["content"][0], body["messages"][2]["content"][0],
        "thinking block byte-exact"
    );
    assert_eq!(
        inv["tools"][0]["input_schema"]["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(inv["tools"][10]["defer_loading"], true);

    let conv = converse("claude-opus-5-5", &body, &betas).unwrap();
    let wire = serde_json::to_value(&conv).unwrap();
    assert!(wire.get("requestMetadata").is_none() && !wire.to_string().contains("user_id"));
    assert!(!wire.to_string().contains("$schema") && !wire.to_string().contains("defer_loading"));
    let points = conv
        .system
        .iter()
        .filter(|b| matches!(b, SystemContentBlock::CachePoint(_)))
        .count()
        + conv
            .messages
            .iter()
            .flat_map(|m| &m.content)
            .filter(|b| matches!(b, ContentBlock::CachePoint(_)))
            .count();
    assert_eq!(points, 3);
    assert_eq!(
        wire["messages"][1]["content"][0]["reasoningContent"]["reasoningText"]["signature"],
        body["messages"][2]["content"][0]["signature"]
    );
    assert_eq!(
        wire["additionalModelRequestFields"]["output_config"],
        json!({"effort": "medium"})
    );
}

fn count_markers(v: &Value) -> usize {
    match v {
        Value::Object(m) => {
            let here = usize::from(
                m.get("cache_control").is_some_and(|c| !c.is_null())
                    || m.contains_key("cachePoint"),
            );
            here + m.values().map(count_markers).sum::<usize>()
        }
        Value::Array(a) => a.iter().map(count_markers).sum(),
        _ => 0,
    }
}

/// Translation never adds cache breakpoints (spec 7): checked over every golden fixture.
#[test]
fn cache_markers_never_exceed_the_clients() {
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(dir.join("input.json")) else {
            continue;
        };
        let sent = count_markers(&serde_json::from_str::<Value>(&text).unwrap()["request"]);
        for path in ["invoke", "converse"] {
            let Ok(out) = std::fs::read_to_string(dir.join(format!("{path}.json"))) else {
                continue;
            };
            let upstream = count_markers(&serde_json::from_str::<Value>(&out).unwrap());
            assert!(
                upstream <= sent,
                "{}/{path}: {upstream} markers > {sent}",
                dir.display()
            );
        }
    }
}

fn tool_choice_of(model: &str, choice: Value) -> Value {
    let body = json!({"model": model, "max_tokens": 10, "tools": [{"name": "x", "input_schema": {"type": "object"}}],
        "tool_choice": choice, "messages": [{"role": "user", "content": "hi"}]});
    let wire = serde_json::to_value(converse(model, &body, &[]).unwrap()).unwrap();
    wire.pointer("/toolConfig/toolChoice")
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn converse_tool_choice_table() {
    let m = "claude-sonnet-4-5";
    assert_eq!(
        tool_choice_of(m, json!({"type": "auto"})),
        json!({"auto": {}})
    );
    assert_eq!(tool_choice_of(m, json!("auto")), json!({"auto": {}}));
    assert_eq!(
        tool_choice_of(m, json!({"type": "any", "disable_parallel_tool_use": true})),
        json!({"any": {}})
    );
    assert_eq!(tool_choice_of(m, json!("any")), json!({"any": {}}));
    assert_eq!(
        tool_choice_of(m, json!({"type": "tool", "name": "x"})),
        json!({"tool": {"name": "x"}})
    );
    assert_eq!(tool_choice_of(m, json!({"type": "none"})), Value::Null);
    // No forced choice on Llama: degrade to auto.
    let llama = "us.meta.llama4-maverick-17b-instruct-v1:0";
    assert_eq!(
        tool_choice_of(llama, json!({"type": "any"})),
        json!({"auto": {}})
    );
    assert_eq!(
        tool_choice_of(llama, json!({"type": "tool", "name": "x"})),
        json!({"auto": {}})
    );
}

#[test]
fn invoke_tool_choice_kept_verbatim() {
    let body = json!({"model": "m", "max_tokens": 10, "tools": [{"name": "x", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}, "messages": [{"role": "user", "content": "hi"}]});
    let out = invoke("claude-sonnet-4-5", &body, &[]).unwrap().body;
    assert_eq!(
        out["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
}

#[test]
fn converse_context_reports_the_single_stop_sequence() {
    let body = |stops: Value| json!({"model": "m", "max_tokens": 10, "stop_sequences": stops, "messages": [{"role": "user", "content": "hi"}]});
    let one = converse("claude-haiku-4-5", &body(json!(["END"])), &[]).unwrap();
    let ctx = ConverseContext::from_request(&one);
    assert_eq!(ctx.single_stop_sequence(), Some("END"));
    assert!(ctx.reports_stop_sequence);
    let two = converse("qwen.qwen3-32b-v1:0", &body(json!(["A", "B"])), &[]).unwrap();
    let ctx = ConverseContext::from_request(&two);
    assert_eq!(ctx.single_stop_sequence(), None);
    assert!(!ctx.reports_stop_sequence);
}

#[test]
fn converse_request_roundtrips_through_its_wire_json() {
    let body = claude_code_body();
    let betas = BetaPolicy::parse_header_values(&[CLAUDE_CODE_BETA]);
    let conv = converse("claude-opus-5-5", &body, &betas).unwrap();
    let back: ConverseRequest =
        serde_json::from_value(serde_json::to_value(&conv).unwrap()).unwrap();
    assert_eq!(back, conv);
    let tools = &conv.tool_config.as_ref().unwrap().tools;
    assert!(tools.iter().all(|t| matches!(t, Tool::ToolSpec(_))));
}

#[test]
fn fetched_url_media_converts_after_inlining() {
    let mut body = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}]}]});
    assert!(
        converse("claude-sonnet-4-5", &body, &[])
            .unwrap_err()
            .message
            .ends_with(URL_SOURCES_DISABLED)
    );
    let found = url_sources(&body);
    let fetched = found
        .into_iter()
        .map(|u| FetchedMedia {
            pointer: u.pointer,
            media_type: "image/png".into(),
            bytes: vec![137, 80, 78, 71],
        })
        .collect();
    inline_fetched(&mut body, fetched).unwrap();
    let wire = serde_json::to_value(converse("claude-sonnet-4-5", &body, &[]).unwrap()).unwrap();
    assert_eq!(
        wire["messages"][0]["content"][0],
        json!({"image": {"format": "png", "source": {"bytes": "iVBORw=="}}})
    );
}

#[test]
fn service_tier_default_is_not_sent() {
    let route = route("claude-haiku-4-5");
    let policy = BetaPolicy::default_policy();
    let mut opts = RequestOptions::new(&route, &[], &policy);
    assert_eq!(opts.upstream_service_tier(), None);
    opts.service_tier = Some("default".into());
    assert_eq!(opts.upstream_service_tier(), None);
    opts.service_tier = Some("flex".into());
    assert_eq!(opts.upstream_service_tier().as_deref(), Some("flex"));
}

#[test]
fn count_tokens_body_is_base64_of_the_invoke_body() {
    let route = route("claude-sonnet-4-5");
    let policy = BetaPolicy::default_policy();
    let opts = RequestOptions::new(&route, &[], &policy);
    let body = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "enabled", "budget_tokens": 2048}});
    let CountTokensPlan::Bedrock { model_id, input } = to_count_tokens_input(&body, &opts).unwrap()
    else {
        panic!("expected a Bedrock plan");
    };
    assert_eq!(model_id, "anthropic.claude-sonnet-4-5-20250929-v1:0");
    let raw = media::decode_base64(input["invokeModel"]["body"].as_str().unwrap()).unwrap();
    let decoded: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(decoded["max_tokens"], 2049);
    assert_eq!(decoded["anthropic_version"], "bedrock-2023-05-31");
    // Estimate path for a family Bedrock cannot count.
    let qwen = ModelTable::builtin("global", true)
        .resolve("qwen.qwen3-32b-v1:0")
        .unwrap();
    let opts = RequestOptions::new(&qwen, &[], &policy);
    assert!(matches!(
        to_count_tokens_input(&body, &opts).unwrap(),
        CountTokensPlan::Estimate { input_tokens: 1 }
    ));
    assert!(
        estimate_input_tokens(&claude_code_body()) > 500,
        "{}",
        estimate_input_tokens(&claude_code_body())
    );
}

/// Shape errors, each with the path the Anthropic API would name, on both paths.
#[test]
fn bad_input_is_a_400_with_a_path() {
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let with = |key: &str, value: Value| {
        let mut body = json!({"model": "m", "max_tokens": 10, "messages": msgs});
        body[key] = value;
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!([1, 2]), "request body must be a JSON object"),
        (
            json!({"model": "m", "max_tokens": 10}),
            "messages: Field required",
        ),
        (
            with("messages", json!("hi")),
            "messages: Input should be a valid list",
        ),
        (
            with("messages", json!([1])),
            "messages.0: Input should be an object",
        ),
        (
            with("messages", json!([{"role": "user"}])),
            "messages.0.content: Field required",
        ),
        (
            with("messages", json!([{"content": "x"}])),
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            with("messages", json!([{"role": "user", "content": 5}])),
            "messages.0.content: Input should be a valid string or list of content blocks",
        ),
        (
            with("messages", json!([{"role": "user", "content": [5]}])),
            "messages.0.content.0: Input should be a content block object",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"text": "x"}]}]),
            ),
            "messages.0.content.0.type: Field required",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "text"}]}]),
            ),
            "messages.0.content.0.text: Field required",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "text", "text": 1}]}]),
            ),
            "messages.0.content.0.text: Input should be a valid string",
        ),
        (
            with(
                "messages",
                json!([{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "x", "input": "{}"}]}]),
            ),
            "messages.0.content.0.input: Input should be an object",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": 3}]}]),
            ),
            "messages.0.content.0.content: Input should be a valid string or list of content blocks",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]),
            ),
            "messages.0.content.0.tool_use_id: Field required",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}]}]),
            ),
            "messages.0.content.0.source.data: invalid base64 data",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "document", "source": {"type": "base64", "media_type": "text/html", "data": "AA=="}}]}]),
            ),
            "messages.0.content.0.source.media_type: Input should be 'application/pdf'",
        ),
        (
            with(
                "messages",
                json!([{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": "yes"}]}]),
            ),
            "messages.0.content.0.cache_control: Input should be an object",
        ),
        (
            with(
                "messages",
                json!([{"role": "system", "content": [{"type": "image", "source": {}}]}, {"role": "user", "content": "x"}]),
            ),
            "messages.0.content.0.type: system messages may only contain text blocks",
        ),
        (
            with("max_tokens", json!(0)),
            "max_tokens: Input should be an integer greater than or equal to 1",
        ),
        (
            with("max_tokens", json!(-1)),
            "max_tokens: Input should be an integer greater than or equal to 1",
        ),
        (
            with("max_tokens", json!("10")),
            "max_tokens: Input should be an integer greater than or equal to 1",
        ),
        (
            with("max_tokens", json!(1.5)),
            "max_tokens: Input should be an integer greater than or equal to 1",
        ),
        (
            with("top_p", json!("0.9")),
            "top_p: Input should be a valid number",
        ),
        (
            with("top_k", json!(-3)),
            "top_k: Input should be a non-negative integer",
        ),
        (
            with("stop_sequences", json!("END")),
            "stop_sequences: Input should be a list of strings",
        ),
        (
            with("system", json!(5)),
            "system: Input should be a valid string or list of text blocks",
        ),
        (
            with("system", json!([{"type": "image"}])),
            "system.0.type: Input should be 'text'",
        ),
        (
            with("tools", json!({})),
            "tools: Input should be a valid list",
        ),
        (
            with("tools", json!([{"input_schema": {}}])),
            "tools.0.name: Field required",
        ),
        (
            with("tools", json!([{"name": "x", "input_schema": "{}"}])),
            "tools.0.input_schema: Input should be an object",
        ),
        (
            with("tool_choice", json!({"type": "sometimes"})),
            "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'",
        ),
        (
            with("thinking", json!({"type": "enabled"})),
            "thinking.budget_tokens: Field required",
        ),
        (
            with("metadata", json!("user")),
            "metadata: Input should be an object",
        ),
        (
            with("output_config", json!({"effort": 3})),
            "output_config.effort: Input should be a valid string",
        ),
        (
            with("output_config", json!({"format": {"type": "regex"}})),
            "output_config.format: expected {\"type\":\"json_schema\",\"schema\":{...}}",
        ),
        (
            with("mcp_servers", json!({})),
            "mcp_servers: Input should be a valid list",
        ),
        (
            with("anthropic_beta", json!([1])),
            "anthropic_beta: Input should be a list of strings",
        ),
        (
            with("context_management", json!({"edits": "all"})),
            "context_management.edits: Input should be a list of edits with a type",
        ),
    ];
    for (body, message) in cases {
        for result in [
            invoke("claude-sonnet-4-5", &body, &[]).map(|_| ()),
            converse("claude-sonnet-4-5", &body, &[]).map(|_| ()),
        ] {
            let err = result.expect_err(message);
            assert_eq!(err.status.as_u16(), 400, "{message}");
            assert_eq!(err.message, message);
        }
    }
}

#[test]
fn whitespace_only_conversation_is_a_400() {
    let body = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "text", "text": "  "}]}]});
    let err = invoke("claude-sonnet-4-5", &body, &[]).unwrap_err();
    assert_eq!(
        err.message,
        "messages: at least one message with non-empty content is required"
    );
}

#[test]
fn null_fields_count_as_absent() {
    let body = json!({"model": "m", "max_tokens": 10, "temperature": null, "tools": null, "system": null,
        "messages": [{"role": "user", "content": "hi"}]});
    let out = invoke("claude-sonnet-4-5", &body, &[]).unwrap().body;
    assert!(
        out.get("temperature").is_none()
            && out.get("tools").is_none()
            && out.get("system").is_none()
    );
}
