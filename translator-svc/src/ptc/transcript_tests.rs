#![allow(clippy::unwrap_used, reason = "tests")]

use serde_json::json;

use super::*;

const NAMES: Names<'static> = Names {
    client_code_name: Some("code_execution"),
    code_tool_name: "execute_code",
};

#[test]
fn ids_round_trip() {
    assert_eq!(to_server_id("toolu_bdrk_01Ab"), "srvtoolu_bdrk_01Ab");
    assert_eq!(to_model_id("srvtoolu_bdrk_01Ab"), "toolu_bdrk_01Ab");
    assert_eq!(to_server_id("call1"), "srvtoolu_call1");
}

#[test]
fn result_content_rendering() {
    assert_eq!(render_result_content(None), "");
    assert_eq!(render_result_content(Some(&json!([]))), "");
    assert_eq!(render_result_content(Some(&json!("x"))), "x");
    let list = json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]);
    assert_eq!(
        render_result_content(Some(&list)),
        "a\nb\n[image image/png, 3 bytes]"
    );
}

#[test]
fn rebuild_keeps_thinking_order_and_restores_code_turns() {
    let messages = vec![
        json!({"role": "user", "content": "go"}),
        json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "t", "signature": "s"},
            {"type": "server_tool_use", "id": "srvtoolu_bdrk_1", "name": "code_execution", "input": {"code": "x"}},
            {"type": "tool_use", "id": "toolu_ptc_aaa", "name": "get", "input": {}},
            {"type": "code_execution_tool_result", "tool_use_id": "srvtoolu_bdrk_1",
             "content": {"type": "code_execution_result", "stdout": "hi", "stderr": "", "return_code": 0, "content": []}},
            {"type": "text", "text": "done"},
            {"type": "tool_use", "id": "toolu_d", "name": "weather", "input": {}, "caller": {"type": "direct"}}
        ]}),
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_ptc_aaa", "content": "v"},
            {"type": "text", "text": "and"},
            {"type": "tool_result", "tool_use_id": "toolu_d", "content": "sunny"}
        ]}),
    ];
    let out = rebuild(&messages, &NAMES);
    assert_eq!(out.len(), 5, "{out:#?}");
    assert_eq!(out[1]["content"][0]["type"], "thinking");
    assert_eq!(
        out[1]["content"][1],
        json!({"type": "tool_use", "id": "toolu_bdrk_1", "name": "execute_code", "input": {"code": "x"}})
    );
    assert_eq!(out[2]["content"][0]["tool_use_id"], "toolu_bdrk_1");
    assert_eq!(
        out[2]["content"][0]["content"],
        r#"{"stdout":"hi","stderr":"","return_code":0}"#
    );
    assert_eq!(out[3]["content"][1].get("caller"), None);
    assert_eq!(out[4]["content"][0]["tool_use_id"], "toolu_d");
    assert_eq!(out[4]["content"][1]["type"], "text");
}

#[test]
fn unanswered_code_use_gets_result_or_unavailable() {
    let messages = vec![
        json!({"role": "user", "content": "go"}),
        json!({"role": "assistant", "content": [
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "code_execution", "input": {"code": "a"}},
            {"type": "server_tool_use", "id": "srvtoolu_2", "name": "code_execution", "input": {"code": "b"}}]}),
    ];
    let out = rebuild(&messages, &NAMES);
    assert_eq!(unanswered_code_uses(&out, "execute_code").len(), 2);
    let results =
        std::collections::HashMap::from([("toolu_2".to_string(), ("R".to_string(), false))]);
    let out = fill_code_results(out, "execute_code", &results);
    assert_eq!(out[2]["content"][0]["tool_use_id"], "toolu_1");
    assert_eq!(out[2]["content"][0]["is_error"], true);
    assert_eq!(out[2]["content"][1]["content"], "R");
}

/// Section 1 / 4.3: PTC turned off mid-conversation. The history is rebuilt all the same; the
/// code call the client never got a result for is answered "unavailable"; the code tool joins
/// the tools (under a name no client tool has).
#[test]
fn rebuild_when_ptc_is_not_active() {
    let mut request = json!({"model": "m", "tools": [
            {"name": "execute_code", "input_schema": {"type": "object"}},
            {"name": "weather", "input_schema": {"type": "object"}}],
        "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "t", "signature": "s"},
            {"type": "server_tool_use", "id": "srvtoolu_bdrk_1", "name": "code_execution", "input": {"code": "a"}},
            {"type": "tool_use", "id": "toolu_ptc_0123456789abcdef01234567", "name": "get", "input": {},
             "caller": {"type": "code_execution_20250825", "tool_id": "srvtoolu_bdrk_1"}},
            {"type": "code_execution_tool_result", "tool_use_id": "srvtoolu_bdrk_1",
             "content": {"type": "code_execution_result", "stdout": "1", "stderr": "", "return_code": 0, "content": []}},
            {"type": "text", "text": "more"},
            {"type": "server_tool_use", "id": "srvtoolu_bdrk_2", "name": "code_execution", "input": {"code": "b"}},
            {"type": "tool_use", "id": "toolu_bdrk_3", "name": "weather", "input": {}, "caller": {"type": "direct"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_ptc_0123456789abcdef01234567", "content": "x"},
            {"type": "tool_result", "tool_use_id": "toolu_bdrk_3", "content": "sunny"},
            {"type": "text", "text": "and now?"}]}]});
    rebuild_inactive(&mut request, "execute_code");
    let report = json!({"stdout": "1", "stderr": "", "return_code": 0}).to_string();
    let unavailable = json!({"error": "execution result unavailable"}).to_string();
    assert_eq!(
        request["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "go"}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "tool_use", "id": "toolu_bdrk_1", "name": "execute_code_1", "input": {"code": "a"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_bdrk_1", "content": report, "is_error": false}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "more"},
                {"type": "tool_use", "id": "toolu_bdrk_2", "name": "execute_code_1", "input": {"code": "b"}},
                {"type": "tool_use", "id": "toolu_bdrk_3", "name": "weather", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_bdrk_2", "content": unavailable, "is_error": true},
                {"type": "tool_result", "tool_use_id": "toolu_bdrk_3", "content": "sunny"},
                {"type": "text", "text": "and now?"}]}
        ])
    );
    let tools = request["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 3);
    assert_eq!(tools[0]["name"], "execute_code_1");
    assert_eq!(tools[0]["input_schema"]["required"], json!(["code"]));
    assert_eq!(tools[1]["name"], "execute_code");

    // Without PTC blocks nothing changes.
    let plain = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let mut same = plain.clone();
    rebuild_inactive(&mut same, "execute_code");
    assert_eq!(same, plain);
}
