//! SDK Converse output back to the Converse JSON on the wire: the non-streaming response body,
//! and each ConverseStream event as `{"<eventType>": <payload>}`. Blobs become base64 strings.
//! Members the gateway does not consume (guardrail traces, citation/image deltas) are reduced to
//! their key so the shape stays recognizable.

use super::content_json::content_block_json;
use super::document::to_json;
use super::json::base64;
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput as ConverseResponse;
use aws_sdk_bedrockruntime::types::{
    ContentBlockDelta, ContentBlockStart, ConverseOutput, ConverseStreamOutput,
    PerformanceConfiguration, ReasoningContentBlockDelta, ServiceTier, TokenUsage,
};
use serde_json::{Map, Value, json};

/// The Converse response JSON, as the HTTP API returns it.
pub(crate) fn converse_response_json(out: &ConverseResponse) -> Value {
    let mut o = Map::new();
    if let Some(output) = &out.output {
        o.insert("output".into(), output_json(output));
    }
    o.insert("stopReason".into(), json!(out.stop_reason.as_str()));
    if let Some(usage) = &out.usage {
        o.insert("usage".into(), usage_json(usage));
    }
    if let Some(metrics) = &out.metrics {
        o.insert("metrics".into(), json!({ "latencyMs": metrics.latency_ms }));
    }
    if let Some(fields) = &out.additional_model_response_fields {
        o.insert("additionalModelResponseFields".into(), to_json(fields));
    }
    if let Some(p) = &out.performance_config {
        o.insert("performanceConfig".into(), performance_json(p));
    }
    if let Some(tier) = &out.service_tier {
        o.insert("serviceTier".into(), service_tier_json(tier));
    }
    Value::Object(o)
}

fn output_json(output: &ConverseOutput) -> Value {
    match output {
        ConverseOutput::Message(m) => {
            let content: Vec<Value> = m.content.iter().map(content_block_json).collect();
            json!({ "message": { "role": m.role.as_str(), "content": content } })
        }
        other => {
            tracing::warn!(output = ?other, "unknown Converse output member");
            json!({ "unknown": {} })
        }
    }
}

fn usage_json(u: &TokenUsage) -> Value {
    let mut o = Map::new();
    o.insert("inputTokens".into(), json!(u.input_tokens));
    o.insert("outputTokens".into(), json!(u.output_tokens));
    o.insert("totalTokens".into(), json!(u.total_tokens));
    if let Some(n) = u.cache_read_input_tokens {
        o.insert("cacheReadInputTokens".into(), json!(n));
    }
    if let Some(n) = u.cache_write_input_tokens {
        o.insert("cacheWriteInputTokens".into(), json!(n));
    }
    if let Some(details) = &u.cache_details {
        let details: Vec<Value> = details
            .iter()
            .map(|d| json!({ "ttl": d.ttl.as_str(), "inputTokens": d.input_tokens }))
            .collect();
        o.insert("cacheDetails".into(), Value::Array(details));
    }
    Value::Object(o)
}

