//! The real clients through the whole gateway (Envoy + gate filter + translator-svc + fake
//! Bedrock): the Anthropic Python SDK, the TypeScript SDK and Claude Code 2.1.332, each case under
//! both Bedrock APIs for Claude (`CLAUDE_API=invoke` and `converse`). Assertions are on what the
//! client got back and on what the fake Bedrock recorded.

use std::path::PathBuf;

use e2e::clients::{self, Target};
use e2e::stack::{ClaudeApi, Stack, StackOptions};
use e2e::tools;
use fake_bedrock::{Operation, RecordedRequest};
use serde_json::Value;

const MODEL: &str = "claude-sonnet-4-5-20250929";
/// What the fake's `[[fake:text]]` built-in answers.
const SCRIPTED_TEXT: &str = "This is a scripted text reply from the fake Bedrock.";
/// The command and id of the fake's `[[fake:bash]]` tool use.
const BASH_ECHO: &str = "echo hello-from-tool";
const BASH_TOOL_ID: &str = "toolu_bdrk_fake_bash_0001";

/// Runs `$body(api)` once per Bedrock API, as `$name::invoke` and `$name::converse`.
macro_rules! per_api {
    ($($name:ident => $body:expr;)*) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn invoke() {
                ($body)(ClaudeApi::Invoke).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn converse() {
                ($body)(ClaudeApi::Converse).await
            }
        }
    )*};
}

async fn start(api: ClaudeApi) -> Option<Stack> {
    // One Bedrock attempt: a scripted throttle must reach the client, not be retried away.
    let options = StackOptions::api(api).translator_env("BEDROCK_MAX_ATTEMPTS", "1");
    Stack::start(options).await.expect("start the gateway")
}

fn target(stack: &Stack) -> Target<'_> {
    Target {
        base_url: &stack.url,
        key: &stack.master_key,
        bearer: false,
    }
}

fn python() -> Option<(PathBuf, PathBuf)> {
    let python = tools::python().expect("python")?;
    let clients = tools::workspace_root().join("tests/clients");
    Some((python, clients))
}

fn node() -> Option<(PathBuf, PathBuf)> {
    let node = tools::node().expect("node")?;
    let clients = tools::clients_dir().expect("clients")?;
    Some((node, clients))
}

async fn python_case(api: ClaudeApi, case: &str) -> Option<(Stack, Value)> {
    let (python, clients) = python()?;
    let stack = start(api).await?;
    let out = clients::python_sdk(&python, &clients, case, MODEL, &target(&stack))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    Some((stack, out))
}

async fn ts_case(api: ClaudeApi, case: &str) -> Option<(Stack, Value)> {
    let (node, clients) = node()?;
    let stack = start(api).await?;
    let out = clients::ts_sdk(&node, &clients, case, MODEL, &target(&stack))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    Some((stack, out))
}

/// The generation calls the fake received (control calls are never recorded).
fn generations(stack: &Stack) -> Vec<RecordedRequest> {
    stack
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.operation.is_generation())
        .collect()
}

fn expected_operation(api: ClaudeApi, stream: bool) -> Operation {
    match (api, stream) {
        (ClaudeApi::Invoke, false) => Operation::Invoke,
        (ClaudeApi::Invoke, true) => Operation::InvokeStream,
        (ClaudeApi::Converse, false) => Operation::Converse,
        (ClaudeApi::Converse, true) => Operation::ConverseStream,
    }
}

