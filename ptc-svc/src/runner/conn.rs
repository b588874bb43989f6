//! One live runner: injects the source, waits for `ready`, then turns the container's output
//! into [`RunnerEvent`]s (a reader task with one line buffer per stream) and writes host messages.
//! Runner stderr is diagnostics only: logged, rate-limited, never parsed.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::framing::LineBuffer;
use super::protocol::{HostMessage, PROTOCOL_VERSION, RunnerMessage};
use crate::sandbox::{InputSink, OutputChunk, OutputStream, Started};

#[derive(Debug, Clone, PartialEq)]
pub enum RunnerEvent {
    Message(RunnerMessage),
    /// Overlong line, invalid JSON, unknown message or wrong protocol version.
    Violation(String),
    /// The output ended (the runner or its container exited).
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("the runner did not report ready within {0:?}")]
    NotReady(Duration),
    #[error("runner version {found} differs from the expected {expected}")]
    VersionMismatch { found: String, expected: String },
    #[error("runner failed before ready: {0}")]
    Failed(String),
}

pub struct RunnerConn {
    stdin: InputSink,
    events: mpsc::Receiver<RunnerEvent>,
    reader: JoinHandle<()>,
    pub runner_version: String,
    pub python_version: String,
    pub engine_id: String,
}

impl Drop for RunnerConn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl RunnerConn {
    /// Injects the runner into a started container and waits for its ready message.
    pub async fn start(
        started: Started,
        max_line_bytes: usize,
        ready_timeout: Duration,
        label: String,
    ) -> Result<Self, StartError> {
        let Started {
            engine_id,
            mut stdin,
            output,
        } = started;
        let (tx, mut events) = mpsc::channel(1024);
        let reader = tokio::spawn(read_output(output, tx, max_line_bytes, label));
        let payload = super::injection_payload();
        let ready = async {
            stdin
                .write_all(&payload)
                .await
                .map_err(|e| StartError::Failed(format!("cannot write the runner: {e}")))?;
            stdin
                .flush()
                .await
                .map_err(|e| StartError::Failed(format!("cannot write the runner: {e}")))?;
            match events.recv().await {
                Some(RunnerEvent::Message(RunnerMessage::Ready {
                    runner_version,
                    python_version,
                    ..
                })) => Ok((runner_version, python_version)),
                Some(RunnerEvent::Message(other)) => Err(StartError::Failed(format!(
                    "unexpected first message {other:?}"
                ))),
                Some(RunnerEvent::Violation(reason)) => Err(StartError::Failed(reason)),
                Some(RunnerEvent::Closed) | None => {
                    Err(StartError::Failed("the runner exited before ready".into()))
                }
            }
        };
        let (runner_version, python_version) =
            match tokio::time::timeout(ready_timeout, ready).await {
                Ok(result) => result,
                Err(_) => Err(StartError::NotReady(ready_timeout)),
            }
            .inspect_err(|_| reader.abort())?;
        let expected = super::runner_version();
        if runner_version != expected {
            reader.abort();
            return Err(StartError::VersionMismatch {
                found: runner_version,
                expected,
            });
        }
        Ok(Self {
            stdin,
            events,
            reader,
            runner_version,
            python_version,
            engine_id,
        })
    }

    pub async fn send(&mut self, message: &HostMessage<'_>) -> std::io::Result<()> {
        self.stdin.write_all(&message.to_line()).await?;
        self.stdin.flush().await
    }

    /// The next event; [`RunnerEvent::Closed`] forever once the output ended.
    pub async fn next(&mut self) -> RunnerEvent {
        self.events.recv().await.unwrap_or(RunnerEvent::Closed)
    }

    /// Asks the runner to exit (best effort; the container is removed anyway).
    pub async fn shutdown(&mut self) {
        let message = HostMessage::Shutdown {
            v: PROTOCOL_VERSION,
        };
        let _ = tokio::time::timeout(Duration::from_millis(500), self.send(&message)).await;
    }
}

