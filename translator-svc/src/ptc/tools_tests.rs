#![allow(clippy::unwrap_used, reason = "tests")]

use serde_json::json;

use super::*;

fn config() -> PtcConfig {
    let src: std::collections::HashMap<&str, &str> = Default::default();
    PtcConfig::from_source(&src).unwrap()
}

fn request() -> Value {
    json!({"tools": [
        {"type": "code_execution_20250825", "name": "code_execution"},
        {"name": "get_item", "description": "Reads an item.\nMore.", "input_schema": {"type": "object",
            "properties": {"limit": {"type": "integer"}, "item_id": {"type": "string"}}, "required": ["item_id"]},
         "allowed_callers": ["code_execution_20250825"]},
        {"name": "execute_code", "input_schema": {"type": "object"}, "allowed_callers": ["direct", "code_execution_20250825"]},
        {"name": "weather", "input_schema": {"type": "object"}}
    ], "tool_choice": {"type": "tool", "name": "code_execution"}})
}

fn betas() -> Vec<String> {
    vec!["other".into(), BETA.into()]
}

#[test]
fn roles_code_tool_and_unique_name() {
    let t = analyze(&request(), &betas(), &config()).unwrap();
    assert_eq!(t.code_tool_name, "execute_code_1");
    assert_eq!(t.caller_type, "code_execution_20250825");
    let upstream: Vec<&str> = t.upstream.iter().map(name_of).collect();
    assert_eq!(upstream, ["execute_code_1", "execute_code", "weather"]);
    assert!(
        t.upstream
            .iter()
            .all(|u| u.get("allowed_callers").is_none())
    );
    assert_eq!(t.callable_names(), ["get_item", "execute_code"]);
    let desc = t.upstream[0]["description"].as_str().unwrap();
    assert!(
        desc.contains(
            "async def get_item(*, item_id: str, limit: int = None) -> str: Reads an item."
        ),
        "{desc}"
    );
    let mut body = request().as_object().unwrap().clone();
    rewrite_tool_choice(&mut body, &t);
    assert_eq!(body["tool_choice"]["name"], "execute_code_1");
    // Deterministic rendering keeps prompt caching working across rounds.
    assert_eq!(
        guide(&t, &config()),
        guide(
            &analyze(&request(), &betas(), &config()).unwrap(),
            &config()
        )
    );
}

#[test]
fn activation_errors() {
    let err = analyze(
        &request(),
        &["advanced-tool-use-2025-11-20x".into()],
        &config(),
    )
    .unwrap_err();
    assert!(err.message.contains("anthropic-beta"), "{}", err.message);
    let mut two = request();
    two["tools"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "code_execution_20250825", "name": "c2"}));
    assert!(
        analyze(&two, &betas(), &config())
            .unwrap_err()
            .message
            .contains("only one")
    );
    let mut bad = request();
    bad["tools"][3]["allowed_callers"] = json!([]);
    assert!(
        analyze(&bad, &betas(), &config())
            .unwrap_err()
            .message
            .contains("weather")
    );
    let mut other = request();
    other["tools"][3]["allowed_callers"] = json!(["code_execution_20260120"]);
    assert!(analyze(&other, &betas(), &config()).is_err());
    let mut choice = request();
    choice["tool_choice"] = json!({"type": "tool", "name": "get_item"});
    assert!(
        analyze(&choice, &betas(), &config())
            .unwrap_err()
            .message
            .contains("only be called from code")
    );
}

#[test]
fn python_names_and_guide_system() {
    assert_eq!(python_name("get-item.v2"), "get_item_v2");
    assert_eq!(python_name("2fa"), "_2fa");
    assert_eq!(python_name("class"), "class_");
    let mut body = json!({"system": "be brief"}).as_object().unwrap().clone();
    append_guide(&mut body, "G".into());
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "be brief"}, {"type": "text", "text": "G"}])
    );
}