fn service_tier_json(tier: &ServiceTier) -> Value {
    json!({ "type": tier.r#type.as_str() })
}

fn performance_json(p: &PerformanceConfiguration) -> Value {
    json!({ "latency": p.latency.as_str() })
}

/// One ConverseStream event as `{"<eventType>": <payload as on the wire>}`.
pub(crate) fn stream_event_json(event: &ConverseStreamOutput) -> Value {
    match event {
        ConverseStreamOutput::MessageStart(e) => {
            json!({ "messageStart": { "role": e.role.as_str() } })
        }
        ConverseStreamOutput::ContentBlockStart(e) => {
            let mut o = Map::new();
            o.insert("contentBlockIndex".into(), json!(e.content_block_index));
            if let Some(start) = &e.start {
                o.insert("start".into(), block_start_json(start));
            }
            json!({ "contentBlockStart": o })
        }
        ConverseStreamOutput::ContentBlockDelta(e) => {
            let mut o = Map::new();
            o.insert("contentBlockIndex".into(), json!(e.content_block_index));
            if let Some(delta) = &e.delta {
                o.insert("delta".into(), delta_json(delta));
            }
            json!({ "contentBlockDelta": o })
        }
        ConverseStreamOutput::ContentBlockStop(e) => {
            json!({ "contentBlockStop": { "contentBlockIndex": e.content_block_index } })
        }
        ConverseStreamOutput::MessageStop(e) => {
            let mut o = Map::new();
            o.insert("stopReason".into(), json!(e.stop_reason.as_str()));
            if let Some(fields) = &e.additional_model_response_fields {
                o.insert("additionalModelResponseFields".into(), to_json(fields));
            }
            json!({ "messageStop": o })
        }
        ConverseStreamOutput::Metadata(e) => {
            let mut o = Map::new();
            if let Some(usage) = &e.usage {
                o.insert("usage".into(), usage_json(usage));
            }
            if let Some(metrics) = &e.metrics {
                o.insert("metrics".into(), json!({ "latencyMs": metrics.latency_ms }));
            }
            if let Some(p) = &e.performance_config {
                o.insert("performanceConfig".into(), performance_json(p));
            }
            if let Some(tier) = &e.service_tier {
                o.insert("serviceTier".into(), service_tier_json(tier));
            }
            json!({ "metadata": o })
        }
        other => {
            tracing::warn!(event = ?other, "unknown ConverseStream event");
            json!({ "unknown": {} })
        }
    }
}

fn block_start_json(start: &ContentBlockStart) -> Value {
    match start {
        ContentBlockStart::ToolUse(t) => {
            let mut o = Map::new();
            o.insert("toolUseId".into(), json!(t.tool_use_id));
            o.insert("name".into(), json!(t.name));
            if let Some(kind) = &t.r#type {
                o.insert("type".into(), json!(kind.as_str()));
            }
            json!({ "toolUse": o })
        }
        ContentBlockStart::Image(i) => json!({ "image": { "format": i.format.as_str() } }),
        ContentBlockStart::ToolResult(r) => {
            let mut o = Map::new();
            o.insert("toolUseId".into(), json!(r.tool_use_id));
            if let Some(kind) = &r.r#type {
                o.insert("type".into(), json!(kind));
            }
            if let Some(status) = &r.status {
                o.insert("status".into(), json!(status.as_str()));
            }
            json!({ "toolResult": o })
        }
        other => {
            tracing::warn!(start = ?other, "unknown content block start");
            json!({ "unknown": {} })
        }
    }
}

