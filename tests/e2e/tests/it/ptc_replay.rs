//! PTC retries and accounting through the whole gateway (real Envoy + gate filter, translator-svc,
//! ptc-svc on the Docker engine, the fake Bedrock): a client that drops a streaming continuation
//! while the code runs gets the finished round when it retries, the tool results reach the code
//! once (ptc.md 5.6, 10), and every model call of a round is its own usage record in the store,
//! with the container and execution ids, summing to the round's usage (ptc.md 16).

use std::time::{Duration, Instant};

use e2e::ptc::{after_code, code_call, tool_results_seen};
use e2e::stack::{Stack, StackOptions};
use fake_bedrock::Scenario;
use serde_json::{Value, json};

const MODEL: &str = "claude-sonnet-4-5-20250929";
const BETA: &str = "advanced-tool-use-2025-11-20";
/// Appends what it receives to a file of the session (evidence of how often the results reached
/// the code), then keeps running long enough for the client to leave meanwhile.
const SEEN_CODE: &str = "v = await get_item(item_id='a')\n\
                         open('/workspace/seen.txt', 'a').write(v + '\\n')\n\
                         import time\n\
                         time.sleep(1.5)\n\
                         print('got', v)";
const READ_CODE: &str = "print(open('/workspace/seen.txt').read(), end='')";

fn tools() -> Value {
    json!([
        {"type": "code_execution_20250825", "name": "code_execution"},
        {"name": "get_item", "description": "Reads one item by id.",
         "input_schema": {"type": "object", "properties": {"item_id": {"type": "string"}}},
         "allowed_callers": ["code_execution_20250825"]}
    ])
}

fn request(messages: &[Value], container: Option<&Value>, stream: bool) -> Value {
    let mut body = json!({"model": MODEL, "max_tokens": 1024, "stream": stream,
        "tools": tools(), "messages": messages});
    if let Some(container) = container {
        body["container"] = container.clone();
    }
    body
}

