//! The SDK client against the fake Bedrock: the Converse JSON mapping is lossless (what the fake
//! records equals the JSON we started from), streams decode, tiers and ARNs go out right, count
//! tokens works in both forms, and dropping a stream closes the upstream connection.

use super::*;
use aws_credential_types::Credentials;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fake_bedrock::{ContentBlock as FakeBlock, FakeBedrock, Operation, Scenario, Usage};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub(super) const CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
pub(super) const CLAUDE_ARN: &str = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0";

pub(super) fn client_for(url: &str) -> Arc<dyn Bedrock> {
    client_with_read_timeout(url, Duration::from_secs(60))
}

pub(super) fn client_with_read_timeout(url: &str, read_timeout: Duration) -> Arc<dyn Bedrock> {
    let settings = BedrockSettings {
        endpoint_url: Some(url.to_owned()),
        connect_timeout: Duration::from_secs(2),
        read_timeout,
        ..BedrockSettings::new("us-east-1")
    };
    let credentials = Credentials::new("AKIDTEST", "secret", Some("token".into()), None, "test");
    connect_with_credentials(&settings, credentials).unwrap()
}

pub(super) async fn start() -> (FakeBedrock, Arc<dyn Bedrock>) {
    let fake = FakeBedrock::start().await.unwrap();
    let client = client_for(&fake.url());
    (fake, client)
}

pub(super) fn simple_converse(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": [{"text": text}]}], "inferenceConfig": {"maxTokens": 64}})
}

pub(super) fn invoke_body(text: &str) -> Bytes {
    let body = json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]
    });
    Bytes::from(serde_json::to_vec(&body).unwrap())
}

pub(super) fn converse_call(request: Value) -> ConverseCall {
    ConverseCall {
        model_id: CLAUDE.into(),
        request,
        service_tier: None,
    }
}

pub(super) fn invoke_call(text: &str) -> InvokeCall {
    InvokeCall {
        model_id: CLAUDE.into(),
        body: invoke_body(text),
        service_tier: None,
    }
}

/// Every request field and content block the gateway can send.
fn every_block_request() -> Value {
    json!({
        "messages": [
            {"role": "user", "content": [
                {"text": "Look at these"},
                {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
                {"document": {"format": "pdf", "name": "Report (1)", "source": {"bytes": "JVBERi0xLjQK"}}},
                {"document": {"format": "txt", "name": "notes", "source": {"text": "plain notes"}, "context": "ctx", "citations": {"enabled": false}}},
                {"document": {"format": "txt", "name": "joined", "source": {"content": [{"text": "a"}, {"text": "b"}]}}},
                {"guardContent": {"text": {"text": "guarded", "qualifiers": ["query"]}}},
                {"cachePoint": {"type": "default", "ttl": "1h"}}
            ]},
            {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "let me think", "signature": "c2lnbmF0dXJl"}}},
                {"reasoningContent": {"redactedContent": "AAECAwQ="}},
                {"text": "calling tools"},
                {"toolUse": {"toolUseId": "toolu_01", "name": "get_weather", "input": {
                    "city": "Paris", "days": 3, "delta": -2, "temp": -2.5, "ratio": 2.0, "big": 18446744073709551615u64,
                    "nested": {"list": [1, -1, 0.5, true, false, null, "s", [], {}]}
                }}},
                {"toolUse": {"toolUseId": "toolu_02", "name": "lookup", "input": {}}}
            ]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "toolu_01", "status": "success", "content": [
                    {"text": "sunny"},
                    {"json": {"temp": 21, "ok": true, "list": [1.5, -3]}},
                    {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}},
                    {"document": {"format": "txt", "name": "result", "source": {"text": "x"}}}
                ]}},
                {"toolResult": {"toolUseId": "toolu_02", "status": "error", "content": [{"text": "boom"}]}},
                {"text": "Continue"}
            ]}
        ],
        "system": [
            {"text": "You are helpful."},
            {"cachePoint": {"type": "default"}},
            {"guardContent": {"text": {"text": "system guard"}}}
        ],
        "inferenceConfig": {"maxTokens": 4096, "temperature": 1.0, "topP": 0.5, "stopSequences": ["STOP", "\n\nHuman:"]},
        "toolConfig": {
            "tools": [
                {"toolSpec": {"name": "get_weather", "description": "Weather for a city", "inputSchema": {"json": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "description": "City name"}, "days": {"$ref": "#/$defs/days"}},
                    "required": ["city"],
                    "additionalProperties": false,
                    "$defs": {"days": {"type": "integer", "minimum": -5, "maximum": 1.5}}
                }}}},
                {"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
                {"cachePoint": {"type": "default", "ttl": "5m"}}
            ],
            "toolChoice": {"tool": {"name": "get_weather"}}
        },
        "additionalModelRequestFields": {
            "top_k": 5,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "anthropic_beta": ["interleaved-thinking-2025-05-14"]
        },
        "additionalModelResponseFieldPaths": ["/stop_sequence"],
        "serviceTier": {"type": "priority"},
        "outputConfig": {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
            "schema": "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}", "name": "response", "description": "the answer"
        }}}},
        "requestMetadata": {"user_id": "user-1", "team": "x"},
        "performanceConfig": {"latency": "standard"}
    })
}

