//! InvokeModel rendering: the Anthropic message JSON Bedrock returns, and the Anthropic stream events
//! that InvokeModelWithResponseStream wraps (base64) into `chunk` frames.

use serde_json::{Value, json};

use super::{Reply, json_fragments, message_id, text_pieces};
use crate::scenario::ContentBlock;

/// The Anthropic model name Bedrock reports: `global.anthropic.claude-x-20250929-v1:0` -> `claude-x-20250929`.
pub fn anthropic_model_name(model_id: &str) -> String {
    let tail = model_id.rsplit('/').next().unwrap_or(model_id);
    let name = tail.split_once("anthropic.").map_or(tail, |(_, name)| name);
    match name.rfind("-v") {
        Some(at)
            if name[at + 2..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit()) =>
        {
            name[..at].to_owned()
        }
        _ => name.to_owned(),
    }
}

/// The InvokeModel JSON response body.
pub fn response_json(reply: &Reply) -> Value {
    let content: Vec<Value> = reply.content.iter().map(full_block).collect();
    json!({
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": anthropic_model_name(&reply.model_id),
        "content": content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": usage_json(reply, reply.usage.output_tokens),
    })
}

/// Anthropic usage; Claude adds `cache_creation` per TTL when the scenario reports TTLs.
fn usage_json(reply: &Reply, output_tokens: u64) -> Value {
    let usage = reply.usage;
    let mut out = json!({
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "output_tokens": output_tokens,
    });
    if let (Some((five_minutes, one_hour)), Some(o)) =
        (usage.cache_creation_by_ttl(), out.as_object_mut())
    {
        o.insert(
            "cache_creation".into(),
            json!({"ephemeral_5m_input_tokens": five_minutes, "ephemeral_1h_input_tokens": one_hour}),
        );
    }
    out
}

/// The Anthropic stream events, message_start to message_stop (with invocation metrics).
pub fn stream_events(reply: &Reply) -> Vec<Value> {
    let usage = reply.usage;
    let mut events = vec![json!({
        "type": "message_start",
        "message": {
            "id": message_id(),
            "type": "message",
            "role": "assistant",
            "model": anthropic_model_name(&reply.model_id),
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": usage_json(reply, 1),
        },
    })];
    for (index, block) in reply.content.iter().enumerate() {
        let delta =
            |delta: Value| json!({"type": "content_block_delta", "index": index, "delta": delta});
        let start = |block: Value| json!({"type": "content_block_start", "index": index, "content_block": block});
        match block {
            ContentBlock::Text { text } => {
                events.push(start(json!({"type": "text", "text": ""})));
                events.extend(
                    text_pieces(text)
                        .into_iter()
                        .map(|piece| delta(json!({"type": "text_delta", "text": piece}))),
                );
            }
            ContentBlock::Thinking {
                thinking,
                signature,
            } => {
                events.push(start(
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                ));
                events.extend(
                    text_pieces(thinking)
                        .into_iter()
                        .map(|piece| delta(json!({"type": "thinking_delta", "thinking": piece}))),
                );
                if let Some(signature) = signature {
                    events.push(delta(
                        json!({"type": "signature_delta", "signature": signature}),
                    ));
                }
            }
            ContentBlock::RedactedThinking { data } => {
                events.push(start(json!({"type": "redacted_thinking", "data": data})));
            }
            ContentBlock::ToolUse { id, name, input } => {
                events.push(start(
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                ));
                events.extend(
                    json_fragments(&input.to_string())
                        .into_iter()
                        .map(|fragment| {
                            delta(json!({"type": "input_json_delta", "partial_json": fragment}))
                        }),
                );
            }
        }
        events.push(json!({"type": "content_block_stop", "index": index}));
    }
    events.push(json!({
        "type": "message_delta",
        "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
        "usage": {"output_tokens": usage.output_tokens},
    }));
    events.push(json!({
        "type": "message_stop",
        "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": usage.input_tokens,
            "outputTokenCount": usage.output_tokens,
            "invocationLatency": reply.latency_ms,
            "firstByteLatency": reply.latency_ms,
        },
    }));
    events
}

fn full_block(block: &ContentBlock) -> Value {
    match block {
        ContentBlock::Text { text } => json!({"type": "text", "text": text}),
        ContentBlock::Thinking {
            thinking,
            signature,
        } => {
            json!({"type": "thinking", "thinking": thinking, "signature": signature.clone().unwrap_or_default()})
        }
        ContentBlock::RedactedThinking { data } => {
            json!({"type": "redacted_thinking", "data": data})
        }
        ContentBlock::ToolUse { id, name, input } => {
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestView;
    use crate::scenario::Scenario;

    #[test]
    fn names_the_anthropic_model() {
        assert_eq!(
            anthropic_model_name("global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            "claude-sonnet-4-5-20250929"
        );
        assert_eq!(
            anthropic_model_name("anthropic.claude-3-haiku-20240307-v1:0"),
            "claude-3-haiku-20240307"
        );
        assert_eq!(
            anthropic_model_name(
                "arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-opus-4-1-20250805-v1:0"
            ),
            "claude-opus-4-1-20250805"
        );
    }

    #[test]
    fn stream_events_follow_anthropic_order() {
        let scenario = Scenario::with_content(vec![
            ContentBlock::thinking("think", "sig"),
            ContentBlock::RedactedThinking {
                data: "AAEC".into(),
            },
            ContentBlock::tool_use("toolu_1", "Bash", json!({"command": "ls"})),
        ]);
        let reply = Reply::resolve(
            &scenario,
            &RequestView::default(),
            "anthropic.claude-x-v1:0",
        );
        let events = stream_events(&reply);
        let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(types.first(), Some(&"message_start"));
        assert_eq!(
            &types[types.len() - 2..],
            &["message_delta", "message_stop"]
        );
        assert!(
            events
                .iter()
                .any(|e| e["delta"]["type"] == "signature_delta")
        );
        assert!(
            events
                .iter()
                .any(|e| e["content_block"]["type"] == "redacted_thinking")
        );
        assert!(
            events
                .iter()
                .filter(|e| e["delta"]["type"] == "input_json_delta")
                .count()
                >= 2
        );
        assert_eq!(events[events.len() - 2]["delta"]["stop_reason"], "tool_use");
        assert!(
            events[events.len() - 1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"]
                .is_u64()
        );
        let body = response_json(&reply);
        assert!(
            body["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("msg_bdrk_"))
        );
        assert_eq!(body["content"][0]["signature"], "sig");
    }
}