fn delta_json(delta: &ContentBlockDelta) -> Value {
    match delta {
        ContentBlockDelta::Text(t) => json!({ "text": t }),
        ContentBlockDelta::ToolUse(t) => json!({ "toolUse": { "input": t.input } }),
        ContentBlockDelta::ReasoningContent(r) => match r {
            ReasoningContentBlockDelta::Text(t) => json!({ "reasoningContent": { "text": t } }),
            ReasoningContentBlockDelta::Signature(s) => {
                json!({ "reasoningContent": { "signature": s } })
            }
            ReasoningContentBlockDelta::RedactedContent(b) => {
                json!({ "reasoningContent": { "redactedContent": base64(b) } })
            }
            other => {
                tracing::warn!(delta = ?other, "unknown reasoning delta");
                json!({ "reasoningContent": { "unknown": {} } })
            }
        },
        // Consumers ignore these (spec 13.4); only the member name is kept.
        ContentBlockDelta::Citation(_) => json!({ "citation": {} }),
        ContentBlockDelta::Image(_) => json!({ "image": {} }),
        ContentBlockDelta::ToolResult(_) => json!({ "toolResult": [] }),
        other => {
            tracing::warn!(delta = ?other, "unknown content block delta");
            json!({ "unknown": {} })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_bedrockruntime::types::{
        ContentBlockDeltaEvent, ContentBlockStartEvent, ContentBlockStopEvent, ConversationRole,
        ConverseStreamMetadataEvent, ConverseStreamMetrics, MessageStartEvent, MessageStopEvent,
        ServiceTierType, StopReason, ToolUseBlockDelta, ToolUseBlockStart,
    };
    use aws_smithy_types::Blob;

    #[test]
    fn stream_events_have_wire_shapes() {
        let events = [
            ConverseStreamOutput::MessageStart(
                MessageStartEvent::builder()
                    .role(ConversationRole::Assistant)
                    .build()
                    .unwrap(),
            ),
            ConverseStreamOutput::ContentBlockStart(
                ContentBlockStartEvent::builder()
                    .content_block_index(1)
                    .start(ContentBlockStart::ToolUse(
                        ToolUseBlockStart::builder()
                            .tool_use_id("t1")
                            .name("get")
                            .build()
                            .unwrap(),
                    ))
                    .build()
                    .unwrap(),
            ),
            ConverseStreamOutput::ContentBlockDelta(
                ContentBlockDeltaEvent::builder()
                    .content_block_index(0)
                    .delta(ContentBlockDelta::Text("Hi".into()))
                    .build()
                    .unwrap(),
            ),
            ConverseStreamOutput::ContentBlockDelta(
                ContentBlockDeltaEvent::builder()
                    .content_block_index(0)
                    .delta(ContentBlockDelta::ReasoningContent(
                        ReasoningContentBlockDelta::RedactedContent(Blob::new(
                            b"\x00\xff".to_vec(),
                        )),
                    ))
                    .build()
                    .unwrap(),
            ),
            ConverseStreamOutput::ContentBlockDelta(
                ContentBlockDeltaEvent::builder()
                    .content_block_index(1)
                    .delta(ContentBlockDelta::ToolUse(
                        ToolUseBlockDelta::builder()
                            .input("{\"a\":")
                            .build()
                            .unwrap(),
                    ))
                    .build()
                    .unwrap(),
            ),
            ConverseStreamOutput::ContentBlockStop(
                ContentBlockStopEvent::builder()
                    .content_block_index(1)
                    .build()
                    .unwrap(),
            ),
            ConverseStreamOutput::MessageStop(
                MessageStopEvent::builder()
                    .stop_reason(StopReason::ToolUse)
                    .additional_model_response_fields(super::super::document::to_document(
                        &json!({"stop_sequence": null}),
                    ))
                    .build()
                    .unwrap(),
            ),
            ConverseStreamOutput::Metadata(
                ConverseStreamMetadataEvent::builder()
                    .usage(
                        TokenUsage::builder()
                            .input_tokens(10)
                            .output_tokens(5)
                            .total_tokens(15)
                            .cache_read_input_tokens(3)
                            .build()
                            .unwrap(),
                    )
                    .metrics(
                        ConverseStreamMetrics::builder()
                            .latency_ms(42)
                            .build()
                            .unwrap(),
                    )
                    .service_tier(
                        ServiceTier::builder()
                            .r#type(ServiceTierType::Priority)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            ),
        ];
        let got: Vec<Value> = events.iter().map(stream_event_json).collect();
        assert_eq!(
            got,
            vec![
                json!({"messageStart":{"role":"assistant"}}),
                json!({"contentBlockStart":{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"t1","name":"get"}}}}),
                json!({"contentBlockDelta":{"contentBlockIndex":0,"delta":{"text":"Hi"}}}),
                json!({"contentBlockDelta":{"contentBlockIndex":0,"delta":{"reasoningContent":{"redactedContent":"AP8="}}}}),
                json!({"contentBlockDelta":{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"a\":"}}}}),
                json!({"contentBlockStop":{"contentBlockIndex":1}}),
                json!({"messageStop":{"stopReason":"tool_use","additionalModelResponseFields":{"stop_sequence":null}}}),
                json!({"metadata":{"usage":{"inputTokens":10,"outputTokens":5,"totalTokens":15,"cacheReadInputTokens":3},"metrics":{"latencyMs":42},"serviceTier":{"type":"priority"}}}),
            ]
        );
    }
}
