//! Programmatic Tool Calling end to end: translator-svc in-process, the fake Bedrock, and the real
//! ptc-svc binary on the Docker engine (`cargo build -p ptc-svc`; image
//! `gateway-ptc-sandbox:latest`). Without an engine or binary the tests skip with a notice, and
//! fail when `CI=true`.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use fake_bedrock::{FakeBedrock, Scenario, StreamErrorSpec};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::ptc::{BETA, SEEN_CODE, code_turn, final_turn, fold_events};
use crate::support::{PtcSvc, Service};

/// translator-svc in-process with its PTC endpoint on a ptc-svc binary of its own.
struct Harness {
    service: Service,
    ptc: PtcSvc,
}

impl std::ops::Deref for Harness {
    type Target = Service;

    fn deref(&self) -> &Service {
        &self.service
    }
}

async fn start() -> Option<Harness> {
    start_with(&[], &[]).await
}

/// With extra translator-svc and ptc-svc settings.
async fn start_with(translator: &[(&str, &str)], ptc_env: &[(&str, &str)]) -> Option<Harness> {
    let ptc = PtcSvc::start(ptc_env).await?;
    let mut env = vec![("PTC_ENDPOINT", ptc.endpoint.as_str())];
    env.extend_from_slice(translator);
    let service = Service::start(&env).await;
    Some(Harness { service, ptc })
}

impl Harness {
    /// A `/v1/messages` request with the PTC beta.
    fn post_round(&self, body: &Value) -> reqwest::RequestBuilder {
        self.post("/v1/messages", body)
            .header("anthropic-beta", BETA)
    }

    /// Sends a round; streaming rounds are folded back into the message they describe.
    async fn round(&self, body: &Value) -> (u16, Value) {
        let response = self
            .post("/v1/messages", body)
            .header(
                "anthropic-beta",
                format!("fine-grained-tool-streaming-2025-05-14,{BETA}"),
            )
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

    /// Sends a streaming round and reads its events as they arrive.
    async fn stream(&self, body: &Value) -> (u16, Vec<Received>) {
        let response = self.post_round(body).send().await.unwrap();
        let status = response.status().as_u16();
        let mut events = Vec::new();
        let mut buffer = String::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let event = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("event: "))
                    .unwrap();
                let data = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                events.push(Received {
                    at: Instant::now(),
                    event: event.to_string(),
                    data: serde_json::from_str(data).unwrap(),
                });
            }
        }
        (status, events)
    }
}

/// One SSE event as the client received it, with its arrival time.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    event: String,
    data: Value,
}

/// Event names, pings left out, block events tagged with their block type, runs of deltas as
/// one (the model's input arrives in fragments).
fn sequence(events: &[Received]) -> Vec<String> {
    let mut kinds: HashMap<u64, String> = HashMap::new();
    let mut names: Vec<String> = events
        .iter()
        .filter(|e| e.event != "ping")
        .map(|e| {
            let index = e.data["index"].as_u64().unwrap_or(0);
            match e.event.as_str() {
                "content_block_start" => {
                    let kind = e.data["content_block"]["type"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    kinds.insert(index, kind.clone());
                    format!("start:{kind}")
                }
                "content_block_delta" => format!("delta:{}", kinds[&index]),
                "content_block_stop" => format!("stop:{}", kinds[&index]),
                other => other.to_string(),
            }
        })
        .collect();
    names.dedup_by(|a, b| a == b && a.starts_with("delta:"));
    names
}

fn sse_text(events: &[Received]) -> String {
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {}\n\n", e.event, e.data))
        .collect()
}

/// Rebuilds the message from an SSE body.
fn fold_sse(body: &str) -> Value {
    let events: Vec<Value> = body
        .split("\n\n")
        .filter(|c| !c.trim().is_empty())
        .map(|chunk| {
            let data = chunk
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap();
            serde_json::from_str(data).unwrap()
        })
        .collect();
    fold_events(&events)
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

    // Round 1: the model calls the code tool; the code pauses on one call (shape B).
    let (status, b) = h.round(&round_body(&messages, None, stream)).await;
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
    let (status, c) = h
        .round(&round_body(&messages, Some(&container), stream))
        .await;
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
    let (status, d) = h
        .round(&round_body(&messages, Some(&container), stream))
        .await;
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
        let (status, again) = h
            .round(&round_body(&messages, Some(&container), stream))
            .await;
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
        .round(&round_body(&fresh, Some(&json!({"id": container})), stream))
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
    let health = h.http.get(h.url("/health/ptc")).send().await.unwrap();
    let code = health.status().as_u16();
    let health: Value = health.json().await.unwrap();
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["status"], "healthy");
}