#[tokio::test]
async fn converse_mapping_is_lossless() {
    let (fake, bedrock) = start().await;
    let request = every_block_request();
    bedrock
        .converse(converse_call(request.clone()))
        .await
        .unwrap();
    bedrock
        .converse_stream(converse_call(request.clone()))
        .await
        .unwrap()
        .for_each(|_| async {})
        .await;
    let recorded = fake.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].operation, Operation::Converse);
    assert_eq!(recorded[1].operation, Operation::ConverseStream);
    for r in &recorded {
        assert_eq!(
            r.body, request,
            "recorded body differs for {:?}",
            r.operation
        );
    }
}

#[tokio::test]
async fn blocks_round_trip_through_sdk_types_without_io() {
    let request = every_block_request();
    let parts = converse_input::to_converse_parts(&request).unwrap();
    let mut messages = Vec::new();
    for m in &parts.messages {
        let content: Vec<Value> = m
            .content
            .iter()
            .map(content_json::content_block_json)
            .collect();
        messages.push(json!({"role": m.role.as_str(), "content": content}));
    }
    assert_eq!(Value::Array(messages), request["messages"]);
}

#[tokio::test]
async fn unsupported_json_is_a_local_400_and_nothing_is_sent() {
    let (fake, bedrock) = start().await;
    let cases = [
        (
            json!({"messages": [], "bogus": 1}),
            "bogus: unsupported field",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"searchResult": {}}]}]}),
            "messages.0.content.0.searchResult: unsupported content block",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": "a", "image": {}}]}]}),
            "messages.0.content.0: expected exactly one member",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": "not base64!"}}}]}]}),
            "messages.0.content.0.image.source.bytes: invalid base64",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"image": {"format": "png", "source": {"s3Location": {"uri": "s3://b/k"}}}}]}]}),
            "messages.0.content.0.image.source.s3Location: unsupported source",
        ),
        (
            json!({"messages": [{"role": "tool", "content": []}]}),
            "messages.0.role: unknown role",
        ),
        (
            json!({"messages": [], "inferenceConfig": {"maxTokens": 1.5}}),
            "inferenceConfig.maxTokens: expected a 32-bit integer",
        ),
        (
            json!({"messages": [], "toolConfig": {"tools": [{"toolSpec": {"name": "x", "inputSchema": {"json": {}}, "strict": true, "x": 1}}]}}),
            "toolConfig.tools.0.toolSpec.x: unsupported field",
        ),
    ];
    for (request, expected) in cases {
        let err = bedrock.converse(converse_call(request)).await.unwrap_err();
        assert_eq!(err.kind, ExceptionKind::Validation);
        assert_eq!(err.message, format!("invalid Converse request: {expected}"));
        let api = err.to_api_error(CLAUDE);
        assert_eq!(api.status.as_u16(), 400);
        assert!(!err.is_service_tier_rejection());
    }
    assert!(fake.requests().is_empty(), "nothing may reach Bedrock");
}

