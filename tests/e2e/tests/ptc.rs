//! Programmatic Tool Calling through the whole gateway: real Envoy + gate filter, translator-svc,
//! ptc-svc running the code in real Docker sandboxes (reached through Envoy's PTC router, as in
//! Kubernetes), and the fake Bedrock, driven by the Python SDK's beta client
//! (`tests/clients/python_sdk.py`, the `ptc_*` cases), non-streaming and streaming.
// Test code: a failed step fails the test by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use e2e::clients::{self, Target};
use e2e::stack::{Stack, StackOptions};
use e2e::tools;
use fake_bedrock::{ContentBlock, Scenario};
use serde_json::{Value, json};

const MODEL: &str = "claude-sonnet-4-5-20250929";
const CALLER: &str = "code_execution_20250825";

/// Task 1: one call, three at once (Rome fails, Lima answers with a list of text blocks), then
/// an exception. The file it writes is read by task 2 in the same container.
const CODE_1: &str = r#"paris = await get_weather(city="Paris")
print("one=" + paris)
results = await asyncio.gather(get_weather(city="Oslo"), get_weather(city="Rome"),
                               get_weather(city="Lima"), return_exceptions=True)
for city, r in zip(["Oslo", "Rome", "Lima"], results):
    print(city + ":" + (f"ToolError({r})" if isinstance(r, ToolError) else repr(r)))
open("/workspace/note.txt", "w").write("kept-" + paris)
raise ValueError("done after " + str(len(results)))
"#;
const STDOUT_1: &str = "one=sunny-in-Paris\nOslo:'sunny-in-Oslo'\nRome:ToolError(Rome-offline)\n\
                        Lima:'rain\\nin-Lima'\n";
/// Task 2: same container, fresh namespace.
const CODE_2: &str = r#"print("file=" + open("/workspace/note.txt").read())
try:
    paris
    print("vars=kept")
except NameError:
    print("vars=fresh")
"#;
const STDOUT_2: &str = "file=kept-sunny-in-Paris\nvars=fresh\n";
const FINAL_1: &str = "Three cities answered; Rome was offline.";
const FINAL_2: &str = "The note survived; the variables did not.";

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

struct Run {
    stack: Stack,
    python: PathBuf,
}

impl Run {
    async fn start(options: StackOptions) -> Option<Self> {
        let python = tools::python().expect("python")?;
        let stack = Stack::start(options).await.expect("start the gateway")?;
        Some(Self { stack, python })
    }

