//! The streaming form of a PTC round (ptc.md section 7), replayed from the finished round: each
//! block as a complete start, one delta and a stop; and the `/health/ptc` aggregate (section 15).

use gateway_proto::ptc::v1::HealthRequest;
use serde_json::{Value, json};

use super::config::PtcConfig;
use super::sandbox::Sandbox;
use crate::anthropic::stream::SseEvent;
use crate::convert::response::TokenUsage;
use crate::relay::{SseBody, SseChunk};

/// Events for one content block, buffered form of section 7.
fn block_events(index: usize, block: &Value) -> Vec<SseEvent> {
    let kind = block
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let start = |b: Value| {
        SseEvent::new(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": b}),
        )
    };
    let delta = |d: Value| {
        SseEvent::new(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": d}),
        )
    };
    let mut out = Vec::new();
    match kind {
        "text" => {
            let mut b = block.clone();
            b["text"] = json!("");
            out.push(start(b));
            out.push(delta(json!({"type": "text_delta", "text": block["text"]})));
        }
        "thinking" => {
            out.push(start(
                json!({"type": "thinking", "thinking": "", "signature": ""}),
            ));
            out.push(delta(
                json!({"type": "thinking_delta", "thinking": block["thinking"]}),
            ));
            out.push(delta(
                json!({"type": "signature_delta", "signature": block["signature"]}),
            ));
        }
        "tool_use" | "server_tool_use" => {
            let mut b = block.clone();
            b["input"] = json!({});
            out.push(start(b));
            let input = block.get("input").cloned().unwrap_or(json!({}));
            out.push(delta(
                json!({"type": "input_json_delta", "partial_json": input.to_string()}),
            ));
        }
        _ => out.push(start(block.clone())),
    }
    out.push(SseEvent::new(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    ));
    out
}

/// The whole SSE message for a finished round.
pub fn events(message: &Value, first_input_tokens: u64) -> Vec<SseEvent> {
    let mut start = message.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["stop_sequence"] = Value::Null;
    start["usage"] = json!({"input_tokens": first_input_tokens, "output_tokens": 0,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
    start["container"] = message.get("container").cloned().unwrap_or(Value::Null);
    let mut out = vec![
        SseEvent::new(
            "message_start",
            json!({"type": "message_start", "message": start}),
        ),
        SseEvent::ping(),
    ];
    for (i, block) in message["content"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        out.extend(block_events(i, block));
    }
    out.push(SseEvent::new(
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"],
                         "container": message.get("container").cloned().unwrap_or(Value::Null)},
               "usage": message["usage"]}),
    ));
    out.push(SseEvent::new(
        "message_stop",
        json!({"type": "message_stop"}),
    ));
    out
}

pub fn replay(message: Value, first_input_tokens: u64, usage: TokenUsage) -> SseBody {
    let mut chunks: Vec<SseChunk> = events(&message, first_input_tokens)
        .into_iter()
        .map(|e| SseChunk::Event(e.encode()))
        .collect();
    chunks.push(SseChunk::End(usage));
    Box::pin(futures::stream::iter(chunks))
}

/// ptc-svc `Health` with peers, as the section 15 body and its HTTP status.
pub async fn health(sandbox: &dyn Sandbox, config: &PtcConfig) -> (u16, Value) {
    let checked_at = rfc3339_now();
    match sandbox
        .health(HealthRequest {
            include_peers: true,
        })
        .await
    {
        Ok(h) => {
            let usable = h.replicas.iter().filter(|r| r.usable).count();
            let (status, code) = match usable {
                0 => ("unhealthy", 503),
                n if n == h.replicas.len() => ("healthy", 200),
                _ => ("degraded", 200),
            };
            let replicas: Vec<Value> = h
                .replicas
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id, "docker": r.docker, "docker_version": r.docker_version,
                        "image": r.image, "image_present": r.image_present,
                        "runner_version": r.runner_version, "active_sessions": r.active_sessions,
                        "max_sessions": r.max_sessions, "usable": r.usable, "error": r.error,
                    })
                })
                .collect();
            let limits = h.limits.unwrap_or_default();
            let timeouts = h.timeouts.unwrap_or_default();
            let mut body = json!({
                "status": status, "enabled": true, "replicas": replicas,
                "limits": {"network": limits.network, "read_only_root": limits.read_only_root,
                           "user": limits.user, "memory_bytes": limits.memory_bytes,
                           "cpus": limits.cpus, "pids": limits.pids},
                "timeouts": {"execution_s": timeouts.execution_s,
                             "session_idle_s": timeouts.session_idle_s,
                             "session_max_lifetime_s": timeouts.session_max_lifetime_s},
                "checked_at": checked_at,
            });
            if code == 503 {
                body["error"] = json!("no ptc-svc replica can run code");
            }
            (code, body)
        }
        Err(status) => {
            tracing::warn!(code = ?status.code(), endpoint = ?config.endpoint, "ptc-svc health failed");
            (
                503,
                json!({"status": "unhealthy", "enabled": true, "replicas": [],
                         "error": "ptc-svc unreachable", "checked_at": checked_at}),
            )
        }
    }
}

/// Now as RFC 3339 UTC with second precision (civil-from-days, no date crate needed).
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