struct Client {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Client {
    async fn send(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/messages", self.url))
            .header("x-api-key", &self.key)
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", BETA)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// A JSON round: status, request id, body.
    async fn round(&self, body: &Value) -> (u16, String, Value) {
        let response = self.send(body).await;
        let status = response.status().as_u16();
        let request_id = request_id(&response);
        (status, request_id, response.json().await.unwrap())
    }

    /// A streaming round read to its end: status, request id, events (name, data).
    async fn stream(&self, body: &Value) -> (u16, String, Vec<(String, Value)>) {
        let response = self.send(body).await;
        let status = response.status().as_u16();
        let request_id = request_id(&response);
        let text = response.text().await.unwrap();
        let events = text
            .split("\n\n")
            .filter(|frame| !frame.trim().is_empty())
            .map(|frame| {
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .unwrap_or_else(|| panic!("no {name} in {frame:?}"))
                        .to_string()
                };
                (
                    field("event: "),
                    serde_json::from_str(&field("data: ")).unwrap(),
                )
            })
            .collect();
        (status, request_id, events)
    }
}

fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Reads a streaming response up to its `message_start` (the commit), then leaves: the client
/// drops the stream while the round goes on.
async fn leave_after_commit(mut response: reqwest::Response) {
    let mut head = String::new();
    while !head.contains("message_start") {
        let chunk = response.chunk().await.unwrap().expect("the first event");
        head.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

/// The message a stream describes (blocks from their starts and deltas, the end's fields).
fn fold(events: &[(String, Value)]) -> Value {
    let mut message = json!({});
    let mut partial: Vec<String> = Vec::new();
    for (name, data) in events {
        match name.as_str() {
            "message_start" => message = data["message"].clone(),
            "content_block_start" => {
                message["content"]
                    .as_array_mut()
                    .unwrap()
                    .push(data["content_block"].clone());
                partial.push(String::new());
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap() as usize;
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        let block = &mut message["content"][index];
                        block["text"] = json!(format!(
                            "{}{}",
                            block["text"].as_str().unwrap(),
                            delta["text"].as_str().unwrap()
                        ));
                    }
                    "input_json_delta" => {
                        partial[index].push_str(delta["partial_json"].as_str().unwrap())
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = data["index"].as_u64().unwrap() as usize;
                if !partial[index].is_empty() {
                    message["content"][index]["input"] =
                        serde_json::from_str(&partial[index]).unwrap();
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

fn block_types(message: &Value) -> Vec<&str> {
    message["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect()
}

/// The key's usage records (from the store) of one request, waiting for `count` of them (the
/// sink writes in the background).
async fn usage_records(
    stack: &Stack,
    http: &reqwest::Client,
    key_id: &str,
    request_id: &str,
    count: usize,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page: Value = http
            .get(format!("{}/admin/v1/keys/{key_id}/requests", stack.url))
            .header("x-api-key", &stack.master_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut records: Vec<Value> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["request_id"] == request_id)
            .cloned()
            .collect();
        if records.len() >= count || Instant::now() > deadline {
            records.sort_by_key(|r| r["ptc_model_call"].as_u64());
            return records;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sum(records: &[Value], field: &str) -> u64 {
    records.iter().map(|r| r[field].as_u64().unwrap()).sum()
}

/// What a dropped-then-retried continuation left: the container, the retry's round, and the
/// request ids of the dropped request and of the retry.
struct Replayed {
    container: Value,
    round: Value,
    dropped_request: String,
    retry_request: String,
}

/// Round 1 (JSON) pauses the code on one call; round 2 answers it as a stream that the client
/// drops right after the commit, while the code sleeps, then retries identically. Checks the
/// retry's round is complete and the model saw the code's outcome once.
async fn drop_and_retry(stack: &Stack, client: &Client) -> Replayed {
    // Round 1 (JSON): the code pauses on one call.
    stack
        .fake
        .enqueue(code_call("toolu_bdrk_01E2eSeen", SEEN_CODE));
    let mut messages = vec![json!({"role": "user", "content": "Read item a."})];
    let (status, _, b) = client.round(&request(&messages, None, false)).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        block_types(&b),
        ["text", "server_tool_use", "tool_use"],
        "{b}"
    );
    let call = b["content"][2].clone();
    let container = b["container"]["id"].clone();
    messages.push(json!({"role": "assistant", "content": b["content"]}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call["id"], "content": "A"}]}));

    // Round 2, streaming: the client leaves right after the commit, while the code sleeps.
    stack.fake.enqueue(after_code("It was A."));
    let continuation = request(&messages, Some(&container), true);
    let response = client.send(&continuation).await;
    assert_eq!(response.status(), 200);
    let dropped_request = request_id(&response);
    leave_after_commit(response).await;

    // The identical retry gets the complete round: the code's outcome, then the model's answer.
    let (status, retry_request, events) = client.stream(&continuation).await;
    assert_eq!(status, 200, "{events:?}");
    assert_eq!(events.first().unwrap().0, "message_start", "{events:?}");
    assert_eq!(events.last().unwrap().0, "message_stop", "{events:?}");
    let d = fold(&events);
    assert_eq!(d["stop_reason"], "end_turn", "{d}");
    assert_eq!(
        block_types(&d),
        ["code_execution_tool_result", "text"],
        "{d}"
    );
    assert_eq!(d["content"][0]["tool_use_id"], "srvtoolu_bdrk_01E2eSeen");
    assert_eq!(d["content"][0]["content"]["stdout"], "got A\n", "{d}");
    assert_eq!(d["content"][0]["content"]["return_code"], 0, "{d}");
    assert_eq!(d["content"][1]["text"], "It was A.", "{d}");
    assert_eq!(d["container"]["id"], container, "{d}");
    // The dropped round called the model once with the code's outcome; the retry replayed it.
    assert_eq!(
        tool_results_seen(&stack.fake, "toolu_bdrk_01E2eSeen").len(),
        1
    );

    Replayed {
        container,
        round: d,
        dropped_request,
        retry_request,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_streaming_continuation_is_finished_and_replayed_and_each_model_call_is_billed() {
    let Some(stack) = Stack::start(StackOptions::default().with_ptc())
        .await
        .expect("start the gateway")
    else {
        return;
    };
    let http = stack.http();
    let (key_id, secret) = stack
        .create_key(json!({"name": "e2e-ptc-replay"}))
        .await
        .expect("create a key");
    let client = Client {
        http: http.clone(),
        url: stack.url.clone(),
        key: secret,
    };

    let Replayed {
        container,
        round: d,
        dropped_request,
        retry_request,
    } = drop_and_retry(&stack, &client).await;

    // Round 3, a new task in the same container, two model calls in one round: the results of
    // round 2 reached the code exactly once.
    stack
        .fake
        .enqueue(code_call("toolu_bdrk_02E2eRead", READ_CODE));
    stack.fake.enqueue(after_code("Read."));
    let fresh = [json!({"role": "user", "content": "What did the code see?"})];
    let (status, read_request, r) = client
        .round(&request(&fresh, Some(&container), false))
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        block_types(&r),
        [
            "text",
            "server_tool_use",
            "code_execution_tool_result",
            "text"
        ],
        "{r}"
    );
    assert_eq!(r["content"][2]["content"]["stdout"], "A\n", "{r}");
    assert!(stack.fake.queued().is_empty());

    // Usage: one record per model call of round 3, with the container and the execution the
    // second call follows, summing to what the response reported.
    let records = usage_records(&stack, &http, &key_id, &read_request, 2).await;
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(records[0]["ptc_model_call"], 1, "{records:#?}");
    assert_eq!(records[1]["ptc_model_call"], 2, "{records:#?}");
    for record in &records {
        assert_eq!(record["container_id"], container, "{record:#}");
        assert_eq!(record["status"], "ok", "{record:#}");
    }
    assert_eq!(records[0]["execution_id"], Value::Null, "{records:#?}");
    assert_eq!(records[1]["execution_id"], "srvtoolu_bdrk_02E2eRead");
    assert_eq!(sum(&records, "input_tokens"), r["usage"]["input_tokens"]);
    assert_eq!(sum(&records, "output_tokens"), r["usage"]["output_tokens"]);
    assert!(sum(&records, "output_tokens") > 0);

    // The dropped round's one model call is billed under its request id, following the code it
    // delivered to; the retry that only replayed it made no model call and has no record.
    let records = usage_records(&stack, &http, &key_id, &dropped_request, 1).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["container_id"], container);
    assert_eq!(records[0]["execution_id"], "srvtoolu_bdrk_01E2eSeen");
    assert_eq!(records[0]["input_tokens"], d["usage"]["input_tokens"]);
    assert_eq!(records[0]["output_tokens"], d["usage"]["output_tokens"]);
    let replays = usage_records(&stack, &http, &key_id, &retry_request, 0).await;
    assert!(replays.is_empty(), "{replays:#?}");
}

/// The same through two translator-svc and two ptc-svc replicas (round robin, no affinity): the
/// dropped stream and its retry land on different translators; the round's state travels with
/// the session in ptc-svc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_continuation_is_replayed_by_another_translator() {
    let options = StackOptions::default()
        .with_ptc()
        .ptc_behind_dns()
        .ptc_replicas(2)
        .translators(2);
    let Some(stack) = Stack::start(options).await.expect("start the gateway") else {
        return;
    };
    let client = Client {
        http: stack.http(),
        url: stack.url.clone(),
        key: stack.master_key.clone(),
    };
    let replayed = drop_and_retry(&stack, &client).await;
    // Envoy's access log names the translator each request went to (the dropped one's line is
    // written when its stream ends, so wait for both).
    let ids = [&replayed.dropped_request, &replayed.retry_request];
    let lines = stack
        .access_log(|lines| {
            ids.iter()
                .all(|id| lines.iter().any(|l| l["request_id"] == id.as_str()))
        })
        .await;
    let served_by = |request_id: &str| -> String {
        lines
            .iter()
            .find(|l| l["request_id"] == request_id)
            .map(|l| l["upstream"].as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("request {request_id} not in Envoy's access log"))
    };
    assert_ne!(
        served_by(&replayed.dropped_request),
        served_by(&replayed.retry_request),
        "round robin put the retry on the other translator"
    );
    assert!(stack.fake.queued().is_empty());
}

/// Tokens charged per response, as the `x-gw-usage-tokens` header/trailer counts them.
fn charged(usage: &Value) -> u64 {
    [
        "input_tokens",
        "cache_creation_input_tokens",
        "output_tokens",
    ]
    .iter()
    .map(|k| usage[*k].as_u64().unwrap_or(0))
    .sum()
}

/// Tokens left in the key's bucket, as the rate limiter reports them on a request that costs
/// nothing (its scripted usage is zero). Only call it with nothing else queued in the fake.
async fn tokens_remaining(stack: &Stack, client: &Client) -> u64 {
    assert!(stack.fake.queued().is_empty());
    stack.fake.enqueue(Scenario {
        usage: Some(fake_bedrock::Usage {
            input_tokens: Some(0),
            output_tokens: Some(0),
            cache_read_input_tokens: Some(0),
            cache_creation_input_tokens: Some(0),
            cache_creation_1h_input_tokens: None,
        }),
        ..Scenario::text("free")
    });
    let body = json!({"model": MODEL, "max_tokens": 16,
        "messages": [{"role": "user", "content": "Nothing."}]});
    let response = client.send(&body).await;
    assert_eq!(response.status(), 200);
    response.headers()["anthropic-ratelimit-tokens-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Polls the bucket until it holds `expected` tokens (Envoy and translator-svc charge in the
/// background); fails with what it holds after 15 s.
async fn wait_for_remaining(stack: &Stack, client: &Client, expected: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let remaining = tokens_remaining(stack, client).await;
        if remaining == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the bucket should hold {expected} tokens, it holds {remaining}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The charging tests' TPM limit.
const TPM: u64 = 100_000;

/// The gateway with ptc-svc and ratelimit-svc, and a client with a key of its own (`name`,
/// limited to `TPM`), its bucket checked full. `None` where the stack skips.
async fn start_limited(name: &str) -> Option<(Stack, Client)> {
    let stack = Stack::start(StackOptions::default().with_ptc().with_ratelimit())
        .await
        .expect("start the gateway")?;
    let (_, key) = stack
        .create_key(json!({"name": name, "tpm": TPM}))
        .await
        .expect("create a key");
    let client = Client {
        http: stack.http(),
        url: stack.url.clone(),
        key,
    };
    assert_eq!(tokens_remaining(&stack, &client).await, TPM);
    Some((stack, client))
}

/// Round 1 (JSON): the code pauses on one call, `code_id`; Envoy charges the round from the usage
/// header. Returns the messages answering the call, the container and the tokens charged.
async fn paused_and_charged(
    stack: &Stack,
    client: &Client,
    code_id: &str,
) -> (Vec<Value>, Value, u64) {
    stack.fake.enqueue(code_call(code_id, SEEN_CODE));
    let mut messages = vec![json!({"role": "user", "content": "Read item a."})];
    let (status, _, b) = client.round(&request(&messages, None, false)).await;
    assert_eq!(status, 200, "{b}");
    let first = charged(&b["usage"]);
    let call = b["content"][2].clone();
    let container = b["container"]["id"].clone();
    messages.push(json!({"role": "assistant", "content": b["content"]}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call["id"], "content": "A"}]}));
    wait_for_remaining(stack, client, TPM - first, "after round 1").await;
    (messages, container, first)
}

/// Waits (20 s at most) until the fake has served every scripted model call: a round its client
/// left goes on without it.
async fn model_calls_done(stack: &Stack, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stack.fake.queued().is_empty() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// ptc.md 16 through Envoy and ratelimit-svc: a continuation round its streaming client left
/// finishes and charges its tokens to the key's TPM limit (Envoy saw no usage trailer, so
/// translator-svc charges ratelimit-svc directly); the retry that gets the stored round charges
/// nothing (its trailer says 0), so the round counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_continuation_is_charged_once_and_its_replay_is_free() {
    let Some((stack, client)) = start_limited("e2e-ptc-charge").await else {
        return;
    };

    let (messages, container, first) =
        paused_and_charged(&stack, &client, "toolu_bdrk_01E2eCharge").await;
    assert!(first > 0, "round 1 charged nothing");

    // Round 2, streaming, left right after the commit while the code sleeps. Its model call
    // costs 700 input and 40 output tokens.
    let second = 740;
    stack.fake.enqueue(Scenario {
        usage: Some(fake_bedrock::Usage {
            input_tokens: Some(700),
            output_tokens: Some(40),
            cache_read_input_tokens: Some(0),
            cache_creation_input_tokens: Some(0),
            cache_creation_1h_input_tokens: None,
        }),
        ..after_code("It was A.")
    });
    let continuation = request(&messages, Some(&container), true);
    let response = client.send(&continuation).await;
    assert_eq!(response.status(), 200);
    leave_after_commit(response).await;
    // The round goes on without its client: the code ends, the model is called.
    model_calls_done(&stack, "the left round never called the model").await;
    wait_for_remaining(
        &stack,
        &client,
        TPM - first - second,
        "the left round charged directly",
    )
    .await;

    // The retry gets the stored round (its usage included) and charges nothing more.
    let (status, _, events) = client.stream(&continuation).await;
    assert_eq!(status, 200, "{events:?}");
    let d = fold(&events);
    assert_eq!(d["content"][1]["text"], "It was A.", "{d}");
    assert_eq!(charged(&d["usage"]), second, "{d}");
    let (status, _, again) = client
        .round(&request(&messages, Some(&container), false))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["usage"], d["usage"]);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            tokens_remaining(&stack, &client).await,
            TPM - first - second,
            "a replay must not charge the round again"
        );
    }
    assert_eq!(
        tool_results_seen(&stack.fake, "toolu_bdrk_01E2eCharge").len(),
        1
    );
}

/// ptc.md 16 for a new round: a streaming client that leaves while the code runs still has the
/// model call the round already finished charged to its key (Envoy saw no usage trailer, so
/// translator-svc charges ratelimit-svc when the round is dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_round_left_while_its_code_runs_is_charged_for_its_finished_model_call() {
    let Some((stack, client)) = start_limited("e2e-ptc-new-round-charge").await else {
        return;
    };

    // The model asks for code that runs for 3 s; the call costs 600 input and 30 output tokens.
    stack.fake.enqueue(Scenario {
        usage: Some(fake_bedrock::Usage {
            input_tokens: Some(600),
            output_tokens: Some(30),
            cache_read_input_tokens: Some(0),
            cache_creation_input_tokens: Some(0),
            cache_creation_1h_input_tokens: None,
        }),
        ..code_call(
            "toolu_bdrk_01E2eNewRound",
            "import time\ntime.sleep(3)\nprint('done')",
        )
    });
    let messages = vec![json!({"role": "user", "content": "Wait a little."})];
    let mut response = client.send(&request(&messages, None, true)).await;
    assert_eq!(response.status(), 200);
    // The model call is over once its code block is complete; the code then runs.
    let mut seen = String::new();
    while !seen.contains("server_tool_use") || !seen.contains("content_block_stop") {
        let chunk = response.chunk().await.unwrap().expect("the model's events");
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(response);
    wait_for_remaining(
        &stack,
        &client,
        TPM - 630,
        "the left round charged its finished model call",
    )
    .await;
}

/// A model turn after code that costs `input` + `output` tokens and asks for more code.
fn more_code(id: &str, input: u64, output: u64, on_tool_result: bool) -> Scenario {
    Scenario {
        usage: Some(fake_bedrock::Usage {
            input_tokens: Some(input),
            output_tokens: Some(output),
            cache_read_input_tokens: Some(0),
            cache_creation_input_tokens: Some(0),
            cache_creation_1h_input_tokens: None,
        }),
        on_tool_result,
        ..code_call(id, "print('more')")
    }
}

/// The model call that follows code, refused by Bedrock (no tokens billed for it).
fn refused_after_code() -> Scenario {
    Scenario {
        on_tool_result: true,
        ..Scenario::error("ValidationException", "the model refused")
    }
}

/// ptc.md 16 for rounds that fail: what their model calls spent before the failure still counts
/// against the key's TPM limit, once, although no usage header or trailer reaches Envoy.
/// 1. A streaming continuation its client left right after the commit runs on: the code ends, the
///    model (740 tokens) asks for more code, which runs, and the next model call is refused. The
///    round ends in an error nobody receives; translator-svc charges the 740 tokens directly.
/// 2. A JSON round whose client waits: its first model call (520 tokens) asks for code, the next
///    call is refused; the client gets the error (no usage header), and the 520 tokens are
///    charged directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_rounds_are_charged_for_the_model_calls_they_ran() {
    let Some((stack, client)) = start_limited("e2e-ptc-failed-round").await else {
        return;
    };

    let (messages, container, first) =
        paused_and_charged(&stack, &client, "toolu_bdrk_01E2eFail").await;

    // 1. The streaming continuation, left right after the commit while the code sleeps.
    stack
        .fake
        .enqueue(more_code("toolu_bdrk_02E2eFail", 700, 40, true));
    stack.fake.enqueue(refused_after_code());
    let response = client
        .send(&request(&messages, Some(&container), true))
        .await;
    assert_eq!(response.status(), 200);
    leave_after_commit(response).await;
    model_calls_done(
        &stack,
        "the left round never reached its failing model call",
    )
    .await;
    assert_eq!(
        tool_results_seen(&stack.fake, "toolu_bdrk_02E2eFail").len(),
        1
    );
    wait_for_remaining(
        &stack,
        &client,
        TPM - first - 740,
        "the failed round its client left charged its model call",
    )
    .await;

    // 2. A new JSON round in the same (idle) container fails after one model call.
    stack
        .fake
        .enqueue(more_code("toolu_bdrk_03E2eFail", 500, 20, false));
    stack.fake.enqueue(refused_after_code());
    let fresh = [json!({"role": "user", "content": "Run more."})];
    let (status, _, error) = client
        .round(&request(&fresh, Some(&container), false))
        .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    assert!(stack.fake.queued().is_empty());
    wait_for_remaining(
        &stack,
        &client,
        TPM - first - 740 - 520,
        "the failed JSON round charged its model call",
    )
    .await;
    // Charged once: nothing more arrives later.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            tokens_remaining(&stack, &client).await,
            TPM - first - 740 - 520,
            "a failed round is charged once"
        );
    }
}
