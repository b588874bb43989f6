//! Converse rendering: the non-stream JSON response and the ConverseStream event sequence (messageStart,
//! contentBlockStart for tool use only, deltas, contentBlockStop, messageStop, then metadata).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::{Reply, json_fragments, text_pieces};
use crate::scenario::ContentBlock;

/// The Converse JSON response body.
pub fn response_json(reply: &Reply) -> Value {
    let content: Vec<Value> = reply.content.iter().map(output_block).collect();
    let mut body = Map::new();
    body.insert(
        "output".into(),
        json!({"message": {"role": "assistant", "content": content}}),
    );
    body.insert(
        "stopReason".into(),
        Value::String(reply.stop_reason.clone()),
    );
    body.insert("usage".into(), usage(reply));
    body.insert("metrics".into(), json!({"latencyMs": reply.latency_ms}));
    if let Some(fields) = additional_response_fields(reply) {
        body.insert("additionalModelResponseFields".into(), fields);
    }
    if let Some(tier) = &reply.service_tier {
        body.insert("serviceTier".into(), json!({"type": tier}));
    }
    Value::Object(body)
}

/// The ConverseStream events as `(event type, payload)`, without padding.
pub fn stream_events(reply: &Reply, omit_metadata: bool) -> Vec<(&'static str, Value)> {
    let mut events = vec![("messageStart", json!({"role": "assistant"}))];
    for (index, block) in reply.content.iter().enumerate() {
        let delta = |delta: Value| {
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": index, "delta": delta}),
            )
        };
        match block {
            ContentBlock::Text { text } => {
                events.extend(
                    text_pieces(text)
                        .into_iter()
                        .map(|piece| delta(json!({"text": piece}))),
                );
            }
            ContentBlock::Thinking {
                thinking,
                signature,
            } => {
                events.extend(
                    text_pieces(thinking)
                        .into_iter()
                        .map(|piece| delta(json!({"reasoningContent": {"text": piece}}))),
                );
                if let Some(signature) = signature {
                    events.push(delta(json!({"reasoningContent": {"signature": signature}})));
                }
            }
            ContentBlock::RedactedThinking { data } => {
                events.push(delta(
                    json!({"reasoningContent": {"redactedContent": blob(data)}}),
                ));
            }
            ContentBlock::ToolUse { id, name, input } => {
                events.push((
                    "contentBlockStart",
                    json!({"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": id, "name": name}}}),
                ));
                events.extend(
                    json_fragments(&input.to_string())
                        .into_iter()
                        .map(|fragment| delta(json!({"toolUse": {"input": fragment}}))),
                );
            }
        }
        events.push(("contentBlockStop", json!({"contentBlockIndex": index})));
    }
    let mut stop = Map::new();
    stop.insert(
        "stopReason".into(),
        Value::String(reply.stop_reason.clone()),
    );
    if let Some(fields) = additional_response_fields(reply) {
        stop.insert("additionalModelResponseFields".into(), fields);
    }
    events.push(("messageStop", Value::Object(stop)));
    if !omit_metadata {
        let mut metadata = Map::new();
        metadata.insert("usage".into(), usage(reply));
        metadata.insert("metrics".into(), json!({"latencyMs": reply.latency_ms}));
        if let Some(tier) = &reply.service_tier {
            metadata.insert("serviceTier".into(), json!({"type": tier}));
        }
        events.push(("metadata", Value::Object(metadata)));
    }
    events
}

fn output_block(block: &ContentBlock) -> Value {
    match block {
        ContentBlock::Text { text } => json!({"text": text}),
        ContentBlock::Thinking {
            thinking,
            signature,
        } => {
            let mut reasoning = Map::new();
            reasoning.insert("text".into(), Value::String(thinking.clone()));
            if let Some(signature) = signature {
                reasoning.insert("signature".into(), Value::String(signature.clone()));
            }
            json!({"reasoningContent": {"reasoningText": reasoning}})
        }
        ContentBlock::RedactedThinking { data } => {
            json!({"reasoningContent": {"redactedContent": blob(data)}})
        }
        ContentBlock::ToolUse { id, name, input } => {
            json!({"toolUse": {"toolUseId": id, "name": name, "input": input}})
        }
    }
}

