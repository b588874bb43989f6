//! PTC retries and accounting through the whole gateway (real Envoy + gate filter, translator-svc,
//! ptc-svc on the Docker engine, the fake Bedrock): a client that drops a streaming continuation
//! while the code runs gets the finished round when it retries, the tool results reach the code
//! once (ptc.md 5.6, 10), and every model call of a round is its own usage record in the store,
//! with the container and execution ids, summing to the round's usage (ptc.md 16).

use std::time::{Duration, Instant};

use e2e::stack::{Stack, StackOptions};
use fake_bedrock::{ContentBlock, Scenario};
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

fn code_call(id: &str, code: &str) -> Scenario {
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

fn after_code(text: &str) -> Scenario {
    Scenario {
        on_tool_result: true,
        ..Scenario::text(text)
    }
}

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

/// Every `tool_result` for `tool_use_id` that reached the fake Bedrock.
fn results_seen_by_bedrock(stack: &Stack, tool_use_id: &str) -> usize {
    stack
        .fake
        .requests()
        .iter()
        .flat_map(|r| r.body["messages"].as_array().cloned().unwrap_or_default())
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["type"] == "tool_result" && b["tool_use_id"] == tool_use_id)
        .count()
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
    let mut response = response;
    let mut head = String::new();
    while !head.contains("message_start") {
        let chunk = response
            .chunk()
            .await
            .unwrap()
            .expect("the stream's first event");
        head.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    drop(response);

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
    assert_eq!(results_seen_by_bedrock(stack, "toolu_bdrk_01E2eSeen"), 1);

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
    let deadline = Instant::now() + Duration::from_secs(20);
    let lines: Vec<Value> = loop {
        let lines: Vec<Value> = stack
            .envoy_log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
            .filter(|v| v.is_object())
            .collect();
        let all = ids
            .iter()
            .all(|id| lines.iter().any(|l| l["request_id"] == id.as_str()));
        if all || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
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

/// ptc.md 16 through Envoy and ratelimit-svc: a continuation round its streaming client left
/// finishes and charges its tokens to the key's TPM limit (Envoy saw no usage trailer, so
/// translator-svc charges ratelimit-svc directly); the retry that gets the stored round charges
/// nothing (its trailer says 0), so the round counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_continuation_is_charged_once_and_its_replay_is_free() {
    const TPM: u64 = 100_000;
    let Some(stack) = Stack::start(StackOptions::default().with_ptc().with_ratelimit())
        .await
        .expect("start the gateway")
    else {
        return;
    };
    let (_, key) = stack
        .create_key(json!({"name": "e2e-ptc-charge", "tpm": TPM}))
        .await
        .expect("create a key");
    let client = Client {
        http: stack.http(),
        url: stack.url.clone(),
        key,
    };
    assert_eq!(tokens_remaining(&stack, &client).await, TPM);

    // Round 1 (JSON): the code pauses; Envoy charges it from the usage header.
    stack
        .fake
        .enqueue(code_call("toolu_bdrk_01E2eCharge", SEEN_CODE));
    let mut messages = vec![json!({"role": "user", "content": "Read item a."})];
    let (status, _, b) = client.round(&request(&messages, None, false)).await;
    assert_eq!(status, 200, "{b}");
    let first = charged(&b["usage"]);
    assert!(first > 0, "{b}");
    let call = b["content"][2].clone();
    let container = b["container"]["id"].clone();
    messages.push(json!({"role": "assistant", "content": b["content"]}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call["id"], "content": "A"}]}));
    wait_for_remaining(&stack, &client, TPM - first, "after round 1").await;

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
    let mut response = client.send(&continuation).await;
    assert_eq!(response.status(), 200);
    let mut head = String::new();
    while !head.contains("message_start") {
        let chunk = response.chunk().await.unwrap().expect("the first event");
        head.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    drop(response);
    // The round goes on without its client: the code ends, the model is called.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stack.fake.queued().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the left round never called the model"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    assert_eq!(results_seen_by_bedrock(&stack, "toolu_bdrk_01E2eCharge"), 1);
}

/// ptc.md 16 for a new round: a streaming client that leaves while the code runs still has the
/// model call the round already finished charged to its key (Envoy saw no usage trailer, so
/// translator-svc charges ratelimit-svc when the round is dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_round_left_while_its_code_runs_is_charged_for_its_finished_model_call() {
    const TPM: u64 = 100_000;
    let Some(stack) = Stack::start(StackOptions::default().with_ptc().with_ratelimit())
        .await
        .expect("start the gateway")
    else {
        return;
    };
    let (_, key) = stack
        .create_key(json!({"name": "e2e-ptc-new-round-charge", "tpm": TPM}))
        .await
        .expect("create a key");
    let client = Client {
        http: stack.http(),
        url: stack.url.clone(),
        key,
    };
    assert_eq!(tokens_remaining(&stack, &client).await, TPM);

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