#[tokio::test]
async fn converse_response_json_has_the_wire_shape() {
    let (fake, bedrock) = start().await;
    let mut scenario = Scenario::with_content(vec![
        FakeBlock::thinking("pondering", "sig-1"),
        FakeBlock::text("Hello"),
        FakeBlock::tool_use("toolu_9", "get_weather", json!({"city": "Paris", "n": 2})),
    ]);
    scenario.usage = Some(Usage {
        input_tokens: Some(11),
        output_tokens: Some(7),
        cache_read_input_tokens: Some(3),
        cache_creation_input_tokens: Some(2),
        cache_creation_1h_input_tokens: None,
    });
    fake.enqueue(scenario);
    let call = ConverseCall {
        service_tier: Some("priority".into()),
        ..converse_call(simple_converse("hi"))
    };
    let out = bedrock.converse(call).await.unwrap();
    assert_eq!(out["output"]["message"]["role"], "assistant");
    let content = out["output"]["message"]["content"].as_array().unwrap();
    assert_eq!(
        content[0],
        json!({"reasoningContent": {"reasoningText": {"text": "pondering", "signature": "sig-1"}}})
    );
    assert_eq!(content[1], json!({"text": "Hello"}));
    assert_eq!(
        content[2],
        json!({"toolUse": {"toolUseId": "toolu_9", "name": "get_weather", "input": {"city": "Paris", "n": 2}}})
    );
    assert_eq!(out["stopReason"], "tool_use");
    assert_eq!(
        out["usage"],
        json!({"inputTokens": 11, "outputTokens": 7, "totalTokens": 23, "cacheReadInputTokens": 3, "cacheWriteInputTokens": 2})
    );
    assert!(out["metrics"]["latencyMs"].is_u64());
    assert_eq!(out["serviceTier"], json!({"type": "priority"}));
}

#[tokio::test]
async fn converse_stream_events_have_the_wire_shape() {
    let (fake, bedrock) = start().await;
    fake.enqueue(Scenario::with_content(vec![
        FakeBlock::thinking("hm", "sig-2"),
        FakeBlock::RedactedThinking {
            data: "AAEC".into(),
        },
        FakeBlock::text("Hi there"),
        FakeBlock::tool_use("toolu_5", "lookup", json!({"q": "x"})),
    ]));
    let call = ConverseCall {
        service_tier: Some("flex".into()),
        ..converse_call(simple_converse("hi"))
    };
    let events: Vec<Value> = bedrock
        .converse_stream(call)
        .await
        .unwrap()
        .map(|e| e.unwrap())
        .collect()
        .await;
    assert_eq!(events[0], json!({"messageStart": {"role": "assistant"}}));
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e.as_object().unwrap().keys().next().unwrap().as_str())
        .collect();
    assert_eq!(kinds.last(), Some(&"metadata"));
    assert!(!kinds.contains(&"unknown"), "{kinds:?}");
    let deltas: Vec<&Value> = events
        .iter()
        .filter_map(|e| e.get("contentBlockDelta"))
        .map(|d| &d["delta"])
        .collect();
    assert!(
        deltas.contains(&&json!({"reasoningContent": {"text": "hm"}})),
        "{deltas:?}"
    );
    assert!(deltas.contains(&&json!({"reasoningContent": {"signature": "sig-2"}})));
    assert!(deltas.contains(&&json!({"reasoningContent": {"redactedContent": "AAEC"}})));
    let text: String = deltas.iter().filter_map(|d| d["text"].as_str()).collect();
    assert_eq!(text, "Hi there");
    let tool_json: String = deltas
        .iter()
        .filter_map(|d| d.pointer("/toolUse/input").and_then(Value::as_str))
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&tool_json).unwrap(),
        json!({"q": "x"})
    );
    let start = events
        .iter()
        .find_map(|e| e.get("contentBlockStart"))
        .unwrap();
    assert_eq!(
        start["start"],
        json!({"toolUse": {"toolUseId": "toolu_5", "name": "lookup"}})
    );
    assert!(start["contentBlockIndex"].is_u64());
    let stop = events.iter().find_map(|e| e.get("messageStop")).unwrap();
    assert_eq!(stop["stopReason"], "tool_use");
    let metadata = events.last().unwrap()["metadata"].clone();
    assert!(metadata["usage"]["inputTokens"].is_u64());
    assert!(metadata["metrics"]["latencyMs"].is_u64());
    assert_eq!(metadata["serviceTier"], json!({"type": "flex"}));
    assert_eq!(
        fake.requests()[0].body["serviceTier"],
        json!({"type": "flex"})
    );
}

