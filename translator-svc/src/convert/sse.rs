//! SSE encoding of Anthropic stream events (spec 13.1, 20), plus the strict decoder and the
//! ordering invariants both SDKs rely on, so golden, property and end-to-end tests check the same
//! rules. Pure.

use serde_json::Value;

use crate::anthropic::stream::{MessageStreamEvent, SseEvent};
use crate::convert::response::to_json;

impl From<MessageStreamEvent> for SseEvent {
    fn from(event: MessageStreamEvent) -> Self {
        SseEvent::new(event.type_name(), to_json(&event))
    }
}

/// Encodes events back to back, as the client receives them.
pub fn encode_all(events: &[SseEvent]) -> String {
    events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.encode()).into_owned())
        .collect()
}

/// Decodes the exact framing this gateway writes: every frame is `event: <type>\ndata: <json>`
/// followed by a blank line. Anything else (a missing `event:` line, extra lines) is an error.
pub fn parse(text: &str) -> Result<Vec<SseEvent>, String> {
    let Some(body) = text.strip_suffix("\n\n") else {
        return if text.is_empty() {
            Ok(Vec::new())
        } else {
            Err("stream does not end with a blank line".into())
        };
    };
    body.split("\n\n")
        .enumerate()
        .map(|(i, frame)| {
            let mut lines = frame.split('\n');
            let (Some(event_line), Some(data_line), None) =
                (lines.next(), lines.next(), lines.next())
            else {
                return Err(format!(
                    "frame {i}: expected exactly an event and a data line"
                ));
            };
            let event = event_line
                .strip_prefix("event: ")
                .ok_or_else(|| format!("frame {i}: missing `event:` line"))?;
            let data = data_line
                .strip_prefix("data: ")
                .ok_or_else(|| format!("frame {i}: missing `data:` line"))?;
            let data: Value = serde_json::from_str(data)
                .map_err(|e| format!("frame {i}: data is not JSON: {e}"))?;
            Ok(SseEvent::new(event, data))
        })
        .collect()
}

/// Checks the event order of spec 13.1 and the SDK requirements of spec 20: `message_start` first
/// with a full message, pings only after it, contiguous block indices in start order, at most one
/// open block, deltas only on the open block and of its kind, one `message_delta` with
/// `usage.output_tokens` after every block closed, and `message_stop` last unless an `error` ended
/// the stream. Unknown event types are tolerated, as the SDKs do.
pub fn check_invariants(events: &[SseEvent]) -> Result<(), String> {
    let mut state = Checker::default();
    for (i, event) in events.iter().enumerate() {
        state
            .step(i, event)
            .map_err(|e| format!("event {i} ({}): {e}", event.event))?;
    }
    if state.ended {
        Ok(())
    } else {
        Err("stream ended without message_stop or error".into())
    }
}

#[derive(Default)]
struct Checker {
    started: bool,
    next_index: u64,
    open: Option<(u64, String)>,
    message_delta_seen: bool,
    ended: bool,
}

impl Checker {
    fn step(&mut self, i: usize, event: &SseEvent) -> Result<(), String> {
        if self.ended {
            return Err("event after message_stop or error".into());
        }
        let data = &event.data;
        if data.get("type").and_then(Value::as_str) != Some(event.event.as_str()) {
            return Err("data.type differs from the event name".into());
        }
        match event.event.as_str() {
            "message_start" => {
                if i != 0 {
                    return Err("message_start is not the first event".into());
                }
                check_message(data.get("message").unwrap_or(&Value::Null))?;
                self.started = true;
            }
            "error" => {
                let error = data.get("error").unwrap_or(&Value::Null);
                if !error.get("type").is_some_and(Value::is_string)
                    || !error.get("message").is_some_and(Value::is_string)
                {
                    return Err("error without error.type and error.message".into());
                }
                self.ended = true;
            }
            _ if !self.started => return Err("event before message_start".into()),
            "ping" => {}
            "content_block_start" => self.block_start(data)?,
            "content_block_delta" => self.block_delta(data)?,
            "content_block_stop" => {
                self.expect_open(data)?;
                self.open = None;
            }
            "message_delta" => {
                if self.open.is_some() {
                    return Err("message_delta while a block is open".into());
                }
                if self.message_delta_seen {
                    return Err("second message_delta".into());
                }
                let usage = data.get("usage");
                if !usage
                    .and_then(|u| u.get("output_tokens"))
                    .is_some_and(Value::is_u64)
                {
                    return Err("message_delta without usage.output_tokens".into());
                }
                if data
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .is_none()
                {
                    return Err("message_delta without delta.stop_reason".into());
                }
                self.message_delta_seen = true;
            }
            "message_stop" => {
                if !self.message_delta_seen {
                    return Err("message_stop before message_delta".into());
                }
                self.ended = true;
            }
            _ => {}
        }
        Ok(())
    }

    fn block_start(&mut self, data: &Value) -> Result<(), String> {
        if self.message_delta_seen {
            return Err("block started after message_delta".into());
        }
        if let Some((open, _)) = &self.open {
            return Err(format!("block {open} still open"));
        }
        let index = data.get("index").and_then(Value::as_u64);
        if index != Some(self.next_index) {
            return Err(format!("index {index:?}, expected {}", self.next_index));
        }
        let kind = data
            .get("content_block")
            .and_then(|b| b.get("type"))
            .and_then(Value::as_str)
            .ok_or("content_block without type")?;
        self.open = Some((self.next_index, kind.to_string()));
        self.next_index += 1;
        Ok(())
    }

    fn block_delta(&mut self, data: &Value) -> Result<(), String> {
        let kind = self.expect_open(data)?;
        let delta = data
            .get("delta")
            .and_then(|d| d.get("type"))
            .and_then(Value::as_str)
            .ok_or("delta without type")?;
        let allowed: &[&str] = match kind.as_str() {
            "text" => &["text_delta", "citations_delta"],
            "thinking" => &["thinking_delta", "signature_delta"],
            "tool_use" => &["input_json_delta"],
            "redacted_thinking" => &[],
            _ => return Ok(()),
        };
        if allowed.contains(&delta) {
            Ok(())
        } else {
            Err(format!("{delta} on a {kind} block"))
        }
    }

    fn expect_open(&self, data: &Value) -> Result<String, String> {
        let index = data.get("index").and_then(Value::as_u64);
        match &self.open {
            Some((open, kind)) if Some(*open) == index => Ok(kind.clone()),
            _ => Err(format!("index {index:?} is not the open block")),
        }
    }
}

fn check_message(message: &Value) -> Result<(), String> {
    let field = |key: &str| message.get(key).unwrap_or(&Value::Null);
    let ok = field("id").is_string()
        && field("type") == "message"
        && field("role") == "assistant"
        && field("model").is_string()
        && field("content").is_array()
        && message.get("stop_reason").is_some()
        && message.get("stop_sequence").is_some()
        && field("usage")
            .get("input_tokens")
            .is_some_and(Value::is_u64)
        && field("usage")
            .get("output_tokens")
            .is_some_and(Value::is_u64);
    if ok {
        Ok(())
    } else {
        Err("message_start.message is not a full message object".into())
    }
}
