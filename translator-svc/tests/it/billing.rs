//! Billing what actually happened: translator-svc in-process against the fake Bedrock, with the
//! embedded usage store, read back through the admin usage API. The tier recorded and priced is
//! the one Bedrock reports running the call at, and cache writes are priced per TTL.

use std::time::Duration;

use fake_bedrock::{Scenario, Usage};
use serde_json::{Value, json};

use crate::support::Service;

/// claude-sonnet-4-5 list prices, USD per million tokens.
const INPUT_USD: f64 = 3.0;
const OUTPUT_USD: f64 = 15.0;

async fn start(claude_api: &str) -> Service {
    Service::start(&[("CLAUDE_API", claude_api)]).await
}

/// Sends one request as the gateway would for a key on `tier`; returns its request id once the
/// whole body was read.
async fn send(h: &Service, tier: Option<&str>, request: &Value) -> String {
    let mut builder = h.post("/v1/messages", request);
    if let Some(tier) = tier {
        builder = builder.header("x-gw-tier", tier);
    }
    let response = builder.send().await.unwrap();
    let status = response.status();
    let id = response.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("event: error"), "{body}");
    id
}

fn request(stream: bool) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": stream,
           "messages": [{"role": "user", "content": "hi"}]})
}

fn usd(input: u64, output: u64, cache_5m: u64, cache_1h: u64, multiplier: f64) -> f64 {
    let per_mtok = input as f64 * INPUT_USD
        + output as f64 * OUTPUT_USD
        + cache_5m as f64 * INPUT_USD * 1.25
        + cache_1h as f64 * INPUT_USD * 2.0;
    per_mtok / 1e6 * multiplier
}

fn assert_cost(record: &Value, expected: f64) {
    let cost = record["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - expected).abs() < 1e-9,
        "cost {cost}, expected {expected}: {record}"
    );
}

fn scenario(served_tier: Option<&str>, usage: Usage) -> Scenario {
    Scenario {
        served_tier: served_tier.map(str::to_string),
        usage: Some(usage),
        ..Scenario::text("billed")
    }
}

fn plain_usage() -> Usage {
    Usage {
        input_tokens: Some(1000),
        output_tokens: Some(100),
        cache_read_input_tokens: Some(0),
        cache_creation_input_tokens: Some(0),
        ..Usage::default()
    }
}

/// A key on `priority` whose call Bedrock ran on the standard tier is recorded and priced as
/// standard; a call Bedrock did run at priority is priced at the priority multiplier.
async fn served_tier_is_billed(claude_api: &str) {
    let h = start(claude_api).await;
    for stream in [false, true] {
        h.fake.enqueue(scenario(Some("default"), plain_usage()));
        let overflowed = send(&h, Some("priority"), &request(stream)).await;
        h.fake.enqueue(scenario(None, plain_usage()));
        let honoured = send(&h, Some("priority"), &request(stream)).await;

        let record = h.usage_record(&overflowed).await;
        assert_eq!(record["tier"], "default", "stream={stream}: {record}");
        assert_cost(&record, usd(1000, 100, 0, 0, 1.0));
        let record = h.usage_record(&honoured).await;
        assert_eq!(record["tier"], "priority", "stream={stream}: {record}");
        assert_cost(&record, usd(1000, 100, 0, 0, 1.75));
    }
    // The tier was asked for on every call; what Bedrock reported decided the bill.
    let asked = h
        .fake
        .requests()
        .iter()
        .filter(|r| {
            r.header("x-amzn-bedrock-service-tier") == Some("priority")
                || r.body.pointer("/serviceTier/type") == Some(&json!("priority"))
        })
        .count();
    assert_eq!(asked, 4);
}

#[tokio::test]
async fn invoke_bills_the_tier_bedrock_ran() {
    served_tier_is_billed("invoke").await;
}

#[tokio::test]
async fn converse_bills_the_tier_bedrock_ran() {
    served_tier_is_billed("converse").await;
}