#[tokio::test]
async fn call_tier_replaces_the_json_tier() {
    let (fake, bedrock) = start().await;
    let mut request = simple_converse("hi");
    request["serviceTier"] = json!({"type": "flex"});
    let call = ConverseCall {
        service_tier: Some("priority".into()),
        ..converse_call(request.clone())
    };
    bedrock.converse(call).await.unwrap();
    bedrock.converse(converse_call(request)).await.unwrap();
    let recorded = fake.requests();
    assert_eq!(recorded[0].body["serviceTier"], json!({"type": "priority"}));
    assert_eq!(recorded[1].body["serviceTier"], json!({"type": "flex"}));
}

#[tokio::test]
async fn invoke_sends_the_body_and_tier_and_reads_the_reported_tier() {
    let (fake, bedrock) = start().await;
    let call = InvokeCall {
        service_tier: Some("priority".into()),
        ..invoke_call("hello")
    };
    let out = bedrock.invoke(call.clone()).await.unwrap();
    let body: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(out.service_tier.as_deref(), Some("priority"));
    let untiered = bedrock.invoke(invoke_call("hello")).await.unwrap();
    assert_eq!(untiered.service_tier, None);
    let recorded = fake.requests();
    let first = &recorded[0];
    assert_eq!(first.operation, Operation::Invoke);
    assert_eq!(
        first.body,
        serde_json::from_slice::<Value>(&call.body).unwrap()
    );
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("accept"), Some("application/json"));
    assert_eq!(
        first.header("x-amzn-bedrock-service-tier"),
        Some("priority")
    );
    assert_eq!(recorded[1].header("x-amzn-bedrock-service-tier"), None);
}

#[tokio::test]
async fn invoke_stream_yields_decoded_anthropic_events() {
    let (fake, bedrock) = start().await;
    fake.enqueue(Scenario::with_content(vec![FakeBlock::text(
        "streamed reply",
    )]));
    let call = InvokeCall {
        service_tier: Some("flex".into()),
        ..invoke_call("hello")
    };
    let stream = bedrock.invoke_stream(call).await.unwrap();
    assert_eq!(stream.service_tier.as_deref(), Some("flex"));
    let events: Vec<Value> = stream.events.map(|e| e.unwrap()).collect().await;
    assert_eq!(events[0]["type"], "message_start");
    assert_eq!(events.last().unwrap()["type"], "message_stop");
    assert!(
        events.iter().all(|e| e.get("p").is_none()),
        "padding is outside the chunk bytes"
    );
    let text: String = events
        .iter()
        .filter_map(|e| e.pointer("/delta/text").and_then(Value::as_str))
        .collect();
    assert_eq!(text, "streamed reply");
    let recorded = &fake.requests()[0];
    assert_eq!(recorded.operation, Operation::InvokeStream);
    assert_eq!(recorded.header("x-amzn-bedrock-service-tier"), Some("flex"));
    // A priority call Bedrock ran on the standard tier reports `default`: that is what is billed.
    fake.enqueue(Scenario {
        served_tier: Some("default".into()),
        ..Scenario::text("overflowed")
    });
    let call = InvokeCall {
        service_tier: Some("priority".into()),
        ..invoke_call("again")
    };
    let stream = bedrock.invoke_stream(call).await.unwrap();
    assert_eq!(stream.service_tier.as_deref(), Some("default"));
    let events: Vec<_> = stream.events.collect().await;
    assert!(events.iter().all(Result::is_ok));
    // No tier asked, none reported.
    let stream = bedrock.invoke_stream(invoke_call("plain")).await.unwrap();
    assert_eq!(stream.service_tier, None);
}