/// Converse blobs are base64 in JSON; scenario data that is not base64 is encoded as its UTF-8 bytes.
fn blob(data: &str) -> String {
    if STANDARD.decode(data).is_ok() {
        data.to_owned()
    } else {
        STANDARD.encode(data.as_bytes())
    }
}

fn usage(reply: &Reply) -> Value {
    let usage = reply.usage;
    let mut out = json!({
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.input_tokens + usage.output_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens,
        "cacheReadInputTokens": usage.cache_read_input_tokens,
        "cacheWriteInputTokens": usage.cache_creation_input_tokens,
    });
    // Cache writes per TTL (`CacheDetail`), one entry per TTL that was written.
    if let (Some((five_minutes, one_hour)), Some(o)) =
        (usage.cache_creation_by_ttl(), out.as_object_mut())
    {
        let details: Vec<Value> = [("5m", five_minutes), ("1h", one_hour)]
            .into_iter()
            .filter(|(_, tokens)| *tokens > 0)
            .map(|(ttl, tokens)| json!({"ttl": ttl, "inputTokens": tokens}))
            .collect();
        o.insert("cacheDetails".into(), Value::Array(details));
    }
    out
}

/// Claude reports the matched stop sequence only when `/stop_sequence` was requested.
fn additional_response_fields(reply: &Reply) -> Option<Value> {
    (reply.stop_reason == "stop_sequence" && reply.is_claude() && reply.wants_stop_sequence_field)
        .then(|| json!({"stop_sequence": reply.stop_sequence}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestView;
    use crate::scenario::Scenario;

    fn reply(scenario: &Scenario) -> Reply {
        let view = RequestView {
            wants_stop_sequence_field: true,
            service_tier: Some("priority".into()),
            ..RequestView::default()
        };
        Reply::resolve(
            scenario,
            &view,
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        )
    }

    #[test]
    fn response_has_bedrock_shape() {
        let scenario = Scenario {
            stop_reason: Some("stop_sequence".into()),
            stop_sequence: Some("END".into()),
            ..Scenario::with_content(vec![
                ContentBlock::thinking("hmm", "sig"),
                ContentBlock::RedactedThinking {
                    data: "AAEC".into(),
                },
                ContentBlock::text("hi"),
            ])
        };
        let body = response_json(&reply(&scenario));
        let content = &body["output"]["message"]["content"];
        assert_eq!(
            content[0]["reasoningContent"]["reasoningText"]["signature"],
            "sig"
        );
        assert_eq!(content[1]["reasoningContent"]["redactedContent"], "AAEC");
        assert_eq!(content[2]["text"], "hi");
        assert_eq!(body["stopReason"], "stop_sequence");
        assert_eq!(
            body["additionalModelResponseFields"]["stop_sequence"],
            "END"
        );
        assert_eq!(body["serviceTier"]["type"], "priority");
        assert!(body["usage"]["totalTokens"].as_u64().is_some());
    }

    #[test]
    fn stream_starts_only_tool_blocks_and_ends_with_metadata() {
        let scenario = Scenario::with_content(vec![
            ContentBlock::text("a text longer than sixteen characters"),
            ContentBlock::tool_use("toolu_1", "Bash", json!({"command": "echo hi"})),
        ]);
        let events = stream_events(&reply(&scenario), false);
        let names: Vec<&str> = events.iter().map(|(name, _)| *name).collect();
        assert_eq!(names.first(), Some(&"messageStart"));
        assert_eq!(
            names.iter().filter(|n| **n == "contentBlockStart").count(),
            1
        );
        assert_eq!(&names[names.len() - 2..], &["messageStop", "metadata"]);
        let fragments: String = events
            .iter()
            .filter_map(|(_, payload)| {
                payload
                    .pointer("/delta/toolUse/input")
                    .and_then(Value::as_str)
            })
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&fragments).ok(),
            Some(json!({"command": "echo hi"}))
        );
        let without = stream_events(&reply(&scenario), true);
        assert_eq!(without.last().map(|(name, _)| *name), Some("messageStop"));
    }
}
