//! Test sandboxes without a container engine. [`FakeSandbox::scripted`] hands each started
//! "container" to the test, which plays the runner byte by byte (framing, batching, timeouts,
//! protocol violations). [`FakeSandbox::local_python`] runs the real runner as a local python3
//! process: the real protocol with no isolation at all, so it exists for tests only.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, DuplexStream};
use tokio::sync::mpsc;

use super::{ContainerSpec, EngineHealth, ExitReason, OutputChunk, Sandbox, SandboxError, Started};

/// The test's end of one scripted container.
pub struct FakeContainer {
    pub spec: ContainerSpec,
    pub engine_id: String,
    /// What the host wrote to the container's stdin.
    pub stdin: DuplexStream,
    /// Send output chunks (any split) or an error; dropping it ends the output.
    pub output: mpsc::UnboundedSender<std::io::Result<OutputChunk>>,
    exits: Arc<Mutex<HashMap<String, ExitReason>>>,
}

impl FakeContainer {
    /// Reads the injected runner (`<len>\n<source>`) and answers `ready` like the real runner.
    pub async fn accept_injection(&mut self) -> std::io::Result<()> {
        let mut header = Vec::new();
        loop {
            let byte = self.stdin.read_u8().await?;
            if byte == b'\n' {
                break;
            }
            header.push(byte);
        }
        let length: usize = String::from_utf8_lossy(&header)
            .parse()
            .map_err(std::io::Error::other)?;
        let mut source = vec![0; length];
        self.stdin.read_exact(&mut source).await?;
        self.send_stdout(&format!(
            "{{\"type\":\"ready\",\"v\":1,\"runner_version\":\"{}\",\"python_version\":\"3.fake\"}}\n",
            crate::runner::runner_version()
        ));
        Ok(())
    }

    /// Reads one line the host sent, parsed as JSON.
    pub async fn read_message(&mut self) -> std::io::Result<serde_json::Value> {
        let mut line = Vec::new();
        loop {
            let byte = self.stdin.read_u8().await?;
            if byte == b'\n' {
                break;
            }
            line.push(byte);
        }
        serde_json::from_slice(&line).map_err(std::io::Error::other)
    }

    pub fn send_stdout(&self, text: &str) {
        let _ = self
            .output
            .send(Ok(OutputChunk::Stdout(Bytes::copy_from_slice(
                text.as_bytes(),
            ))));
    }

    pub fn send_stderr(&self, text: &str) {
        let _ = self
            .output
            .send(Ok(OutputChunk::Stderr(Bytes::copy_from_slice(
                text.as_bytes(),
            ))));
    }

    /// Ends the output as if the container exited for `reason`.
    pub fn exit(self, reason: ExitReason) {
        if let Ok(mut exits) = self.exits.lock() {
            exits.insert(self.engine_id.clone(), reason);
        }
    }
}

enum Mode {
    Scripted(mpsc::UnboundedSender<FakeContainer>),
    LocalPython { workdir: std::path::PathBuf },
}

pub struct FakeSandbox {
    mode: Mode,
    exits: Arc<Mutex<HashMap<String, ExitReason>>>,
    removed: Arc<Mutex<Vec<String>>>,
    children: Mutex<HashMap<String, tokio::process::Child>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl FakeSandbox {
    pub fn scripted() -> (Self, mpsc::UnboundedReceiver<FakeContainer>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self::with_mode(Mode::Scripted(tx)), rx)
    }

    /// Runs the runner as `python3` on this host, in `workdir`. Tests only: no isolation.
    pub fn local_python(workdir: std::path::PathBuf) -> Self {
        Self::with_mode(Mode::LocalPython { workdir })
    }

    fn with_mode(mode: Mode) -> Self {
        Self {
            mode,
            exits: Arc::default(),
            removed: Arc::default(),
            children: Mutex::default(),
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Engine ids removed so far.
    pub fn removed(&self) -> Vec<String> {
        self.removed.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn start_python(
        &self,
        workdir: &std::path::Path,
        engine_id: &str,
    ) -> Result<Started, SandboxError> {
        let command = crate::runner::container_command();
        let mut child = tokio::process::Command::new(&command[0])
            .args(&command[1..])
            .current_dir(workdir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SandboxError::Engine(format!("cannot start python3: {e}")))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(SandboxError::Engine("python3 without pipes".into()));
        };
        let (tx, rx) = mpsc::unbounded_channel();
        spawn_pump(stdout, tx.clone(), OutputChunk::Stdout);
        spawn_pump(stderr, tx, OutputChunk::Stderr);
        if let Ok(mut children) = self.children.lock() {
            children.insert(engine_id.to_owned(), child);
        }
        Ok(Started {
            engine_id: engine_id.to_owned(),
            stdin: Box::pin(stdin),
            output: Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(rx)),
        })
    }
}

fn spawn_pump(
    mut source: impl AsyncRead + Unpin + Send + 'static,
    sink: mpsc::UnboundedSender<std::io::Result<OutputChunk>>,
    wrap: fn(Bytes) -> OutputChunk,
) {
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        loop {
            match source.read(&mut buffer).await {
                Ok(0) => return,
                Ok(n) => {
                    if sink
                        .send(Ok(wrap(Bytes::copy_from_slice(&buffer[..n]))))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(error) => {
                    let _ = sink.send(Err(error));
                    return;
                }
            }
        }
    });
}

#[async_trait::async_trait]
impl Sandbox for FakeSandbox {
    async fn start(&self, spec: &ContainerSpec) -> Result<Started, SandboxError> {
        let number = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let engine_id = format!("fake-{number}");
        match &self.mode {
            Mode::LocalPython { workdir } => self.start_python(workdir, &engine_id),
            Mode::Scripted(containers) => {
                let (host_end, test_end) = tokio::io::duplex(1 << 20);
                let (tx, rx) = mpsc::unbounded_channel();
                let container = FakeContainer {
                    spec: spec.clone(),
                    engine_id: engine_id.clone(),
                    stdin: test_end,
                    output: tx,
                    exits: Arc::clone(&self.exits),
                };
                containers
                    .send(container)
                    .map_err(|_| SandboxError::Unreachable("fake engine stopped".into()))?;
                Ok(Started {
                    engine_id,
                    stdin: Box::pin(host_end),
                    output: Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(rx)),
                })
            }
        }
    }

    async fn exit_reason(&self, engine_id: &str) -> ExitReason {
        self.exits
            .lock()
            .ok()
            .and_then(|exits| exits.get(engine_id).cloned())
            .unwrap_or(ExitReason::Exited(0))
    }

    async fn remove(&self, engine_id: &str) -> Result<(), SandboxError> {
        let child = self
            .children
            .lock()
            .ok()
            .and_then(|mut children| children.remove(engine_id));
        if let Some(mut child) = child {
            let _ = child.kill().await;
        }
        if let Ok(mut removed) = self.removed.lock() {
            removed.push(engine_id.to_owned());
        }
        Ok(())
    }

    async fn sweep(
        &self,
        _replica_id: Option<&str>,
        _now_unix: i64,
    ) -> Result<usize, SandboxError> {
        Ok(0)
    }

    async fn health(&self) -> EngineHealth {
        EngineHealth {
            reachable: true,
            version: "fake".into(),
            image_present: true,
            error: String::new(),
        }
    }
}