    async fn python(&self, case: &str) -> Value {
        let target = Target {
            base_url: &self.stack.url,
            key: &self.stack.master_key,
            bearer: false,
        };
        let clients_dir = tools::workspace_root().join("tests/clients");
        clients::python_sdk(&self.python, &clients_dir, case, MODEL, &target)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Every `tool_result` block for `tool_use_id` that reached the fake Bedrock.
    fn results_seen_by_bedrock(&self, tool_use_id: &str) -> Vec<Value> {
        self.stack
            .fake
            .requests()
            .iter()
            .flat_map(|r| r.body["messages"].as_array().cloned().unwrap_or_default())
            .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
            .filter(|b| b["type"] == "tool_result" && b["tool_use_id"] == tool_use_id)
            .collect()
    }
}

fn types(round: &Value) -> Vec<&str> {
    round["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}

fn blocks<'a>(round: &'a Value, kind: &str) -> Vec<&'a Value> {
    round["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == kind)
        .collect()
}

/// The pending sandbox calls of a pause: their cities, after checking each names `tool_id`.
fn sandbox_cities(round: &Value, tool_id: &str) -> Vec<String> {
    blocks(round, "tool_use")
        .iter()
        .map(|call| {
            assert!(
                call["id"].as_str().unwrap().starts_with("toolu_ptc_"),
                "{call}"
            );
            assert_eq!(call["name"], "get_weather", "{call}");
            assert_eq!(
                call["caller"],
                json!({"type": CALLER, "tool_id": tool_id}),
                "{call}"
            );
            call["input"]["city"].as_str().unwrap().to_string()
        })
        .collect()
}

fn code_result(round: &Value, tool_id: &str) -> Value {
    let results = blocks(round, "code_execution_tool_result");
    assert_eq!(results.len(), 1, "{round}");
    assert_eq!(results[0]["tool_use_id"], tool_id, "{round}");
    let content = results[0]["content"].clone();
    assert_eq!(content["type"], "code_execution_result", "{content}");
    content
}

fn text(round: &Value) -> String {
    blocks(round, "text")
        .iter()
        .map(|b| b["text"].as_str().unwrap())
        .collect()
}

/// Section 7 of the PTC spec, on the raw events the SDK's stream observed for one round: one
/// message, the same blocks in the same order as the final message, sandbox `tool_use` and
/// code results as complete starts, the round's stop reason and container at the end.
fn check_stream_events(round: &Value) {
    let events = round["events"]
        .as_array()
        .expect("events of a streamed round");
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"message_start"), "{round}");
    assert_eq!(kinds.last(), Some(&"message_stop"), "{round}");
    assert_eq!(kinds.iter().filter(|k| **k == "message_start").count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == "message_stop").count(), 1);
    let delta = &events[events.len() - 2];
    assert_eq!(delta["type"], "message_delta", "{round}");
    assert_eq!(delta["stop_reason"], round["stop_reason"], "{round}");
    assert_eq!(delta["container"], round["container"], "{round}");
    let started: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "content_block_start")
        .map(|e| e["block"].as_str().unwrap())
        .collect();
    assert_eq!(started, types(round), "{round}");
    for (i, event) in events.iter().enumerate() {
        if event["type"] != "content_block_start" {
            continue;
        }
        let next = |n: usize| events[i + n]["type"].as_str().unwrap();
        match event["block"].as_str().unwrap() {
            "code_execution_tool_result" => assert_eq!(next(1), "content_block_stop", "{round}"),
            "tool_use" if !event["caller"].is_null() => {
                assert_eq!(event["input"], json!({}), "{event}");
                assert_eq!(events[i + 1]["delta"], "input_json_delta", "{round}");
                assert_eq!(next(2), "content_block_stop", "{round}");
            }
            "server_tool_use" => {
                assert_eq!(event["input"], json!({}), "{event}");
            }
            _ => {}
        }
    }
}

fn check_flow(out: &Value, stream: bool) {
    let first = out["first"].as_array().unwrap();
    assert_eq!(first.len(), 3, "{out}");
    let tool_id = "srvtoolu_bdrk_01E2eCode1";

    // Round 1 (shape B): the model's turn with the code tool shown as server_tool_use, then the
    // one pending call.
    let r1 = &first[0];
    assert_eq!(r1["stop_reason"], "tool_use", "{r1}");
    assert_eq!(types(r1), ["text", "server_tool_use", "tool_use"], "{r1}");
    let server = blocks(r1, "server_tool_use")[0];
    assert_eq!(server["id"], tool_id, "{server}");
    assert_eq!(server["name"], "code_execution", "{server}");
    assert_eq!(server["input"]["code"], CODE_1, "{server}");
    assert_eq!(sandbox_cities(r1, tool_id), ["Paris"]);
    let container = r1["container"].as_str().unwrap();
    assert!(container.starts_with("container_"), "{r1}");

    // Round 2 (shape C): the three gathered calls as one batch, in call order; no model call.
    let r2 = &first[1];
    assert_eq!(r2["stop_reason"], "tool_use", "{r2}");
    assert_eq!(types(r2), ["tool_use", "tool_use", "tool_use"], "{r2}");
    assert_eq!(sandbox_cities(r2, tool_id), ["Oslo", "Rome", "Lima"]);
    assert_eq!(r2["usage"]["input_tokens"], 0, "{r2}");
    assert_eq!(r2["usage"]["output_tokens"], 0, "{r2}");

    // Round 3 (shape D): the code's outcome, each result on its own call, then the model.
    let r3 = &first[2];
    assert_eq!(r3["stop_reason"], "end_turn", "{r3}");
    assert_eq!(types(r3), ["code_execution_tool_result", "text"], "{r3}");
    let result = code_result(r3, tool_id);
    assert_eq!(result["stdout"], STDOUT_1, "{result}");
    assert_eq!(result["return_code"], 1, "{result}");
    let stderr = result["stderr"].as_str().unwrap();
    assert!(stderr.contains("ValueError: done after 3"), "{stderr}");
    assert_eq!(text(r3), FINAL_1);

    // Task 2 in the same container: D directly (no tool call), the file is there, the names not.
    let second = out["second"].as_array().unwrap();
    assert_eq!(second.len(), 1, "{out}");
    let r4 = &second[0];
    assert_eq!(r4["stop_reason"], "end_turn", "{r4}");
    assert_eq!(
        types(r4),
        [
            "text",
            "server_tool_use",
            "code_execution_tool_result",
            "text"
        ],
        "{r4}"
    );
    let result = code_result(r4, "srvtoolu_bdrk_01E2eCode2");
    assert_eq!(result["stdout"], STDOUT_2, "{result}");
    assert_eq!(result["return_code"], 0, "{result}");
    assert_eq!(text(r4), format!("Let me run code.{FINAL_2}"));

    for round in first.iter().chain(second) {
        assert_eq!(round["container"], container, "{round}");
        if stream {
            check_stream_events(round);
        } else {
            assert!(round["events"].is_null());
        }
    }
    if stream {
        // Shape C as a stream: zero usage at the start, then only the three sandbox calls.
        let events = r2["events"].as_array().unwrap();
        assert_eq!(events.len(), 1 + 3 * 3 + 2, "{r2}");
        assert_eq!(events[0]["usage"]["input_tokens"], 0, "{r2}");
        assert_eq!(events[0]["container"], container, "{r2}");
    }
}