#[tokio::test]
async fn tier_rejection_is_recognized() {
    let (fake, bedrock) = start().await;
    fake.enqueue(Scenario::builtin("tier_reject").unwrap());
    let call = ConverseCall {
        service_tier: Some("flex".into()),
        ..converse_call(simple_converse("hi"))
    };
    let err = bedrock.converse(call.clone()).await.unwrap_err();
    assert_eq!(err.kind, ExceptionKind::Validation);
    assert!(err.is_service_tier_rejection(), "{err:?}");
    // The retry without a tier succeeds on the same scenario.
    let retry = ConverseCall {
        service_tier: None,
        ..call
    };
    assert!(bedrock.converse(retry).await.is_ok());
    fake.enqueue(Scenario::builtin("tier_reject").unwrap());
    let err = bedrock
        .invoke(InvokeCall {
            service_tier: Some("priority".into()),
            ..invoke_call("hi")
        })
        .await
        .unwrap_err();
    assert!(err.is_service_tier_rejection(), "{err:?}");
}

#[tokio::test]
async fn count_tokens_in_both_forms() {
    let (fake, bedrock) = start().await;
    fake.enqueue(Scenario {
        count_tokens: Some(42),
        ..Scenario::default()
    });
    fake.enqueue(Scenario {
        count_tokens: Some(7),
        ..Scenario::default()
    });
    let invoke_input = json!({"invokeModel": {"body": STANDARD.encode(invoke_body("count me"))}});
    let n = bedrock
        .count_tokens(CLAUDE.into(), invoke_input.clone())
        .await
        .unwrap();
    assert_eq!(n, 42);
    let converse_input = json!({"converse": {
        "messages": [{"role": "user", "content": [{"text": "count me too"}]}],
        "system": [{"text": "sys"}],
        "toolConfig": {"tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": {"type": "object"}}}}]},
        "additionalModelRequestFields": {"top_k": 3}
    }});
    let n = bedrock
        .count_tokens(CLAUDE.into(), converse_input.clone())
        .await
        .unwrap();
    assert_eq!(n, 7);
    let recorded = fake.requests();
    assert_eq!(recorded[0].operation, Operation::CountTokens);
    assert_eq!(recorded[0].body, json!({"input": invoke_input}));
    assert_eq!(recorded[1].body, json!({"input": converse_input}));
    let err = bedrock
        .count_tokens(CLAUDE.into(), json!({"other": {}}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ExceptionKind::Validation);
}

#[tokio::test]
async fn arn_model_ids_are_one_encoded_path_segment() {
    let (fake, bedrock) = start().await;
    bedrock
        .converse(ConverseCall {
            model_id: CLAUDE_ARN.into(),
            ..converse_call(simple_converse("hi"))
        })
        .await
        .unwrap();
    bedrock
        .invoke(InvokeCall {
            model_id: CLAUDE_ARN.into(),
            ..invoke_call("hi")
        })
        .await
        .unwrap();
    for r in fake.requests() {
        assert_eq!(r.model_id, CLAUDE_ARN);
        assert!(
            r.path.contains("%3A") && r.path.contains("%2F"),
            "{}",
            r.path
        );
    }
}

#[tokio::test]
async fn requests_are_signed_with_the_given_credentials() {
    let (fake, bedrock) = start().await;
    bedrock
        .converse(converse_call(simple_converse("hi")))
        .await
        .unwrap();
    let r = &fake.requests()[0];
    let auth = r.header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/"),
        "{auth}"
    );
    assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
    assert_eq!(r.header("x-amz-security-token"), Some("token"));
    assert_eq!(r.header("amz-sdk-request"), Some("attempt=1; max=2"));
}

#[tokio::test]
async fn settings_are_validated() {
    let credentials = Credentials::new("a", "b", None, None, "test");
    let bad = BedrockSettings {
        max_attempts: 0,
        ..BedrockSettings::new("us-east-1")
    };
    assert!(connect_with_credentials(&bad, credentials.clone()).is_err());
    assert!(connect_with_credentials(&BedrockSettings::new(" "), credentials).is_err());
}
