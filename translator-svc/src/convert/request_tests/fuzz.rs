//! Property-style test: random JSON and randomly mutated fixture bodies never panic a request
//! conversion; every outcome is a request or a 4xx `ApiError`. Seeded, so failures reproduce.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use super::super::*;
use super::fixtures_dir;
use crate::beta::BetaPolicy;
use crate::models::ModelTable;

const KEYS: &[&str] = &[
    "type",
    "text",
    "role",
    "content",
    "source",
    "media_type",
    "data",
    "id",
    "name",
    "input",
    "tool_use_id",
    "cache_control",
    "thinking",
    "signature",
    "budget_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "max_tokens",
    "input_schema",
    "is_error",
    "title",
    "tool_name",
    "ttl",
    "edits",
    "effort",
    "format",
    "schema",
];

const STRINGS: &[&str] = &[
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "tool_reference",
    "search_result",
    "server_tool_use",
    "web_search_tool_result",
    "base64",
    "url",
    "file",
    "content",
    "user",
    "assistant",
    "system",
    "enabled",
    "adaptive",
    "disabled",
    "auto",
    "any",
    "tool",
    "none",
    "image/png",
    "application/pdf",
    "text/plain",
    "ephemeral",
    "1h",
    "",
    "   ",
    "AAAA",
    "%%%",
    "web_search_20250305",
    "custom",
    "json_schema",
    "日本語",
    "call:1/x",
];

fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    let kinds = if depth == 0 { 6 } else { 8 };
    match rng.random_range(0..kinds) {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 => json!(
            [-1i64, 0, 1, 1023, 1024, 70_000, 4_294_967_296i64, i64::MIN][rng.random_range(0..8)]
        ),
        3 => json!(rng.random_range(-2.0..2.0)),
        4 | 5 => Value::String(STRINGS[rng.random_range(0..STRINGS.len())].to_string()),
        6 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.random_range(0..5) {
                map.insert(
                    KEYS[rng.random_range(0..KEYS.len())].to_string(),
                    random_value(rng, depth - 1),
                );
            }
            Value::Object(map)
        }
    }
}

fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, c)| {
            pointers(
                c,
                format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                out,
            )
        }),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, c)| pointers(c, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}

/// Replaces or removes one random node.
fn mutate(body: &mut Value, rng: &mut StdRng) {
    let mut all = Vec::new();
    pointers(body, String::new(), &mut all);
    let target = all[rng.random_range(0..all.len())].clone();
    let replacement = random_value(rng, 3);
    let remove = rng.random_bool(0.3);
    if let Some((parent, key)) = target.rsplit_once('/') {
        match body.pointer_mut(parent) {
            Some(Value::Object(m)) if remove => {
                m.shift_remove(&key.replace("~1", "/").replace("~0", "~"));
            }
            Some(Value::Array(a)) if remove => {
                if let Ok(i) = key.parse::<usize>()
                    && i < a.len()
                {
                    a.remove(i);
                }
            }
            _ => {
                if let Some(slot) = body.pointer_mut(&target) {
                    *slot = replacement;
                }
            }
        }
    }
}

fn seeds() -> Vec<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path().join("input.json");
        if let Ok(text) = std::fs::read_to_string(path) {
            out.push(serde_json::from_str::<Value>(&text).unwrap()["request"].clone());
        }
    }
    out.sort_by_key(|v| v.to_string());
    out
}

#[test]
fn conversions_never_panic_and_fail_only_with_4xx() {
    let table = ModelTable::builtin("global", true);
    let models = [
        "claude-opus-4-7",
        "claude-sonnet-4-5",
        "claude-3-5-haiku-latest",
        "global.amazon.nova-2-lite-v1:0",
        "us.amazon.nova-micro-v1:0",
        "qwen.qwen3-32b-v1:0",
        "moonshot.kimi-k2-thinking",
        "us.meta.llama4-maverick-17b-instruct-v1:0",
    ];
    let routes: Vec<_> = models.iter().map(|m| table.resolve(m).unwrap()).collect();
    let policy = BetaPolicy::default_policy();
    let betas = BetaPolicy::parse_header_values(&[
        "advanced-tool-use-2025-11-20,context-1m-2025-08-07,effort-2025-11-24",
    ]);
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(0x5eed_2026);
    let (mut ok, mut rejected) = (0u32, 0u32);
    for i in 0..4000 {
        let body = if i % 4 == 0 {
            random_value(&mut rng, 4)
        } else {
            let mut body = seeds[rng.random_range(0..seeds.len())].clone();
            for _ in 0..rng.random_range(1..4) {
                mutate(&mut body, &mut rng);
            }
            body
        };
        let route = &routes[rng.random_range(0..routes.len())];
        let mut opts = RequestOptions::new(route, &betas, &policy);
        if rng.random_bool(0.5) {
            opts.server_tools = ServerToolsPolicy::Strip;
        }
        let outcomes = [
            to_invoke_body(body.clone(), &opts).map(|r| r.body),
            to_converse_request(body.clone(), &opts).and_then(|r| {
                serde_json::to_value(r).map_err(|e| crate::error::ApiError::api(e.to_string()))
            }),
            to_count_tokens_input(&body, &opts).map(|_| Value::Null),
        ];
        let _ = estimate_input_tokens(&body);
        let _ = url_sources(&body);
        for outcome in outcomes {
            match outcome {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert!(e.status.is_client_error(), "{e} for {body}");
                    rejected += 1;
                }
            }
        }
    }
    // Both outcomes must actually occur, or the generator is not exercising anything.
    assert!(ok > 1000 && rejected > 1000, "ok {ok}, rejected {rejected}");
}