/// A round of a conversation with the code tool, continuing in `container` when given.
fn round_body(messages: &[Value], container: Option<&Value>, stream: bool) -> Value {
    let mut r = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": stream,
        "tools": tools(), "messages": messages});
    if let Some(c) = container {
        r["container"] = c.clone();
    }
    r
}

/// Section 7: the round is streamed live. The model's blocks arrive before the code finishes,
/// pings keep the connection alive while the code sleeps (and between the model calls), and the
/// one message ends with the round's sums.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_round_is_live_and_pings_while_code_runs() {
    let Some(h) = start_with(&[("SSE_PING_INTERVAL_SECS", "0.25")], &[]).await else {
        return;
    };
    h.fake.enqueue(code_turn(
        "toolu_bdrk_01Sleep",
        "import time\ntime.sleep(1.5)\nprint('slept')",
    ));
    h.fake.enqueue(final_turn("It slept."));
    let messages = [json!({"role": "user", "content": "Sleep a bit."})];
    let (status, events) = h.stream(&round_body(&messages, None, true)).await;
    assert_eq!(status, 200);
    let text = sse_text(&events);
    assert_eq!(
        sequence(&events),
        [
            "message_start",
            "start:text",
            "delta:text",
            "stop:text",
            "start:server_tool_use",
            "delta:server_tool_use",
            "stop:server_tool_use",
            "start:code_execution_tool_result",
            "stop:code_execution_tool_result",
            "start:text",
            "delta:text",
            "stop:text",
            "message_delta",
            "message_stop",
        ],
        "{text}"
    );
    assert_eq!(events[1].event, "ping", "a ping right after message_start");
    let position = |pred: &dyn Fn(&Received) -> bool| events.iter().position(pred).unwrap();
    let code_start = position(&|e| e.data["content_block"]["type"] == "server_tool_use");
    let code_stop = code_start
        + events[code_start..]
            .iter()
            .position(|e| e.event == "content_block_stop")
            .unwrap();
    let result = position(&|e| e.data["content_block"]["type"] == "code_execution_tool_result");
    // Live: the code tool call reached the client well before the code finished.
    let waited = events[result].at - events[code_stop].at;
    assert!(waited >= Duration::from_millis(1200), "{waited:?}\n{text}");
    let pings = events[code_stop..result]
        .iter()
        .filter(|e| e.event == "ping")
        .count();
    assert!(pings >= 3, "{pings} pings while the code ran\n{text}");
    // No silence longer than about one interval anywhere in the stream.
    let longest = events.windows(2).map(|w| w[1].at - w[0].at).max().unwrap();
    assert!(longest < Duration::from_millis(700), "{longest:?}\n{text}");
    // The blocks as section 7 describes them, indices contiguous.
    let indices: Vec<u64> = events
        .iter()
        .filter(|e| e.event == "content_block_start")
        .map(|e| e.data["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, [0, 1, 2, 3]);
    assert_eq!(
        events[code_start].data["content_block"],
        json!({"type": "server_tool_use", "id": "srvtoolu_bdrk_01Sleep", "name": "code_execution", "input": {}})
    );
    assert_eq!(
        events[result].data["content_block"]["content"]["stdout"],
        "slept\n"
    );
    let start = &events[0].data["message"];
    assert_eq!(
        start["container"],
        Value::Null,
        "no session before code ran"
    );
    let delta = events.iter().find(|e| e.event == "message_delta").unwrap();
    assert_eq!(delta.data["delta"]["stop_reason"], "end_turn");
    let container = &delta.data["delta"]["container"];
    assert!(container["id"].as_str().unwrap().starts_with("container_"));
    assert!(container["expires_at"].as_str().unwrap().ends_with('Z'));
    // The round's sums: two model calls, both streamed from Bedrock.
    let calls: Vec<_> = h.fake.requests();
    assert_eq!(calls.len(), 2);
    assert!(
        calls.iter().all(|r| r.operation.is_stream()),
        "inner calls are streamed"
    );
    let usage = &delta.data["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["output_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert_eq!(fold_sse(&text)["content"][3]["text"], "It slept.");
}

/// Section 7/10: a continuation commits right after validation, so a failure after that (here
/// the model's stream breaks off) is an `error` event that ends the stream, not an HTTP error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_after_commit_is_an_error_event() {
    let Some(h) = start().await else { return };
    h.fake.enqueue(code_turn(
        "toolu_bdrk_01Ask",
        "print(await get_item(item_id='a'))",
    ));
    let mut messages = vec![json!({"role": "user", "content": "Read a."})];
    let (status, events) = h.stream(&round_body(&messages, None, true)).await;
    assert_eq!(status, 200);
    let b = fold_sse(&sse_text(&events));
    let call = sandbox_calls(&b)[0].clone();
    let container = b["container"]["id"].clone();

    // The model's next turn breaks off mid-stream after some text.
    h.fake.enqueue(Scenario {
        on_tool_result: true,
        stream_error: Some(StreamErrorSpec {
            after_events: 3,
            kind: "modelStreamErrorException".into(),
            message: Some("the model stopped".into()),
            original_status_code: Some(529),
            original_message: None,
        }),
        ..Scenario::text("This answer will not finish.")
    });
    messages.push(json!({"role": "assistant", "content": b["content"]}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call["id"], "content": "A"}]}));
    let (status, events) = h
        .stream(&round_body(&messages, Some(&container), true))
        .await;
    assert_eq!(status, 200, "committed before the model call");
    let text = sse_text(&events);
    let seq = sequence(&events);
    assert_eq!(
        seq.first().map(String::as_str),
        Some("message_start"),
        "{text}"
    );
    assert_eq!(seq[1], "start:code_execution_tool_result", "{text}");
    assert_eq!(seq.last().map(String::as_str), Some("error"), "{text}");
    assert!(
        !seq.iter()
            .any(|e| e == "message_stop" || e == "message_delta"),
        "{text}"
    );
    let error = &events.last().unwrap().data;
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "overloaded_error", "{error}");
    assert!(error["request_id"].as_str().unwrap().starts_with("req_"));
    assert_eq!(
        events[0].data["message"]["container"]["id"], container,
        "the continuation's message_start names its container"
    );

    // Before the commit the same kind of failure is a plain HTTP error with its status.
    h.fake
        .enqueue(Scenario::error("ValidationException", "bad request"));
    let fresh = [json!({"role": "user", "content": "Hello."})];
    let (status, events) = h.stream(&round_body(&fresh, None, true)).await;
    assert_eq!(status, 400, "{events:?}");
}