fn text_of(message: &Value) -> String {
    message["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|block| block["type"] == "text")
        .filter_map(|block| block["text"].as_str())
        .collect()
}

fn assert_scripted_message(message: &Value) {
    assert_eq!(message["type"], "message", "{message:#}");
    assert_eq!(message["role"], "assistant", "{message:#}");
    assert!(
        message["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("msg_")),
        "{message:#}"
    );
    assert_eq!(text_of(message), SCRIPTED_TEXT, "{message:#}");
    assert_eq!(message["stop_reason"], "end_turn", "{message:#}");
    assert!(
        message["usage"]["input_tokens"].as_u64() > Some(0),
        "{message:#}"
    );
    assert!(
        message["usage"]["output_tokens"].as_u64() > Some(0),
        "{message:#}"
    );
}

fn assert_stream(api: ClaudeApi, stack: &Stack, out: &Value) {
    let events: Vec<&str> = out["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(events.first(), Some(&"message_start"), "{events:?}");
    assert_eq!(events.last(), Some(&"message_stop"), "{events:?}");
    for needed in [
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
    ] {
        assert!(events.contains(&needed), "no {needed} in {events:?}");
    }
    assert_scripted_message(&out["final"]);
    let calls = generations(stack);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].operation, expected_operation(api, true));
}

/// Turn 1 asked for Bash, turn 2 carried the tool result back and got the fake's echo of it.
fn assert_tool_round_trip(stack: &Stack, out: &Value) {
    let first = &out["first"];
    assert_eq!(first["stop_reason"], "tool_use", "{first:#}");
    let tool_use = first["content"]
        .as_array()
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "tool_use"))
        .unwrap_or_else(|| panic!("no tool_use in {first:#}"));
    assert_eq!(tool_use["name"], "Bash");
    assert_eq!(tool_use["id"], BASH_TOOL_ID);
    assert_eq!(tool_use["input"]["command"], BASH_ECHO);
    let second = &out["second"];
    assert!(text_of(second).contains("hello-from-tool"), "{second:#}");
    let calls = generations(stack);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let results = tool_results(&calls[1].body);
    assert!(
        results
            .iter()
            .any(|r| r.contains(BASH_TOOL_ID) && r.contains("hello-from-tool")),
        "the tool result did not reach Bedrock intact: {results:?}"
    );
}

