//! Programmatic Tool Calling end to end: translator-svc in-process, the fake Bedrock, and the real
//! ptc-svc binary on the Docker engine (`cargo build -p ptc-svc`; image
//! `gateway-ptc-sandbox:latest`). Without an engine or binary the tests skip with a notice, and
//! fail when `CI=true`.

#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    clippy::panic,
    reason = "test harness: a failed setup step fails the test"
)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_credential_types::Credentials;
use fake_bedrock::{ContentBlock, FakeBedrock, Scenario};
use serde_json::{Value, json};
use translator_svc::app;
use translator_svc::bedrock::{self, BedrockSettings};
use translator_svc::config::Config;

const SECRET: &str = "test-internal-secret-0123456789";
const BETA: &str = "advanced-tool-use-2025-11-20";

/// The ptc-svc binary as a child process, killed (by its own id) on drop.
struct PtcSvc {
    child: Child,
    endpoint: String,
}

impl Drop for PtcSvc {
    /// SIGTERM first: ptc-svc drains and removes its containers; SIGKILL only if it hangs.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..300 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skip_or_fail(reason: &str) -> Option<PtcSvc> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("PTC integration test cannot run: {reason}");
    }
    eprintln!("skipping PTC integration test: {reason}");
    None
}

fn ptc_binary() -> PathBuf {
    if let Ok(path) = std::env::var("PTC_SVC_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("debug/ptc-svc")
}

async fn start_ptc() -> Option<PtcSvc> {
    let docker = std::env::var("DOCKER_HOST").is_ok()
        || std::path::Path::new("/var/run/docker.sock").exists();
    if !docker {
        return skip_or_fail("no Docker engine (DOCKER_HOST or /var/run/docker.sock)");
    }
    let binary = ptc_binary();
    if !binary.exists() {
        return skip_or_fail(&format!(
            "{} missing: cargo build -p ptc-svc",
            binary.display()
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let replica = format!("ptc-test-{}-{port}", std::process::id());
    let child = Command::new(binary)
        .env("PTC_LISTEN", format!("127.0.0.1:{port}"))
        .env("PTC_REPLICA_ID", &replica)
        .env("LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let svc = PtcSvc {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(svc);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("ptc-svc did not start listening");
}

struct Harness {
    fake: FakeBedrock,
    service: app::Running,
    http: reqwest::Client,
    _ptc: PtcSvc,
}

async fn start() -> Option<Harness> {
    let ptc = start_ptc().await?;
    let fake = FakeBedrock::start().await.unwrap();
    let env: HashMap<&str, &str> = HashMap::from([
        ("GATEWAY_INTERNAL_SECRET", SECRET),
        ("TRANSLATOR_LISTEN", "127.0.0.1:0"),
        ("LOG_FORMAT", "text"),
        ("KEY_STORE", "memory"),
        ("PTC_ENDPOINT", ptc.endpoint.as_str()),
    ]);
    let config = Config::from_source(&env).unwrap();
    let mut settings = BedrockSettings::new("us-east-1".to_string());
    settings.endpoint_url = Some(fake.url());
    let client = bedrock::connect_with_credentials(&settings, Credentials::for_tests()).unwrap();
    let service = app::spawn(config, client).await.unwrap();
    Some(Harness {
        fake,
        service,
        http: reqwest::Client::new(),
        _ptc: ptc,
    })
}

impl Harness {
    /// Sends a round; streaming rounds are folded back into the message they describe.
    async fn round(&self, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/v1/messages", self.service.url()))
            .header("x-gw-internal-secret", SECRET)
            .header(
                "anthropic-beta",
                format!("fine-grained-tool-streaming-2025-05-14,{BETA}"),
            )
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        if body["stream"] == true && status == 200 {
            return (status, fold_sse(&text));
        }
        (
            status,
            serde_json::from_str(&text).unwrap_or(json!({"raw": text})),
        )
    }
}

/// Rebuilds the message from SSE events (start blocks, deltas, message_delta).
fn fold_sse(body: &str) -> Value {
    let mut message = json!({});
    let mut partial: HashMap<u64, String> = HashMap::new();
    for chunk in body.split("\n\n").filter(|c| !c.trim().is_empty()) {
        let data: Value = chunk
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .unwrap();
        let index = data["index"].as_u64().unwrap_or(0);
        match data["type"].as_str().unwrap() {
            "message_start" => message = data["message"].clone(),
            "content_block_start" => message["content"]
                .as_array_mut()
                .unwrap()
                .push(data["content_block"].clone()),
            "content_block_delta" => {
                let block = &mut message["content"][index as usize];
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        block["text"] = json!(format!(
                            "{}{}",
                            block["text"].as_str().unwrap(),
                            delta["text"].as_str().unwrap()
                        ))
                    }
                    "input_json_delta" => partial
                        .entry(index)
                        .or_default()
                        .push_str(delta["partial_json"].as_str().unwrap()),
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(json) = partial.remove(&index) {
                    message["content"][index as usize]["input"] =
                        serde_json::from_str(&json).unwrap();
                }
            }
            "message_delta" => {
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                message["container"] = data["delta"]["container"].clone();
                message["usage"] = data["usage"].clone();
            }
            "error" => panic!("stream error: {data}"),
            _ => {}
        }
    }
    message
}

fn tools() -> Value {
    json!([
        {"type": "code_execution_20250825", "name": "code_execution"},
        {"name": "get_item", "description": "Reads one item by id.",
         "input_schema": {"type": "object", "properties": {"item_id": {"type": "string"}}, "required": ["item_id"]},
         "allowed_callers": ["code_execution_20250825"]},
        {"name": "weather", "description": "Weather now.", "input_schema": {"type": "object"}}
    ])
}

const CODE: &str = r#"one = await get_item(item_id="a")
print("one=" + one)
open("/workspace/note.txt", "w").write("kept")
rs = await asyncio.gather(get_item(item_id="b"), get_item(item_id="c"), get_item(item_id="d"), return_exceptions=True)
print("batch=" + json.dumps([("E:" + str(r)) if isinstance(r, ToolError) else r for r in rs]))
raise ValueError("boom")
"#;

fn code_turn(id: &str, code: &str) -> Scenario {
    Scenario::with_content(vec![
        ContentBlock::Text {
            text: "Let me run code.".into(),
        },
        ContentBlock::ToolUse {
            id: Some(id.into()),
            name: "execute_code".into(),
            input: json!({"code": code}),
        },
    ])
}

fn final_turn(text: &str) -> Scenario {
    Scenario {
        on_tool_result: true,
        ..Scenario::text(text)
    }
}

fn sandbox_calls(message: &Value) -> Vec<Value> {
    message["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .cloned()
        .collect()
}

/// The last tool_result the fake Bedrock received for `id`.
fn code_result_seen(fake: &FakeBedrock, id: &str) -> Value {
    fake.requests()
        .iter()
        .rev()
        .flat_map(|r| r.body["messages"].as_array().cloned().unwrap_or_default())
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .find(|b| b["type"] == "tool_result" && b["tool_use_id"] == id)
        .unwrap_or_else(|| panic!("no tool_result for {id} reached Bedrock"))
}

async fn conversation(stream: bool) {
    let Some(h) = start().await else { return };
    h.fake.enqueue(code_turn("toolu_bdrk_01Code", CODE));
    let mut messages = vec![json!({"role": "user", "content": "Sum the items."})];
    let request = |messages: &Vec<Value>, container: Option<&Value>| {
        let mut r = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": stream,
            "tools": tools(), "messages": messages});
        if let Some(c) = container {
            r["container"] = c.clone();
        }
        r
    };

    // Round 1: the model calls the code tool; the code pauses on one call (shape B).
    let (status, b) = h.round(&request(&messages, None)).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["stop_reason"], "tool_use");
    let kinds: Vec<&str> = b["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["text", "server_tool_use", "tool_use"], "{b}");
    assert_eq!(b["content"][1]["id"], "srvtoolu_bdrk_01Code");
    assert_eq!(b["content"][1]["name"], "code_execution");
    let calls = sandbox_calls(&b);
    assert_eq!(calls[0]["name"], "get_item");
    assert_eq!(calls[0]["input"], json!({"item_id": "a"}));
    assert_eq!(
        calls[0]["caller"],
        json!({"type": "code_execution_20250825", "tool_id": "srvtoolu_bdrk_01Code"})
    );
    assert!(calls[0]["id"].as_str().unwrap().starts_with("toolu_ptc_"));
    let container = b["container"]["id"].clone();
    assert!(container.as_str().unwrap().starts_with("container_"), "{b}");
    let fake_calls = h.fake.requests().len();

    // Round 2: answer it; the code pauses on a three-call batch, no model call (shape C).
    messages.push(json!({"role": "assistant", "content": b["content"]}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": calls[0]["id"], "content": "A"}]}));
    let (status, c) = h.round(&request(&messages, Some(&container))).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        h.fake.requests().len(),
        fake_calls,
        "shape C calls no model"
    );
    let batch = sandbox_calls(&c);
    assert_eq!(batch.len(), 3, "{c}");
    assert_eq!(c["content"].as_array().unwrap().len(), 3);
    assert_eq!(c["usage"]["input_tokens"], 0);
    let items: Vec<&Value> = batch.iter().map(|x| &x["input"]["item_id"]).collect();
    assert_eq!(items, [&json!("b"), &json!("c"), &json!("d")]);

    // Round 3: results in reverse order, the middle one an error with list content; the code
    // raises, the model is told and answers (shape D).
    h.fake.enqueue(final_turn("The items are B and D."));
    messages.push(json!({"role": "assistant", "content": c["content"]}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": batch[2]["id"], "content": [{"type": "text", "text": "D"}]},
        {"type": "tool_result", "tool_use_id": batch[1]["id"], "is_error": true,
         "content": [{"type": "text", "text": "no such"}, {"type": "text", "text": "item"}]},
        {"type": "tool_result", "tool_use_id": batch[0]["id"], "content": "B"}]}));
    let (status, d) = h.round(&request(&messages, Some(&container))).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["stop_reason"], "end_turn", "{d}");
    assert_eq!(d["content"][0]["type"], "code_execution_tool_result");
    let result = &d["content"][0]["content"];
    assert_eq!(result["return_code"], 1, "{d}");
    let stdout = result["stdout"].as_str().unwrap();
    assert!(stdout.contains("one=A"), "{stdout}");
    assert!(
        stdout.contains(r#"batch=["B", "E:no such\nitem", "D"]"#),
        "{stdout}"
    );
    assert!(
        result["stderr"]
            .as_str()
            .unwrap()
            .contains("ValueError: boom")
    );
    assert_eq!(d["content"][1]["text"], "The items are B and D.");
    assert_eq!(d["container"]["id"], container);
    let seen = code_result_seen(&h.fake, "toolu_bdrk_01Code");
    assert_eq!(seen["is_error"], true, "{seen}");
    let report: Value = serde_json::from_str(
        seen["content"]
            .as_str()
            .or_else(|| seen["content"][0]["text"].as_str())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(report["return_code"], 1);
    assert!(report["stdout"].as_str().unwrap().contains("one=A"));

    // A retried round 3 gets the stored response; results are not delivered twice.
    if !stream {
        let (status, again) = h.round(&request(&messages, Some(&container))).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again, d);
    }

    // Reuse: a new task naming the container sees the file, not the variables.
    h.fake.enqueue(code_turn(
        "toolu_bdrk_02Code",
        "print(open('/workspace/note.txt').read(), 'one' in dir())",
    ));
    h.fake.enqueue(final_turn("It says kept."));
    let fresh = vec![json!({"role": "user", "content": "Read the note."})];
    let (status, r) = h
        .round(&request(&fresh, Some(&json!({"id": container}))))
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["container"]["id"], container, "{r}");
    assert_eq!(r["content"][2]["content"]["stdout"], "kept False\n", "{r}");
    assert_eq!(r["stop_reason"], "end_turn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_pauses_batches_raises_and_reuses_the_container() {
    conversation(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_rounds_carry_the_same_blocks() {
    conversation(true).await;
}

#[tokio::test]
async fn continuation_without_container_and_disabled_gateway_are_400() {
    let Some(h) = start().await else { return };
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "tools": tools(), "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_ptc_0123456789abcdef01234567", "name": "get_item", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_ptc_0123456789abcdef01234567", "content": "x"}]}]});
    let (status, e) = h.round(&body).await;
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("container is required")
    );
    let mut foreign = body.clone();
    foreign["container"] = json!("container_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    let (status, e) = h.round(&foreign).await;
    assert_eq!(status, 404, "{e}");
    assert_eq!(e["error"]["type"], "not_found_error");
    let health = h
        .http
        .get(format!("{}/health/ptc", h.service.url()))
        .send()
        .await
        .unwrap();
    let code = health.status().as_u16();
    let health: Value = health.json().await.unwrap();
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["status"], "healthy");
}