/// Section 5.5 E / 11: a round that used up `PTC_ROUND_BUDGET_S` answers `pause_turn` after the
/// code result instead of calling the model again; sending the conversation back continues it.
async fn budget_round(stream: bool) {
    let Some(h) = start_with(&[("PTC_ROUND_BUDGET_S", "1")], &[]).await else {
        return;
    };
    h.fake.enqueue(code_turn(
        "toolu_bdrk_01Slow",
        "import time\ntime.sleep(1.3)\nprint('done')",
    ));
    h.fake.enqueue(final_turn("Finished after the pause."));
    let mut messages = vec![json!({"role": "user", "content": "Work slowly."})];
    let (status, e) = h.round(&round_body(&messages, None, stream)).await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["stop_reason"], "pause_turn", "{e}");
    let kinds: Vec<&str> = e["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["text", "server_tool_use", "code_execution_tool_result"],
        "{e}"
    );
    assert_eq!(e["content"][2]["content"]["stdout"], "done\n");
    assert_eq!(
        h.fake.requests().len(),
        1,
        "the budget stopped the second model call"
    );
    assert!(e["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let container = e["container"]["id"].clone();

    // The client sends the conversation back (no new user message): the model continues.
    messages.push(json!({"role": "assistant", "content": e["content"]}));
    let (status, d) = h
        .round(&round_body(&messages, Some(&container), stream))
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["stop_reason"], "end_turn", "{d}");
    assert_eq!(d["content"][0]["text"], "Finished after the pause.");
    let seen = code_result_seen(&h.fake, "toolu_bdrk_01Slow");
    assert_eq!(seen["is_error"], false, "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_budget_ends_with_pause_turn() {
    budget_round(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_budget_ends_with_pause_turn_streaming() {
    budget_round(true).await;
}

/// `docker inspect` of the container serving `container` (by the label ptc-svc sets).
fn inspect(container: &str) -> Value {
    let ids = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=ptc.container={container}"),
        ])
        .output()
        .unwrap();
    let id = String::from_utf8(ids.stdout).unwrap().trim().to_string();
    assert!(!id.is_empty(), "no running container for {container}");
    let out = Command::new("docker")
        .args(["inspect", &id])
        .output()
        .unwrap();
    let mut all: Value = serde_json::from_slice(&out.stdout).unwrap();
    all[0].take()
}

/// Section 14: `CreateSession` carries translator-svc's limits. The container gets the
/// resources (tighter than ptc-svc's defaults), and the execution time and output limits the
/// guide promises are the ones the session enforces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_limits_reach_the_container() {
    let Some(h) = start_with(
        &[
            ("PTC_MEMORY", "128MiB"),
            ("PTC_CPUS", "0.25"),
            ("PTC_PIDS", "32"),
            ("PTC_EXECUTION_TIMEOUT_S", "2"),
            ("PTC_MAX_STDOUT_BYTES", "100"),
        ],
        &[],
    )
    .await
    else {
        return;
    };
    h.fake.enqueue(code_turn(
        "toolu_bdrk_01Big",
        "print('x' * 300)\nprint(await get_item(item_id='a'))",
    ));
    let mut messages = vec![json!({"role": "user", "content": "Print a lot."})];
    let (status, b) = h.round(&round_body(&messages, None, false)).await;
    assert_eq!(status, 200, "{b}");
    let container = b["container"]["id"].clone();
    let host = inspect(container.as_str().unwrap())["HostConfig"].take();
    assert_eq!(host["Memory"], 128 << 20, "{host}");
    assert_eq!(host["MemorySwap"], 128 << 20);
    assert_eq!(host["NanoCpus"], 250_000_000);
    assert_eq!(host["PidsLimit"], 32);
    assert_eq!(host["NetworkMode"], "none");

    h.fake.enqueue(final_turn("Lots of x."));
    let call = sandbox_calls(&b)[0].clone();
    messages.push(json!({"role": "assistant", "content": b["content"]}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call["id"], "content": "A"}]}));
    let (status, d) = h
        .round(&round_body(&messages, Some(&container), false))
        .await;
    assert_eq!(status, 200, "{d}");
    let stdout = d["content"][0]["content"]["stdout"].as_str().unwrap();
    assert!(stdout.starts_with(&"x".repeat(100)), "{stdout}");
    assert!(!stdout.contains(&"x".repeat(101)), "{stdout}");
    assert!(stdout.contains("truncated"), "{stdout}");

    // ptc-svc's own limit is 60 s; the session's is the 2 s this gateway renders in the guide.
    h.fake.enqueue(code_turn(
        "toolu_bdrk_02Slow",
        "import time\ntime.sleep(10)",
    ));
    h.fake.enqueue(final_turn("Too slow."));
    let fresh = vec![json!({"role": "user", "content": "Sleep."})];
    let started = Instant::now();
    let (status, r) = h.round(&round_body(&fresh, None, false)).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["content"][2]["content"],
        json!({"type": "code_execution_tool_result_error", "error_code": "execution_time_exceeded"}),
        "{r}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