async fn flow(stream: bool) {
    let Some(run) = Run::start(StackOptions::default().with_ptc()).await else {
        return;
    };
    let fake = &run.stack.fake;
    fake.enqueue(code_call("toolu_bdrk_01E2eCode1", CODE_1));
    fake.enqueue(after_code(FINAL_1));
    fake.enqueue(code_call("toolu_bdrk_01E2eCode2", CODE_2));
    fake.enqueue(after_code(FINAL_2));
    let out = run
        .python(if stream {
            "ptc_flow_stream"
        } else {
            "ptc_flow"
        })
        .await;
    check_flow(&out, stream);
    assert!(fake.queued().is_empty(), "unused scenarios: {out}");

    // Bedrock saw each code tool's outcome (restored ids, the report as the spec's JSON), and
    // never a sandbox call or its result.
    let seen = run.results_seen_by_bedrock("toolu_bdrk_01E2eCode1");
    assert!(!seen.is_empty(), "no tool_result for the first code tool");
    let first = &seen[0];
    assert_eq!(first["is_error"], true, "{first}");
    let report = first.to_string();
    assert!(report.contains("one=sunny-in-Paris"), "{report}");
    assert!(report.contains("ValueError: done after 3"), "{report}");
    let seen = run.results_seen_by_bedrock("toolu_bdrk_01E2eCode2");
    assert!(!seen.is_empty(), "no tool_result for the second code tool");
    assert!(seen[0].to_string().contains("vars=fresh"), "{}", seen[0]);
    assert_ne!(seen[0]["is_error"], true, "{}", seen[0]);
    for request in fake.requests() {
        let body = request.body.to_string();
        assert!(
            !body.contains("toolu_ptc_"),
            "a sandbox call reached Bedrock: {body}"
        );
        assert!(!body.contains("server_tool_use"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_drives_code_that_calls_tools_one_then_three_then_raises() {
    flow(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_streams_code_that_calls_tools_one_then_three_then_raises() {
    flow(true).await;
}

/// A paused execution whose session idled out: its continuation gets 404 (streaming or not), and
/// a new task naming the dead container runs in a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_container_is_refused_then_replaced() {
    let Some(run) = Run::start(
        StackOptions::default()
            .with_ptc()
            .ptc_env("PTC_SESSION_IDLE_S", "2"),
    )
    .await
    else {
        return;
    };
    let fake = &run.stack.fake;
    fake.enqueue(code_call(
        "toolu_bdrk_01E2eSlow",
        "print(await get_weather(city=\"Paris\"))\n",
    ));
    fake.enqueue(code_call("toolu_bdrk_01E2eFresh", "print(\"fresh\")\n"));
    fake.enqueue(after_code("Done anew."));
    let out = run.python("ptc_expiry").await;

    assert_eq!(out["paused"]["stop_reason"], "tool_use", "{out}");
    let old = out["container"].as_str().unwrap();
    assert!(old.starts_with("container_"), "{out}");
    for refused in [&out["expired"], &out["expired_stream"]] {
        assert_eq!(refused["error_class"], "NotFoundError", "{out}");
        assert_eq!(refused["status"], 404, "{out}");
        assert_eq!(refused["body"]["error"]["type"], "not_found_error", "{out}");
    }
    let fresh = out["fresh"].as_array().unwrap();
    assert_eq!(fresh.len(), 1, "{out}");
    assert_eq!(fresh[0]["stop_reason"], "end_turn", "{out}");
    assert_eq!(
        code_result(&fresh[0], "srvtoolu_bdrk_01E2eFresh")["stdout"],
        "fresh\n"
    );
    let new = out["fresh_container"].as_str().unwrap();
    assert!(new.starts_with("container_") && new != old, "{out}");
    assert!(fake.queued().is_empty(), "unused scenarios: {out}");
}

/// The JSON access-log lines of Envoy's log, once `ready` holds for them (Envoy writes access
/// logs on its flush interval, not per request).
async fn access_log(stack: &Stack, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let lines: Vec<Value> = stack
            .envoy_log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
            .filter(|v| v.is_object())
            .collect();
        if ready(&lines) || std::time::Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Spec 9 and 18.11: two translator-svc instances (round robin) and two ptc-svc replicas
/// (consistent hashing on the container id through Envoy's PTC router, as deployed in
/// Kubernetes): five-round conversations succeed with consecutive rounds on different translator
/// instances, every sandbox call of a container lands on the replica that created it, and both
/// replicas hold sessions. `/health/ptc` through the gateway reports both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_translators_and_two_ptc_replicas_serve_five_round_conversations() {
    // Up to 12 sessions of one key may land on one replica before the other gets one.
    let options = StackOptions::default()
        .ptc_replicas(2)
        .translators(2)
        .ptc_env("PTC_MAX_SESSIONS_PER_KEY", "16");
    let Some(run) = Run::start(options).await else {
        return;
    };
    let stack = &run.stack;
    let replicas: Vec<SocketAddr> = stack.ptc_replicas().iter().map(|(a, _)| *a).collect();
    assert_eq!(replicas.len(), 2);
    let translators = stack.translator_addrs.clone();
    assert_eq!(translators.len(), 2);
    let code = r#"a = await get_weather(city="Paris")
b = await get_weather(city="Oslo")
c = await asyncio.gather(get_weather(city="Bern"), get_weather(city="Kyiv"))
d = await get_weather(city="Nice")
print("|".join([a, b, *c, d]))
"#;
    // Each new container hashes to either replica: run conversations (at least three) until both
    // own one (the chance that 12 in a row land on the same replica is 1 in 2048).
    let mut conversations: Vec<Value> = Vec::new();
    let mut owners: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for n in 0..12 {
        let id = format!("toolu_bdrk_01E2eRound{n}");
        stack.fake.enqueue(code_call(&id, code));
        stack.fake.enqueue(after_code("All five cities are sunny."));
        // Every other conversation streams.
        let out = run
            .python(if n % 2 == 1 {
                "ptc_rounds_stream"
            } else {
                "ptc_rounds"
            })
            .await;
        let rounds = out["rounds"].as_array().unwrap();
        if n % 2 == 1 {
            rounds.iter().for_each(check_stream_events);
        }
        let stops: Vec<&str> = rounds
            .iter()
            .map(|r| r["stop_reason"].as_str().unwrap())
            .collect();
        assert_eq!(
            stops,
            ["tool_use", "tool_use", "tool_use", "tool_use", "end_turn"],
            "{out}"
        );
        let result = code_result(&rounds[4], &id.replacen("toolu_", "srvtoolu_", 1));
        assert_eq!(
            result["stdout"],
            "sunny-in-Paris|sunny-in-Oslo|sunny-in-Bern|sunny-in-Kyiv|sunny-in-Nice\n"
        );
        let container = out["container"].as_str().unwrap().to_string();
        conversations.push(out);

        owners.clear();
        let lines = access_log(stack, |lines| {
            lines
                .iter()
                .any(|l| l["listener"] == "ptc_router" && l["container"] == container.as_str())
        })
        .await;
        for line in lines {
            if line["listener"] == "ptc_router" && line["container"] != "-" {
                owners
                    .entry(line["container"].as_str().unwrap().to_string())
                    .or_default()
                    .insert(line["upstream"].as_str().unwrap().to_string());
            }
        }
        let used: BTreeSet<&String> = owners.values().flatten().collect();
        if n >= 2 && used.len() == 2 {
            break;
        }
    }

    // Ring hash: all calls for one container went to one replica, the one that created it.
    let logs = stack.ptc_replicas();
    let mut sessions_per_replica: BTreeMap<SocketAddr, u64> = BTreeMap::new();
    for conversation in &conversations {
        let container = conversation["container"].as_str().unwrap();
        let upstreams = owners.get(container).unwrap_or_else(|| {
            panic!(
                "no PTC router access-log line for {container}\n{}",
                stack.logs()
            )
        });
        assert_eq!(upstreams.len(), 1, "{container} went to {upstreams:?}");
        let owner: SocketAddr = upstreams.iter().next().unwrap().parse().unwrap();
        let (_, log) = logs.iter().find(|(addr, _)| *addr == owner).unwrap();
        assert!(
            log.lines()
                .any(|l| l.contains("session created") && l.contains(container)),
            "{owner} did not create {container}"
        );
        *sessions_per_replica.entry(owner).or_default() += 1;
    }
    assert_eq!(
        sessions_per_replica.len(),
        2,
        "both replicas must hold sessions: {sessions_per_replica:?}"
    );

    // Round robin: consecutive rounds of a conversation on different translator instances, and
    // each instance served model calls (its own usage lines).
    let request_ids: Vec<String> = conversations
        .iter()
        .flat_map(|c| c["rounds"].as_array().unwrap().clone())
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect();
    let gateway_lines = access_log(stack, |lines| {
        request_ids
            .iter()
            .all(|id| lines.iter().any(|l| l["request_id"] == id.as_str()))
    })
    .await;
    let upstream_of = |request_id: &str| -> String {
        gateway_lines
            .iter()
            .find(|l| l["request_id"] == request_id)
            .map(|l| l["upstream"].as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("request {request_id} not in Envoy's access log"))
    };
    let translator_names: Vec<String> = translators.iter().map(|a| a.to_string()).collect();
    let mut served: BTreeSet<String> = BTreeSet::new();
    for conversation in &conversations {
        let hosts: Vec<String> = conversation["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| upstream_of(r["request_id"].as_str().unwrap()))
            .collect();
        for host in &hosts {
            assert!(
                translator_names.contains(host),
                "{host} is not a translator"
            );
        }
        for pair in hosts.windows(2) {
            assert_ne!(
                pair[0], pair[1],
                "two rounds in a row on one translator: {hosts:?}"
            );
        }
        served.extend(hosts);
    }
    assert_eq!(served.len(), 2, "{served:?}");
    let translator_logs = stack.translator_logs();
    for (addr, log) in translators.iter().zip(&translator_logs) {
        let usage_lines = conversations
            .iter()
            .flat_map(|c| c["rounds"].as_array().unwrap().clone())
            .filter(|r| {
                let id = r["request_id"].as_str().unwrap();
                log.lines().any(|l| l.contains("usage") && l.contains(id))
            })
            .count();
        assert!(usage_lines > 0, "translator {addr} logged no usage line");
    }

    // /health/ptc through the gateway: both replicas, their engine, image and session counts.
    let response = stack
        .http()
        .get(format!("{}/health/ptc", stack.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let health: Value = response.json().await.unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["enabled"], true, "{health}");
    let reported = health["replicas"].as_array().unwrap();
    assert_eq!(reported.len(), 2, "{health}");
    let total: u64 = reported
        .iter()
        .map(|r| {
            assert_eq!(r["docker"], "reachable", "{health}");
            assert!(
                !r["docker_version"].as_str().unwrap().is_empty(),
                "{health}"
            );
            assert!(
                r["image"].as_str().unwrap().contains("gateway-ptc-sandbox"),
                "{health}"
            );
            assert_eq!(r["image_present"], true, "{health}");
            r["active_sessions"].as_u64().unwrap()
        })
        .collect::<Vec<u64>>()
        .iter()
        .sum();
    assert_eq!(total, conversations.len() as u64, "{health}");
    let mut counts: Vec<u64> = reported
        .iter()
        .map(|r| r["active_sessions"].as_u64().unwrap())
        .collect();
    counts.sort_unstable();
    let mut expected: Vec<u64> = sessions_per_replica.values().copied().collect();
    expected.sort_unstable();
    assert_eq!(counts, expected, "{health}");
    assert_eq!(health["limits"]["network"], "none", "{health}");
}