/// Every tool result block of a Bedrock request body (InvokeModel `tool_result` or Converse
/// `toolResult`), serialized.
fn tool_results(body: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![body];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if map.get("type").is_some_and(|t| t == "tool_result") {
                    found.push(value.to_string());
                }
                if let Some(result) = map.get("toolResult") {
                    found.push(result.to_string());
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

/// The thinking block came back with a signature, and turn 2 delivered that signature to Bedrock
/// byte for byte.
fn assert_thinking_round_trip(stack: &Stack, out: &Value) {
    let first = &out["first"];
    let thinking = first["content"]
        .as_array()
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "thinking"))
        .unwrap_or_else(|| panic!("no thinking block in {first:#}"));
    let signature = thinking["signature"].as_str().expect("signature");
    assert!(!signature.is_empty());
    assert!(thinking["thinking"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(!text_of(first).is_empty(), "{first:#}");
    let calls = generations(stack);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let quoted = Value::from(signature).to_string();
    let sent = calls[1].body.to_string();
    assert!(
        sent.contains(&quoted),
        "signature {quoted} not sent back byte-exact: {sent}"
    );
    assert_eq!(out["second"]["type"], "message");
}

fn assert_error(out: &Value, class: &str, status: u64, error_type: &str) {
    assert_eq!(out["error_class"], class, "{out:#}");
    assert_eq!(out["status"], status, "{out:#}");
    assert_eq!(out["body"]["type"], "error", "{out:#}");
    assert_eq!(out["body"]["error"]["type"], error_type, "{out:#}");
    assert!(
        out["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "no request-id: {out:#}"
    );
}

per_api! {
    python_create => |api| async move {
        let Some((stack, out)) = python_case(api, "create").await else { return };
        assert_scripted_message(&out);
        let calls = generations(&stack);
        assert_eq!(calls.len(), 1, "{calls:#?}");
        assert_eq!(calls[0].operation, expected_operation(api, false));
    };
    python_stream => |api| async move {
        let Some((stack, out)) = python_case(api, "stream").await else { return };
        assert_stream(api, &stack, &out);
    };
    python_tools => |api| async move {
        let Some((stack, out)) = python_case(api, "tools").await else { return };
        assert_tool_round_trip(&stack, &out);
    };
    python_thinking => |api| async move {
        let Some((stack, out)) = python_case(api, "thinking").await else { return };
        assert_thinking_round_trip(&stack, &out);
    };
    python_beta => |api| async move {
        let Some((stack, out)) = python_case(api, "beta").await else { return };
        assert_scripted_message(&out);
        assert_eq!(generations(&stack).len(), 1);
    };
    python_count_tokens => |api| async move {
        let Some((_stack, out)) = python_case(api, "count_tokens").await else { return };
        assert!(out["input_tokens"].as_u64() > Some(0), "{out:#}");
    };
    python_models => |api| async move {
        let Some((_stack, out)) = python_case(api, "models").await else { return };
        let ids = out["ids"].as_array().expect("ids");
        assert!(!ids.is_empty(), "{out:#}");
        assert!(ids.iter().all(|id| id.as_str().is_some_and(|id| !id.is_empty())), "{out:#}");
    };
    python_bad_key => |api| async move {
        let Some((stack, out)) = python_case(api, "bad_key").await else { return };
        assert_error(&out, "AuthenticationError", 401, "authentication_error");
        assert!(stack.fake.requests().is_empty(), "a bad key reached Bedrock");
    };
    python_throttle => |api| async move {
        let Some((_stack, out)) = python_case(api, "throttle").await else { return };
        assert_error(&out, "RateLimitError", 429, "rate_limit_error");
    };
    ts_create => |api| async move {
        let Some((stack, out)) = ts_case(api, "create").await else { return };
        assert_scripted_message(&out);
        assert_eq!(generations(&stack)[0].operation, expected_operation(api, false));
    };
    ts_stream => |api| async move {
        let Some((stack, out)) = ts_case(api, "stream").await else { return };
        assert_stream(api, &stack, &out);
    };
    ts_tools => |api| async move {
        let Some((stack, out)) = ts_case(api, "tools").await else { return };
        assert_tool_round_trip(&stack, &out);
    };
    ts_thinking => |api| async move {
        let Some((stack, out)) = ts_case(api, "thinking").await else { return };
        assert_thinking_round_trip(&stack, &out);
    };
    claude_code_plain_api_key => |api| claude_code_plain(api, false);
    claude_code_plain_auth_token => |api| claude_code_plain(api, true);
    claude_code_bash_api_key => |api| claude_code_bash(api, false);
    claude_code_bash_auth_token => |api| claude_code_bash(api, true);
}

async fn claude_code_run(api: ClaudeApi, bearer: bool, prompt: &str) -> Option<(Stack, Value)> {
    let clients = tools::clients_dir().expect("clients")?;
    let stack = start(api).await?;
    let target = Target {
        bearer,
        ..target(&stack)
    };
    let (out, run) = clients::claude_code(&clients, prompt, &target)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(out["is_error"], false, "{run}");
    Some((stack, out))
}

async fn claude_code_plain(api: ClaudeApi, bearer: bool) {
    let Some((stack, out)) = claude_code_run(api, bearer, "Say hello [[fake:text]]").await else {
        return;
    };
    assert_eq!(out["result"], SCRIPTED_TEXT, "{out:#}");
    assert!(!generations(&stack).is_empty());
}

async fn claude_code_bash(api: ClaudeApi, bearer: bool) {
    let prompt = "Run the greeting command [[fake:bash]]";
    let Some((stack, out)) = claude_code_run(api, bearer, prompt).await else {
        return;
    };
    let result = out["result"].as_str().unwrap_or_default();
    assert!(result.contains("hello-from-tool"), "{out:#}");
    assert!(out["num_turns"].as_u64() >= Some(2), "{out:#}");
    // The turn that carried the tool result: Bash really ran `echo` and its output went back.
    let carried = generations(&stack).iter().any(|call| {
        tool_results(&call.body)
            .iter()
            .any(|r| r.contains(BASH_TOOL_ID) && r.contains("hello-from-tool"))
    });
    assert!(carried, "no request carried the Bash tool result back");
}