/// Section 1 / 4.3: the client turned PTC off mid-conversation (no code execution tool, no
/// beta). The PTC history is still rebuilt into ordinary tool turns, the code tool is declared
/// for them, and Bedrock (the fake validates Converse pairing and toolConfig) accepts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_rebuilt_when_ptc_is_not_active() {
    let Some(h) = start().await else { return };
    let history = json!([
        {"role": "user", "content": "Sum the items."},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me run code."},
            {"type": "server_tool_use", "id": "srvtoolu_bdrk_01Code", "name": "code_execution",
             "input": {"code": "print(await get_item(item_id='a'))"}},
            {"type": "tool_use", "id": "toolu_ptc_0123456789abcdef01234567", "name": "get_item",
             "input": {"item_id": "a"},
             "caller": {"type": "code_execution_20250825", "tool_id": "srvtoolu_bdrk_01Code"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_ptc_0123456789abcdef01234567", "content": "A"}]},
        {"role": "assistant", "content": [
            {"type": "code_execution_tool_result", "tool_use_id": "srvtoolu_bdrk_01Code",
             "content": {"type": "code_execution_result", "stdout": "A\n", "stderr": "", "return_code": 0, "content": []}},
            {"type": "text", "text": "The item is A."}]},
        {"role": "user", "content": "Thanks. And without code now?"}
    ]);
    for model in ["claude-sonnet-4-5", "qwen.qwen3-coder-480b-a35b-v1:0"] {
        h.fake.clear_requests();
        h.fake.enqueue(final_turn("Sure."));
        let body = json!({"model": model, "max_tokens": 256, "messages": history});
        let response = h.post("/v1/messages", &body).send().await.unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{model}: {answer}");
        assert_eq!(answer["content"][0]["text"], "Sure.", "{model}");
        let sent = &h.fake.requests()[0].body;
        let text = sent.to_string();
        assert!(
            !text.contains("toolu_ptc_"),
            "{model}: sandbox calls are not model turns: {text}"
        );
        assert!(!text.contains("server_tool_use"), "{model}: {text}");
        assert!(
            text.contains("execute_code"),
            "{model}: the code tool is declared: {text}"
        );
        let seen = code_result_seen_in(sent, "toolu_bdrk_01Code");
        assert!(
            seen.to_string().contains(r#"\"stdout\":\"A\\n\""#),
            "{model}: {seen}"
        );
    }
}

/// The tool result for `id` in one recorded body, Invoke (`tool_result`) or Converse
/// (`toolResult`) form.
fn code_result_seen_in(body: &Value, id: &str) -> Value {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .find(|b| b["tool_use_id"] == id || b["toolResult"]["toolUseId"] == id)
        .unwrap_or_else(|| panic!("no tool result for {id} in {body}"))
}

/// A client that goes away mid-round stops the work: the model stream is cancelled upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_cancels_the_model_stream() {
    let Some(h) = start().await else { return };
    h.fake.enqueue(Scenario {
        event_delay_ms: 400,
        ..Scenario::text("one two three four five six seven eight nine ten eleven twelve")
    });
    let body = round_body(
        &[json!({"role": "user", "content": "Count slowly."})],
        None,
        true,
    );
    let response = h.post_round(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut chunks = response.bytes_stream();
    let first = chunks.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    assert_eq!(h.fake.active_streams(), 1);
    drop(chunks);
    let deadline = Instant::now() + Duration::from_secs(3);
    while h.fake.active_streams() > 0 {
        assert!(
            Instant::now() < deadline,
            "the Bedrock stream outlived the client"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Section 10: ptc-svc lost while the code runs, after the commit: an `overloaded_error` event
/// ends the stream (before the commit it would be a 529).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_lost_mid_round_is_an_error_event() {
    let Some(h) = start().await else { return };
    h.fake.enqueue(code_turn(
        "toolu_bdrk_01Long",
        "import time\ntime.sleep(5)\nprint('never')",
    ));
    let body = round_body(
        &[json!({"role": "user", "content": "Run long."})],
        None,
        true,
    );
    let response = h.post_round(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut chunks = response.bytes_stream();
    let mut text = String::new();
    // Wait until the code call is out (the code is running), then kill ptc-svc outright.
    while !text.contains("server_tool_use") || !text.ends_with("\n\n") {
        text.push_str(std::str::from_utf8(&chunks.next().await.unwrap().unwrap()).unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = h.ptc.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    while let Some(chunk) = chunks.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    // The killed replica cannot remove its container: do it here, by its label.
    let ids = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=ptc.replica={}", h.ptc.replica),
        ])
        .output()
        .unwrap();
    for id in String::from_utf8(ids.stdout).unwrap().split_whitespace() {
        let _ = Command::new("docker").args(["rm", "-f", id]).output();
    }
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: error\n"), "{text}");
    assert!(last.contains(r#""type":"overloaded_error""#), "{text}");
    assert!(!text.contains("message_stop"), "{text}");
    assert!(!text.contains("code_execution_tool_result"), "{text}");
}

/// Round 1 (JSON): the code pauses on one call. Returns the messages answering it and the
/// container.
async fn paused_on_one_call(h: &Harness, code_id: &str) -> (Vec<Value>, Value) {
    h.fake.enqueue(code_turn(code_id, SEEN_CODE));
    let mut messages = vec![json!({"role": "user", "content": "Read a."})];
    let (status, b) = h.round(&round_body(&messages, None, false)).await;
    assert_eq!(status, 200, "{b}");
    let call = sandbox_calls(&b)[0].clone();
    messages.push(json!({"role": "assistant", "content": b["content"]}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call["id"], "content": "A"}]}));
    (messages, b["container"]["id"].clone())
}

/// What a new task in the container reads back from `seen.txt`.
async fn seen_by_the_code(h: &Harness, container: &Value) -> String {
    h.fake.enqueue(code_turn(
        "toolu_bdrk_09Read",
        "print(open('/workspace/seen.txt').read(), end='')",
    ));
    h.fake.enqueue(final_turn("Read."));
    let request = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "tools": tools(),
        "container": container, "messages": [{"role": "user", "content": "Show seen."}]});
    let (status, r) = h.round(&request).await;
    assert_eq!(status, 200, "{r}");
    r["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "code_execution_tool_result")
        .map(|b| b["content"]["stdout"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no code result in {r}"))
}

/// Sections 5.6 and 10: the client drops a streaming continuation while the code runs. The round
/// still finishes (code, then the model) and is stored; the identical retry, streaming or not,
/// gets that response; the results reached the code once and the model was called once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_streaming_continuation_is_finished_and_replayed() {
    let Some(h) = start().await else { return };
    let (messages, container) = paused_on_one_call(&h, "toolu_bdrk_01Seen").await;
    h.fake.enqueue(final_turn("It was A."));
    let model_calls = h.fake.requests().len();
    let body = round_body(&messages, Some(&container), true);
    let response = h.post_round(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut chunks = response.bytes_stream();
    let first = chunks.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    // Committed right after validation: the results are delivered, the code sleeps. Leave.
    drop(chunks);

    let (status, events) = h.stream(&body).await;
    assert_eq!(status, 200);
    let text = sse_text(&events);
    let replayed = fold_sse(&text);
    assert_eq!(replayed["stop_reason"], "end_turn", "{text}");
    let kinds: Vec<&str> = replayed["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["code_execution_tool_result", "text"], "{text}");
    assert_eq!(replayed["content"][0]["content"]["stdout"], "got A\n");
    assert_eq!(replayed["content"][1]["text"], "It was A.");
    assert_eq!(replayed["container"]["id"], container);
    assert!(replayed["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        h.fake.requests().len(),
        model_calls + 1,
        "the dropped round called the model once; the retry replayed it"
    );

    // A JSON retry gets the same stored response, id included; a replay charges no tokens
    // (ptc.md 16: the round was charged when it was served), header and trailer both 0.
    let json_body = round_body(&messages, Some(&container), false);
    let response = h.post_round(&json_body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-gw-usage-tokens"], "0");
    let again: Value = response.json().await.unwrap();
    assert_eq!(again["id"], replayed["id"]);
    assert_eq!(again["content"], replayed["content"]);
    assert_eq!(again["usage"], replayed["usage"]);
    let (text, trailers) = h
        .stream_with_trailers(&body, &[("anthropic-beta", BETA)])
        .await;
    assert_eq!(fold_sse(&text)["content"], replayed["content"]);
    assert_eq!(trailers["x-gw-usage-tokens"], "0", "{text}");
    assert_eq!(seen_by_the_code(&h, &container).await, "A\n");
}

/// Section 5.6: the model call after the code fails, so the round has no response to store.
/// The identical retry takes the round over from the delivery's outcome: the code is not run
/// again, the model is called again, and the retry gets a complete response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_continuation_is_finished_by_its_retry() {
    let Some(h) = start().await else { return };
    let (messages, container) = paused_on_one_call(&h, "toolu_bdrk_01Fail").await;
    h.fake.enqueue(Scenario {
        on_tool_result: true,
        ..Scenario::error("ValidationException", "the model refused")
    });
    let body = round_body(&messages, Some(&container), false);
    let (status, failed) = h.round(&body).await;
    assert_eq!(status, 400, "{failed}");

    h.fake.enqueue(final_turn("Now it was A."));
    let (status, d) = h.round(&body).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["stop_reason"], "end_turn", "{d}");
    assert_eq!(d["content"][0]["type"], "code_execution_tool_result", "{d}");
    assert_eq!(d["content"][0]["content"]["stdout"], "got A\n", "{d}");
    assert_eq!(d["content"][1]["text"], "Now it was A.");
    // Stored now: a third attempt replays it instead of calling the model again.
    let calls = h.fake.requests().len();
    let (status, again) = h.round(&body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, d);
    assert_eq!(h.fake.requests().len(), calls);
    assert_eq!(seen_by_the_code(&h, &container).await, "A\n");
}

/// Section 5.6: a JSON client that times out while the code runs and retries gets the round the
/// first request finished (it waits for it); the results reached the code once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_json_continuation_is_answered_on_retry() {
    let Some(h) = start().await else { return };
    let (messages, container) = paused_on_one_call(&h, "toolu_bdrk_01Slow").await;
    h.fake.enqueue(final_turn("Slowly, A."));
    let body = round_body(&messages, Some(&container), false);
    let timed_out = h
        .post_round(&body)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(timed_out.is_err(), "the first attempt times out");
    let started = Instant::now();
    let (status, d) = h.round(&body).await;
    assert_eq!(status, 200, "{d}");
    assert!(
        started.elapsed() > Duration::from_millis(500),
        "the retry waited for the round still running"
    );
    assert_eq!(d["content"][0]["content"]["stdout"], "got A\n", "{d}");
    assert_eq!(d["content"][1]["text"], "Slowly, A.", "{d}");
    assert_eq!(seen_by_the_code(&h, &container).await, "A\n");
}

/// Section 5.6 with a lease: the translator that delivered the results dies mid-round (here the
/// test delivers them itself with a 1 s lease and then neither renews nor stores anything). The
/// client's identical retry does not wait out the round (up to 590 s) nor get "busy": once the
/// lease runs out it takes the round over from the delivery's outcome and finishes it; the
/// results reached the code once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_whose_translator_died_is_taken_over_by_the_retry() {
    use gateway_proto::ptc::v1::ptc_client::PtcClient;
    use gateway_proto::ptc::v1::{DeliverResultsRequest, GetSessionRequest, ToolResult};
    let Some(h) = start().await else { return };
    let (messages, container) = paused_on_one_call(&h, "toolu_bdrk_01Dead").await;
    let container_id = container.as_str().unwrap().to_string();
    let mut ptc = PtcClient::connect(h.ptc.endpoint.clone()).await.unwrap();
    let session = ptc
        .get_session(GetSessionRequest {
            container_id: container_id.clone(),
            key_id: "anonymous".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let execution = session.execution.unwrap();
    let pending = execution.pending[0].id.clone();
    let mut watch = ptc.clone();
    let dead_owner = tokio::spawn(async move {
        ptc.deliver_results(DeliverResultsRequest {
            container_id,
            key_id: "anonymous".into(),
            execution_id: execution.execution_id,
            results: vec![ToolResult {
                id: pending,
                is_error: false,
                content: "A".into(),
            }],
            round_owner: "crashed-translator:1".into(),
            round_lease_ms: 1_000,
        })
        .await
    });
    // The delivery reached the code (the session runs): the round is the dead owner's.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = watch
            .get_session(GetSessionRequest {
                container_id: container.as_str().unwrap().to_string(),
                key_id: "anonymous".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .state;
        if state != gateway_proto::ptc::v1::SessionState::Paused as i32 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the delivery never reached the code"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    h.fake.enqueue(final_turn("Taken over: A."));
    let body = round_body(&messages, Some(&container), false);
    let started = Instant::now();
    let response = h
        .post_round(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the retry is answered within the lease, not after the whole round");
    assert_eq!(response.status(), 200);
    let d: Value = response.json().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(d["stop_reason"], "end_turn", "{d}");
    assert_eq!(d["content"][0]["content"]["stdout"], "got A\n", "{d}");
    assert_eq!(d["content"][1]["text"], "Taken over: A.", "{d}");
    let delivered = dead_owner.await.unwrap().unwrap().into_inner();
    assert!(delivered.round_claimed && !delivered.replayed);
    assert_eq!(seen_by_the_code(&h, &container).await, "A\n");
}
