//! InvokeModel and InvokeModelWithResponseStream through the real SDK (and raw HTTP for the response
//! headers the SDK does not expose).

use aws_sdk_bedrockruntime::types::{ResponseStream, ServiceTierType};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fake_bedrock::eventstream::decode_all;
use fake_bedrock::{ContentBlock, FakeBedrock, Scenario};
use serde_json::{Value, json};

use crate::common::{CLAUDE, CLAUDE_ARN, client, invoke_body, post_raw, to_blob};

/// Every Anthropic event of an InvokeModelWithResponseStream call.
async fn invoke_events(fake: &FakeBedrock, model: &str, body: &Value) -> Vec<Value> {
    let mut call = client(fake)
        .invoke_model_with_response_stream()
        .model_id(model)
        .content_type("application/json")
        .body(to_blob(body))
        .send()
        .await
        .expect("stream starts");
    let mut events = Vec::new();
    while let Some(event) = call.body.recv().await.expect("stream continues") {
        let ResponseStream::Chunk(part) = event else {
            panic!("unexpected {event:?}")
        };
        let bytes = part.bytes().expect("chunk has bytes");
        events.push(serde_json::from_slice(bytes.as_ref()).expect("chunk is JSON"));
    }
    events
}

#[tokio::test]
async fn invoke_returns_the_anthropic_message() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    fake.enqueue(Scenario::with_content(vec![
        ContentBlock::thinking("pondering", "sig-1"),
        ContentBlock::text("answer"),
    ]));
    let out = client(&fake)
        .invoke_model()
        .model_id(CLAUDE)
        .content_type("application/json")
        .accept("application/json")
        .service_tier(ServiceTierType::Priority)
        .body(to_blob(&invoke_body("hello there")))
        .send()
        .await
        .expect("invoke succeeds");
    assert_eq!(out.service_tier(), Some(&ServiceTierType::Priority));
    let message: Value = serde_json::from_slice(out.body().as_ref()).expect("JSON body");
    assert!(
        message["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("msg_bdrk_"))
    );
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(
        message["content"][0],
        json!({"type": "thinking", "thinking": "pondering", "signature": "sig-1"})
    );
    assert_eq!(
        message["content"][1],
        json!({"type": "text", "text": "answer"})
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["stop_sequence"], Value::Null);
    assert_eq!(message["usage"]["input_tokens"], 2);
    assert!(
        message["usage"]["output_tokens"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    );
    let recorded = fake.requests();
    assert_eq!(
        recorded[0].header("x-amzn-bedrock-service-tier"),
        Some("priority")
    );
}

#[tokio::test]
async fn invoke_sends_bedrock_response_headers() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let mut body = invoke_body("[[fake:cache]]");
    body["max_tokens"] = json!(10);
    let response = reqwest::Client::new()
        .post(format!(
            "{}/model/{}/invoke",
            fake.url(),
            CLAUDE.replace(':', "%3A")
        ))
        .header("x-amzn-bedrock-service-tier", "flex")
        .body(body.to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header("x-amzn-bedrock-input-token-count").as_deref(),
        Some("12")
    );
    assert!(header("x-amzn-bedrock-output-token-count").is_some());
    assert!(header("x-amzn-bedrock-invocation-latency").is_some());
    assert_eq!(
        header("x-amzn-bedrock-service-tier").as_deref(),
        Some("flex")
    );
    assert!(header("x-amzn-requestid").is_some_and(|id| id.len() == 36));
    let message: Value = response.json().await.expect("JSON");
    assert_eq!(message["usage"]["cache_read_input_tokens"], 1800);
    assert_eq!(message["usage"]["cache_creation_input_tokens"], 600);
    let plain = post_raw(
        &fake,
        &format!("/model/{CLAUDE}/invoke"),
        &invoke_body("hi"),
    )
    .await;
    assert!(plain.headers().get("x-amzn-bedrock-service-tier").is_none());
}