/// Cache writes reported per TTL are priced per TTL (1 hour at 2x input, 5 minutes at 1.25x);
/// an unsplit total is priced as 1-hour writes only when every marker sent asked for 1 hour.
async fn cache_writes_are_priced_per_ttl(claude_api: &str) {
    let h = start(claude_api).await;
    let split = Usage {
        input_tokens: Some(0),
        output_tokens: Some(0),
        cache_read_input_tokens: Some(0),
        cache_creation_input_tokens: Some(1000),
        cache_creation_1h_input_tokens: Some(600),
    };
    for stream in [false, true] {
        h.fake.enqueue(scenario(None, split.clone()));
        let id = send(&h, None, &request(stream)).await;
        let record = h.usage_record(&id).await;
        assert_eq!(
            (
                record["cache_write_5m_tokens"].as_u64(),
                record["cache_write_1h_tokens"].as_u64()
            ),
            (Some(400), Some(600)),
            "stream={stream}: {record}"
        );
        assert_cost(&record, usd(0, 0, 400, 600, 1.0));
    }

    // Only the total reported: the markers sent decide.
    let unsplit = Usage {
        cache_creation_1h_input_tokens: None,
        ..split
    };
    let marked = |ttl: Option<&str>| {
        let mut cache_control = json!({"type": "ephemeral"});
        if let Some(ttl) = ttl {
            cache_control["ttl"] = json!(ttl);
        }
        json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
               "system": [{"type": "text", "text": "a long system prompt", "cache_control": cache_control}],
               "messages": [{"role": "user", "content": "hi"}]})
    };
    h.fake.enqueue(scenario(None, unsplit.clone()));
    let one_hour = send(&h, None, &marked(Some("1h"))).await;
    h.fake.enqueue(scenario(None, unsplit));
    let default_ttl = send(&h, None, &marked(None)).await;
    let record = h.usage_record(&one_hour).await;
    assert_eq!(record["cache_write_1h_tokens"], 1000, "{record}");
    assert_cost(&record, usd(0, 0, 0, 1000, 1.0));
    let record = h.usage_record(&default_ttl).await;
    assert_eq!(record["cache_write_5m_tokens"], 1000, "{record}");
    assert_cost(&record, usd(0, 0, 1000, 0, 1.0));

    // The usage summary carries the 1-hour share next to the total.
    let summary = h.admin_get("/admin/v1/usage?group_by=model").await;
    let totals = &summary["totals"];
    assert_eq!(totals["cache_write_tokens"], 4000, "{summary}");
    assert_eq!(
        totals["cache_write_1h_tokens"],
        600 + 600 + 1000,
        "{summary}"
    );
    let cost = totals["cost_usd"].as_f64().unwrap();
    let expected =
        2.0 * usd(0, 0, 400, 600, 1.0) + usd(0, 0, 0, 1000, 1.0) + usd(0, 0, 1000, 0, 1.0);
    assert!((cost - expected).abs() < 1e-9, "{summary}");
}

#[tokio::test]
async fn invoke_prices_cache_writes_per_ttl() {
    cache_writes_are_priced_per_ttl("invoke").await;
}

#[tokio::test]
async fn converse_prices_cache_writes_per_ttl() {
    cache_writes_are_priced_per_ttl("converse").await;
}

/// A Converse stream the client drops before `metadata` (the only usage report on that path) is
/// recorded as `client_disconnected` with the local input estimate and the output streamed so far.
#[tokio::test]
async fn a_dropped_converse_stream_records_what_was_consumed() {
    let h = start("converse").await;
    let piece = "0123456789abcdef";
    h.fake.enqueue(Scenario {
        // messageStart, then 5 text deltas, then a long silence.
        pause: Some(fake_bedrock::Pause {
            after_events: 6,
            ms: 60_000,
        }),
        ..Scenario::text(piece.repeat(20))
    });
    let mut response = h.post("/v1/messages", &request(true)).send().await.unwrap();
    let id = response.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let mut seen = String::new();
    while seen.matches("text_delta").count() < 5 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);
    let record = h.usage_record(&id).await;
    assert_eq!(record["status"], "client_disconnected", "{record}");
    // "hi" is 1 token by the local estimate; 5 deltas of 16 characters are 20.
    assert_eq!(record["input_tokens"], 1, "{record}");
    assert_eq!(record["output_tokens"], 20, "{record}");
    assert_cost(&record, usd(1, 20, 0, 0, 1.0));
}