async fn read_output(
    mut output: OutputStream,
    events: mpsc::Sender<RunnerEvent>,
    max_line_bytes: usize,
    label: String,
) {
    let mut stdout = LineBuffer::new(max_line_bytes);
    let mut stderr = LineBuffer::new(max_line_bytes.min(64 << 10));
    let mut diagnostics = DiagnosticsLog::new(label);
    while let Some(item) = output.next().await {
        match item {
            Ok(OutputChunk::Stdout(bytes)) => {
                let lines = match stdout.push(&bytes) {
                    Ok(lines) => lines,
                    Err(error) => {
                        let _ = events.send(RunnerEvent::Violation(error.to_string())).await;
                        return;
                    }
                };
                for line in lines {
                    let event = parse_line(&line);
                    let violation = matches!(event, RunnerEvent::Violation(_));
                    if events.send(event).await.is_err() || violation {
                        return;
                    }
                }
            }
            Ok(OutputChunk::Stderr(bytes)) => match stderr.push(&bytes) {
                Ok(lines) => lines.iter().for_each(|line| diagnostics.log(line)),
                Err(_) => diagnostics.log(b"(an overlong diagnostics line was dropped)"),
            },
            Err(error) => {
                tracing::warn!(sandbox = %diagnostics.label, %error, "sandbox output failed");
                break;
            }
        }
    }
    let event = if stdout.unfinished() > 0 {
        RunnerEvent::Violation("the runner's output ended inside a message".into())
    } else {
        RunnerEvent::Closed
    };
    let _ = events.send(event).await;
}

pub fn parse_line(line: &[u8]) -> RunnerEvent {
    match serde_json::from_slice::<RunnerMessage>(line) {
        Ok(message) if message.version() == PROTOCOL_VERSION => RunnerEvent::Message(message),
        Ok(message) => RunnerEvent::Violation(format!(
            "protocol version {} (expected {PROTOCOL_VERSION})",
            message.version()
        )),
        Err(error) => RunnerEvent::Violation(format!("unreadable runner message: {error}")),
    }
}

/// Logs runner diagnostics at most `LIMIT` lines per minute per sandbox, so code that makes the
/// runner complain in a loop cannot flood the service's log.
struct DiagnosticsLog {
    label: String,
    window_start: Instant,
    logged: u32,
    suppressed: u32,
}

impl DiagnosticsLog {
    const LIMIT: u32 = 30;

    fn new(label: String) -> Self {
        Self {
            label,
            window_start: Instant::now(),
            logged: 0,
            suppressed: 0,
        }
    }

    fn log(&mut self, line: &[u8]) {
        if self.window_start.elapsed() >= Duration::from_secs(60) {
            if self.suppressed > 0 {
                tracing::warn!(sandbox = %self.label, suppressed = self.suppressed, "runner diagnostics suppressed");
            }
            self.window_start = Instant::now();
            self.logged = 0;
            self.suppressed = 0;
        }
        if self.logged < Self::LIMIT {
            self.logged += 1;
            let text = String::from_utf8_lossy(line);
            tracing::info!(sandbox = %self.label, line = %text, "runner diagnostics");
        } else {
            self.suppressed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_or_rejects_lines() {
        assert!(matches!(
            parse_line(br#"{"type":"blocked","execution_id":"e","calls":1,"v":1}"#),
            RunnerEvent::Message(RunnerMessage::Blocked { .. })
        ));
        assert!(matches!(parse_line(b"not json"), RunnerEvent::Violation(_)));
        assert!(matches!(
            parse_line(br#"{"type":"blocked","execution_id":"e","calls":1,"v":2}"#),
            RunnerEvent::Violation(_)
        ));
        assert!(matches!(
            parse_line(br#"{"type":"surprise","v":1}"#),
            RunnerEvent::Violation(_)
        ));
    }
}