#[tokio::test]
async fn invoke_stream_wraps_anthropic_events_in_chunks() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    fake.enqueue(Scenario::with_content(vec![
        ContentBlock::thinking("a thought that needs more than one delta", "sig-xyz"),
        ContentBlock::RedactedThinking {
            data: "cmVkYWN0ZWQ=".into(),
        },
        ContentBlock::text("streamed text answer, long enough to split"),
        ContentBlock::tool_use("toolu_bdrk_7", "Read", json!({"file_path": "/tmp/a.txt"})),
    ]));
    let events = invoke_events(&fake, CLAUDE_ARN, &invoke_body("hi")).await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types.first(), Some(&"message_start"));
    assert_eq!(
        &types[types.len() - 2..],
        &["message_delta", "message_stop"]
    );
    let start = &events[0]["message"];
    assert!(
        start["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("msg_bdrk_"))
    );
    assert!(start["usage"]["input_tokens"].is_u64());
    assert!(start["usage"]["cache_read_input_tokens"].is_u64());
    let joined = |kind: &str, field: &str| -> String {
        events
            .iter()
            .filter(|e| e["delta"]["type"] == kind)
            .filter_map(|e| e["delta"][field].as_str())
            .collect()
    };
    assert_eq!(
        joined("thinking_delta", "thinking"),
        "a thought that needs more than one delta"
    );
    assert_eq!(joined("signature_delta", "signature"), "sig-xyz");
    assert_eq!(
        joined("text_delta", "text"),
        "streamed text answer, long enough to split"
    );
    assert!(
        events
            .iter()
            .filter(|e| e["delta"]["type"] == "input_json_delta")
            .count()
            >= 2
    );
    assert_eq!(
        serde_json::from_str::<Value>(&joined("input_json_delta", "partial_json")).ok(),
        Some(json!({"file_path": "/tmp/a.txt"}))
    );
    let redacted = events
        .iter()
        .find(|e| e["content_block"]["type"] == "redacted_thinking")
        .expect("redacted start");
    assert_eq!(redacted["content_block"]["data"], "cmVkYWN0ZWQ=");
    assert_eq!(redacted["index"], 1);
    let tool_start = events
        .iter()
        .find(|e| e["content_block"]["type"] == "tool_use")
        .expect("tool start");
    assert_eq!(
        tool_start["content_block"],
        json!({"type": "tool_use", "id": "toolu_bdrk_7", "name": "Read", "input": {}})
    );
    let delta = &events[events.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert!(delta["usage"]["output_tokens"].is_u64());
    let metrics = &events[events.len() - 1]["amazon-bedrock-invocationMetrics"];
    for key in [
        "inputTokenCount",
        "outputTokenCount",
        "invocationLatency",
        "firstByteLatency",
    ] {
        assert!(metrics[key].is_u64(), "{key} missing");
    }
    assert_eq!(fake.requests()[0].model_id, CLAUDE_ARN);
    assert!(fake.requests()[0].path.contains("%2Fus.anthropic"));
}

#[tokio::test]
async fn invoke_stream_wire_format_has_padding_and_headers() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let response = post_raw(
        &fake,
        &format!("/model/{CLAUDE}/invoke-with-response-stream"),
        &invoke_body("hi"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header("content-type").as_deref(),
        Some("application/vnd.amazon.eventstream")
    );
    assert_eq!(
        header("x-amzn-bedrock-content-type").as_deref(),
        Some("application/json")
    );
    assert!(header("content-length").is_none(), "streams are chunked");
    let frames = decode_all(&response.bytes().await.expect("body")).expect("valid frames");
    assert!(
        frames
            .iter()
            .all(|f| f.header(":event-type") == Some("chunk")
                && f.header(":message-type") == Some("event"))
    );
    assert!(
        frames
            .iter()
            .all(|f| f.payload["p"].as_str().is_some_and(|p| !p.is_empty()))
    );
    let first: Value = serde_json::from_slice(
        &STANDARD
            .decode(frames[0].payload["bytes"].as_str().expect("bytes"))
            .expect("base64"),
    )
    .expect("json");
    assert_eq!(first["type"], "message_start");
}

#[tokio::test]
async fn converse_stream_wire_format_has_padding() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let body = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    let response = post_raw(&fake, &format!("/model/{CLAUDE}/converse-stream"), &body).await;
    let frames = decode_all(&response.bytes().await.expect("body")).expect("valid frames");
    let names: Vec<&str> = frames
        .iter()
        .filter_map(|f| f.header(":event-type"))
        .collect();
    assert_eq!(names.first(), Some(&"messageStart"));
    assert_eq!(&names[names.len() - 2..], &["messageStop", "metadata"]);
    assert!(frames.iter().all(
        |f| f.payload["p"].is_string() && f.header(":content-type") == Some("application/json")
    ));
}
