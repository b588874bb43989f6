//! Resolution tests: every row of spec 6.1 and 6.2, operator overrides, listing and lookup.

use super::*;
use crate::error::ErrorType;

fn table() -> ModelTable {
    ModelTable::builtin("global", true)
}

fn resolved(t: &ModelTable, name: &str) -> String {
    t.resolve(name)
        .map(|r| r.resolved_id)
        .unwrap_or_else(|e| format!("ERR {e}"))
}

#[test]
fn builtin_rows_6_2() {
    let t = table();
    let rows = [
        ("claude-opus-4-7", "global.anthropic.claude-opus-4-7"),
        ("claude-opus-4-6", "global.anthropic.claude-opus-4-6-v1"),
        ("claude-sonnet-4-6", "global.anthropic.claude-sonnet-4-6"),
        (
            "claude-opus-4-5",
            "global.anthropic.claude-opus-4-5-20251101-v1:0",
        ),
        (
            "claude-opus-4-5-20251101",
            "global.anthropic.claude-opus-4-5-20251101-v1:0",
        ),
        (
            "claude-sonnet-4-5",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        (
            "claude-sonnet-4-5-20250929",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        (
            "claude-haiku-4-5",
            "global.anthropic.claude-haiku-4-5-20251001-v1:0",
        ),
        (
            "claude-haiku-4-5-20251001",
            "global.anthropic.claude-haiku-4-5-20251001-v1:0",
        ),
        (
            "claude-sonnet-4-0",
            "global.anthropic.claude-sonnet-4-20250514-v1:0",
        ),
        (
            "claude-sonnet-4-20250514",
            "global.anthropic.claude-sonnet-4-20250514-v1:0",
        ),
        (
            "claude-opus-4-1",
            "us.anthropic.claude-opus-4-1-20250805-v1:0",
        ),
        (
            "claude-opus-4-1-20250805",
            "us.anthropic.claude-opus-4-1-20250805-v1:0",
        ),
        (
            "claude-3-7-sonnet-latest",
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        ),
        (
            "claude-3-7-sonnet-20250219",
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        ),
        (
            "claude-3-5-haiku-latest",
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        ),
        (
            "claude-3-5-haiku-20241022",
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        ),
    ];
    for (name, id) in rows {
        let route = t.resolve(name).unwrap();
        assert_eq!(route.resolved_id, id, "{name}");
        assert_eq!(route.requested_model, name);
        assert_eq!(route.family(), Family::Claude);
        assert_eq!(route.backend(), Backend::Invoke);
        assert!(!route.context_1m);
    }
}

#[test]
fn adaptive_only_and_limits_follow_the_table() {
    let t = table();
    let opus47 = t.resolve("claude-opus-4-7").unwrap();
    assert_eq!(opus47.capabilities().thinking, ThinkingSupport::Adaptive);
    assert_eq!(opus47.entry.max_output_tokens, Some(128_000));
    let haiku = t.resolve("claude-haiku-4-5").unwrap();
    assert_eq!(haiku.entry.max_output_tokens, Some(64_000));
}

#[test]
fn default_profile_switch() {
    let t = ModelTable::builtin("eu", true);
    assert_eq!(
        resolved(&t, "claude-sonnet-4-5"),
        "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
    );
    assert_eq!(
        resolved(&t, "claude-opus-4-1"),
        "eu.anthropic.claude-opus-4-1-20250805-v1:0"
    );
    assert_eq!(resolved(&t, "claude-opus-5"), "eu.anthropic.claude-opus-5");
    let us = ModelTable::builtin("us", true);
    assert_eq!(
        resolved(&us, "claude-opus-4-7"),
        "us.anthropic.claude-opus-4-7"
    );
}

#[test]
fn context_1m_marker_6_1_1() {
    let t = table();
    let r = t.resolve("claude-sonnet-4-5[1m]").unwrap();
    assert!(r.context_1m);
    assert!(r.entry.needs_context_1m);
    assert_eq!(
        r.resolved_id,
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    );
    assert_eq!(r.requested_model, "claude-sonnet-4-5[1m]");
    let r = t.resolve("claude-opus-4-7[1m]").unwrap();
    assert!(r.context_1m && !r.entry.needs_context_1m);
    let r = t
        .resolve("us.anthropic.claude-sonnet-4-5-20250929-v1:0[1m]")
        .unwrap();
    assert!(r.context_1m);
    assert_eq!(
        r.resolved_id,
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    );
}

#[test]
fn bedrock_shaped_passthrough_6_1_3() {
    let t = table();
    for id in [
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "apac.anthropic.claude-sonnet-4-20250514-v1:0",
        "jp.anthropic.claude-haiku-4-5-20251001-v1:0",
        "au.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "ca.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "us-gov.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "qwen.qwen3-coder-480b-a35b-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-1-20250805-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0",
    ] {
        assert_eq!(resolved(&t, id), id);
    }
    // A geo-swapped id of a built-in keeps the built-in's limits.
    let r = t
        .resolve("us.anthropic.claude-haiku-4-5-20251001-v1:0")
        .unwrap();
    assert_eq!(r.entry.max_output_tokens, Some(64_000));
    assert_eq!(r.backend(), Backend::Invoke);
    let qwen = t.resolve("qwen.qwen3-coder-480b-a35b-v1:0").unwrap();
    assert_eq!(
        (qwen.family(), qwen.backend()),
        (Family::Qwen, Backend::Converse)
    );
    let nova = t
        .resolve("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0")
        .unwrap();
    assert_eq!(nova.family(), Family::Nova);
}

#[test]
fn unknown_application_profile_arn_is_other_on_converse() {
    let arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3";
    let r = table().resolve(arn).unwrap();
    assert_eq!(
        (r.family(), r.backend()),
        (Family::Other, Backend::Converse)
    );
    assert_eq!(r.resolved_id, arn);
}

#[test]
fn derive_rule_6_1_4() {
    let t = table();
    assert_eq!(
        resolved(&t, "claude-opus-5-5"),
        "global.anthropic.claude-opus-5-5"
    );
    assert_eq!(
        resolved(&t, "claude-opus-4-8"),
        "global.anthropic.claude-opus-4-8"
    );
    assert_eq!(
        resolved(&t, "claude-sonnet-5"),
        "global.anthropic.claude-sonnet-5"
    );
    assert_eq!(
        resolved(&t, "claude-sonnet-5-5"),
        "global.anthropic.claude-sonnet-5-5"
    );
    assert_eq!(
        resolved(&t, "claude-sonnet-5-20270301"),
        "global.anthropic.claude-sonnet-5-20270301-v1:0"
    );
    let r = t.resolve("claude-opus-5-5").unwrap();
    assert_eq!(r.backend(), Backend::Invoke);
    assert_eq!(r.capabilities().thinking, ThinkingSupport::Adaptive);
    assert!(r.capabilities().effort);
    // Off: 404.
    let off = ModelTable::builtin("global", false);
    let err = off.resolve("claude-opus-5-5").unwrap_err();
    assert_eq!(err.error_type, ErrorType::NotFound);
    // Built-ins still resolve with the rule off.
    assert!(off.resolve("claude-opus-4-7").is_ok());
}

#[test]
fn unknown_names_are_404_6_1_5() {
    let t = table();
    for name in ["gpt-4o", "", "claude", "claude-opus", "opus", "[1m]"] {
        let err = t.resolve(name).unwrap_err();
        assert_eq!(err.error_type, ErrorType::NotFound, "{name}");
        assert_eq!(err.status.as_u16(), 404);
        assert_eq!(err.message, format!("model: {name} not found"));
    }
}

fn operator(json: serde_json::Value) -> ModelEntry {
    serde_json::from_value(json).unwrap()
}

#[test]
fn operator_alias_to_claude_goes_to_invoke() {
    let t = table().with_overrides(vec![operator(serde_json::json!({
        "key": "opus", "bedrock_id": "global.anthropic.claude-opus-4-7"
    }))]);
    let r = t.resolve("opus").unwrap();
    assert_eq!(r.resolved_id, "global.anthropic.claude-opus-4-7");
    assert_eq!((r.family(), r.backend()), (Family::Claude, Backend::Invoke));
    assert_eq!(r.capabilities().thinking, ThinkingSupport::Adaptive);
    assert_eq!(r.requested_model, "opus");
}

#[test]
fn operator_maps_claude_name_to_qwen_on_converse() {
    let t = table().with_overrides(vec![operator(serde_json::json!({
        "key": "claude-sonnet-4-5", "bedrock_id": "qwen.qwen3-coder-480b-a35b-v1:0"
    }))]);
    let r = t.resolve("claude-sonnet-4-5").unwrap();
    assert_eq!(r.resolved_id, "qwen.qwen3-coder-480b-a35b-v1:0");
    assert_eq!((r.family(), r.backend()), (Family::Qwen, Backend::Converse));
    assert!(!r.capabilities().reasoning_history);
    // The dated built-in name is untouched.
    assert_eq!(
        resolved(&t, "claude-sonnet-4-5-20250929"),
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    );
}

#[test]
fn operator_entry_overrides_builtin_and_capabilities() {
    let entry = operator(serde_json::json!({
        "key": "claude-haiku-4-5",
        "bedrock_id": "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/haiku",
        "family": "claude",
        "backend": "converse",
        "max_output_tokens": 8000,
        "count_tokens_id": "anthropic.claude-haiku-4-5-20251001-v1:0",
        "capabilities": {"tool_search": true, "thinking": "both"}
    }));
    let t = table().with_overrides(vec![entry]);
    let r = t.resolve("claude-haiku-4-5").unwrap();
    assert_eq!(r.family(), Family::Claude);
    assert_eq!(r.backend(), Backend::Converse);
    assert_eq!(r.entry.max_output_tokens, Some(8000));
    assert!(r.capabilities().tool_search);
    assert_eq!(r.capabilities().thinking, ThinkingSupport::Both);
    assert!(r.capabilities().reasoning_history, "family default kept");
}

#[test]
fn claude_api_switch_keeps_explicit_backends() {
    let t = table().with_claude_backend(Backend::Converse).with_overrides(vec![
        operator(serde_json::json!({"key": "opus", "bedrock_id": "global.anthropic.claude-opus-4-7"})),
        operator(serde_json::json!({"key": "pinned", "bedrock_id": "global.anthropic.claude-opus-4-7", "backend": "invoke"})),
    ]);
    assert_eq!(
        t.resolve("claude-sonnet-4-5").unwrap().backend(),
        Backend::Converse
    );
    assert_eq!(
        t.resolve("claude-opus-5-5").unwrap().backend(),
        Backend::Converse
    );
    assert_eq!(t.resolve("opus").unwrap().backend(), Backend::Converse);
    assert_eq!(t.resolve("pinned").unwrap().backend(), Backend::Invoke);
    assert_eq!(
        t.resolve("qwen.qwen3-32b-v1:0").unwrap().backend(),
        Backend::Converse
    );
}

#[test]
fn operator_entry_rejects_unknown_fields_and_roundtrips() {
    let bad: Result<ModelEntry, _> =
        serde_json::from_value(serde_json::json!({"key": "x", "bedrock_id": "y.z", "colour": 1}));
    assert!(bad.is_err());
    let e = table().lookup("claude-opus-4-7").unwrap();
    let back: ModelEntry = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
    // A serialized entry states its backend, so it comes back pinned.
    assert_eq!(
        back,
        ModelEntry {
            backend_overridden: true,
            ..e
        }
    );
}

#[test]
fn listing_and_lookup() {
    let t = table().with_overrides(vec![
        operator(serde_json::json!({"key": "opus", "bedrock_id": "global.anthropic.claude-opus-4-7", "listed": false})),
        operator(serde_json::json!({"key": "claude-opus-4-7", "bedrock_id": "us.anthropic.claude-opus-4-7", "display_name": "Opus (US)"})),
    ]);
    let listed = t.listed();
    let keys: Vec<&str> = listed.iter().map(|e| e.key.as_str()).collect();
    assert!(keys.contains(&"claude-sonnet-4-5-20250929"));
    assert!(
        !keys.contains(&"claude-sonnet-4-5"),
        "aliases are not listed"
    );
    assert!(!keys.contains(&"opus"));
    assert_eq!(keys.iter().filter(|k| **k == "claude-opus-4-7").count(), 1);
    let opus = listed.iter().find(|e| e.key == "claude-opus-4-7").unwrap();
    assert_eq!(opus.display_name, "Opus (US)");
    let sonnet = listed
        .iter()
        .find(|e| e.key == "claude-sonnet-4-5-20250929")
        .unwrap();
    assert_eq!(sonnet.display_name, "Claude Sonnet 4.5");
    assert_eq!(sonnet.created_at.as_deref(), Some("2025-09-29T00:00:00Z"));
    assert_eq!(
        t.lookup("claude-sonnet-4-5").unwrap().display_name,
        "Claude Sonnet 4.5"
    );
    assert_eq!(
        t.lookup("opus").unwrap().bedrock_id,
        "global.anthropic.claude-opus-4-7"
    );
    assert_eq!(
        t.lookup("claude-opus-5-5").unwrap().display_name,
        "Claude Opus 5.5"
    );
    assert!(t.lookup("gpt-4o").is_none());
}
