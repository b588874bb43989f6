//! The engine seam: start a hardened container with an attached stdin/stdout, learn why it
//! exited, remove it, sweep orphans, report health. `docker` drives any Docker-API engine through
//! bollard; `fake` serves unit tests (scripted) and engine-free runner tests (local python3).

pub mod docker;
pub mod fake;
pub mod spec;

use std::collections::BTreeMap;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use tokio::io::AsyncWrite;

/// One demultiplexed piece of the container's output. No line alignment is implied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputChunk {
    Stdout(Bytes),
    Stderr(Bytes),
}

pub type OutputStream = Pin<Box<dyn Stream<Item = std::io::Result<OutputChunk>> + Send>>;
pub type InputSink = Pin<Box<dyn AsyncWrite + Send>>;

/// What a new container is for; the hardening itself comes from the sandbox's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The session's container id (`container_...`).
    pub container_id: String,
    /// Owner replica, for the orphan sweep at start.
    pub replica_id: String,
    /// Hard end of the session (creation + max lifetime), for sweeps by any replica.
    pub expires_unix: i64,
    /// The session's resources; zero fields mean the sandbox configuration's.
    pub resources: Resources,
}

/// Per-container resources (the session's limits, never above the replica's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    pub memory_bytes: u64,
    pub milli_cpus: u32,
    pub pids: u32,
}

impl ContainerSpec {
    /// Engine-side name: unique per engine, so a duplicated creation fails instead of forking.
    pub fn name(&self) -> String {
        format!("ptc-{}", self.container_id)
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_REPLICA.to_owned(), self.replica_id.clone()),
            (LABEL_CONTAINER.to_owned(), self.container_id.clone()),
            (LABEL_EXPIRES.to_owned(), self.expires_unix.to_string()),
            (LABEL_RUNNER.to_owned(), crate::runner::runner_version()),
        ])
    }
}

pub const LABEL_REPLICA: &str = "ptc.replica";
pub const LABEL_CONTAINER: &str = "ptc.container";
pub const LABEL_EXPIRES: &str = "ptc.expires";
pub const LABEL_RUNNER: &str = "ptc.runner";

/// A started container: its engine id and its attached streams.
pub struct Started {
    pub engine_id: String,
    pub stdin: InputSink,
    pub output: OutputStream,
}

/// Why a container's output ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    OutOfMemory,
    Exited(i64),
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EngineHealth {
    pub reachable: bool,
    pub version: String,
    pub image_present: bool,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error("container engine unreachable: {0}")]
    Unreachable(String),
    #[error("sandbox image {0} is not present on the engine")]
    ImageMissing(String),
    #[error("container engine error: {0}")]
    Engine(String),
}

#[async_trait::async_trait]
pub trait Sandbox: Send + Sync + 'static {
    /// Creates, attaches and starts one container. The streams are attached before the start,
    /// so nothing the runner writes is lost.
    async fn start(&self, spec: &ContainerSpec) -> Result<Started, SandboxError>;
    /// After the output ended: OOM kill, exit status, or why it is unknown.
    async fn exit_reason(&self, engine_id: &str) -> ExitReason;
    /// Kills (if needed) and removes the container; an already gone container is fine.
    async fn remove(&self, engine_id: &str) -> Result<(), SandboxError>;
    /// Removes containers of any replica whose `ptc.expires` label is before `now_unix`, and,
    /// when `replica_id` is given (at start), every container of that replica: orphans of a
    /// crash. Returns how many were removed.
    async fn sweep(&self, replica_id: Option<&str>, now_unix: i64) -> Result<usize, SandboxError>;
    async fn health(&self) -> EngineHealth;
}
