//! The host<->runner messages (ptc.md section 13.2): one JSON object per line, `type` and `v` in
//! every message. Wire types only; the rules for using them live in `session::execution`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const PROTOCOL_VERSION: u32 = 1;

/// Runner -> host.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunnerMessage {
    Ready {
        v: u32,
        runner_version: String,
        python_version: String,
    },
    ToolCall {
        v: u32,
        execution_id: String,
        seq: u64,
        tool: String,
        arguments: Map<String, Value>,
    },
    /// Every task of the code waits on a tool result; `calls` = calls made so far.
    Blocked {
        v: u32,
        execution_id: String,
        calls: u64,
    },
    Done(Done),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Done {
    pub v: u32,
    pub execution_id: String,
    pub stdout: String,
    pub stderr: String,
    pub return_code: i32,
    #[serde(default)]
    pub stdout_dropped: u64,
    #[serde(default)]
    pub stderr_dropped: u64,
    #[serde(default)]
    pub return_value: String,
}

impl RunnerMessage {
    pub fn version(&self) -> u32 {
        match self {
            Self::Ready { v, .. }
            | Self::ToolCall { v, .. }
            | Self::Blocked { v, .. }
            | Self::Done(Done { v, .. }) => *v,
        }
    }
}

/// Host -> runner.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostMessage<'a> {
    Execute {
        v: u32,
        execution_id: &'a str,
        code: &'a str,
        tools: &'a [String],
        max_calls: u32,
        max_stdout_bytes: u32,
        max_stderr_bytes: u32,
    },
    Results {
        v: u32,
        execution_id: &'a str,
        results: Vec<CallResult<'a>>,
    },
    Shutdown {
        v: u32,
    },
}

/// One answer, addressed by the runner's call number (the runner never sees client ids).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallResult<'a> {
    pub seq: u64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

impl HostMessage<'_> {
    /// The message as one line, `\n` included (serde_json escapes newlines inside strings).
    pub fn to_line(&self) -> Vec<u8> {
        // Serializing these plain structs cannot fail; an empty object would be rejected by the
        // runner as malformed rather than silently misread.
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        line.push(b'\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runner_messages() {
        let call: RunnerMessage = serde_json::from_str(
            r#"{"type":"tool_call","execution_id":"e","seq":3,"tool":"t","arguments":{"a":[1]},"v":1}"#,
        )
        .unwrap();
        assert!(matches!(call, RunnerMessage::ToolCall { seq: 3, .. }));
        let done: RunnerMessage = serde_json::from_str(
            r#"{"type":"done","execution_id":"e","stdout":"a\nb","stderr":"","return_code":1,"v":1}"#,
        )
        .unwrap();
        assert_eq!(done.version(), 1);
        assert!(serde_json::from_str::<RunnerMessage>(r#"{"type":"nope","v":1}"#).is_err());
    }

    #[test]
    fn host_lines_have_no_raw_newline_inside() {
        let tools = vec!["get_weather".to_owned()];
        let line = HostMessage::Execute {
            v: PROTOCOL_VERSION,
            execution_id: "srvtoolu_1",
            code: "print(1)\nprint(2)",
            tools: &tools,
            max_calls: 10,
            max_stdout_bytes: 100,
            max_stderr_bytes: 100,
        }
        .to_line();
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        assert_eq!(line.last(), Some(&b'\n'));
        let value: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(value["type"], "execute");
        let results = HostMessage::Results {
            v: 1,
            execution_id: "e",
            results: vec![CallResult {
                seq: 1,
                ok: false,
                value: None,
                error: Some("bad"),
            }],
        }
        .to_line();
        let value: Value = serde_json::from_slice(&results).unwrap();
        assert_eq!(
            value["results"][0],
            serde_json::json!({"seq":1,"ok":false,"error":"bad"})
        );
    }
}
