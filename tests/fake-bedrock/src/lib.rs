//! A faithful, scriptable fake of the Amazon Bedrock runtime API for tests: Converse, ConverseStream,
//! InvokeModel, InvokeModelWithResponseStream and CountTokens on loopback, with real event-stream
//! framing and error shapes, request recording, and a scenario queue. Test support only.
//!
//! # Choosing a reply
//!
//! For each generation call (Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream):
//!
//! 1. a `[[fake:NAME]]` marker in a text block of the last user message picks the built-in scenario
//!    `NAME` (see [`BUILTIN_NAMES`]); markers are stateless, so an error built-in fails every call;
//! 2. else, if the last user message carries a `toolResult` / `tool_result`, the first queued scenario
//!    with `on_tool_result: true` (matching model and operation), or the text
//!    `Tool said: <first 200 chars of the result>`;
//! 3. else the first queued scenario whose `model` (if set) equals the decoded model id and which
//!    applies to the operation ([`Scenario::applies_to`]);
//! 4. else the text `Hello from fake Bedrock (<model id>)`.
//!
//! CountTokens ignores markers and tool results: it takes the first queued scenario that applies to
//! it (one with `count_tokens` set, or listing `count-tokens` in `operations`), else answers the
//! estimate (characters of all text / 4, at least 1; the same estimate as the default input usage).
//!
//! Before any of that, the request is validated the way Bedrock does (see `validate`); a rejected
//! request consumes no scenario. Stream-only knobs (`stream_error`, `event_delay_ms`, `pause`,
//! `truncate_after_events`, `omit_metadata`) are ignored by non-stream operations, which honour
//! `first_event_delay_ms` as a delay before the reply.
//!
//! # HTTP control API (same port, for out-of-process users such as the `fake-bedrock` binary)
//!
//! - `POST /_fake/scenarios`: one `Scenario` JSON (or an array) appended to the queue; 400 on a bad one.
//! - `GET /_fake/scenarios`: the queue. `GET /_fake/requests`: recorded calls as a JSON array.
//! - `DELETE /_fake/requests`: forget the recordings. `POST /_fake/reset`: empty queue and recordings.

mod builtin;
pub mod error;
pub mod eventstream;
mod handler;
pub mod render;
pub mod request;
pub mod scenario;
mod server;
mod state;
pub mod stream;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;

pub use builtin::BUILTIN_NAMES;
pub use request::{Operation, RecordedRequest};
pub use scenario::{ContentBlock, ErrorSpec, Pause, Scenario, StreamErrorSpec, Usage};
pub use state::DEFAULT_RECORD_LIMIT;

use state::State;

/// A running fake Bedrock on loopback; stops serving when dropped.
#[derive(Debug)]
pub struct FakeBedrock {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl FakeBedrock {
    /// Binds `127.0.0.1:0` and serves in a background task of the current runtime.
    pub async fn start() -> anyhow::Result<Self> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Binds `addr` and serves in a background task of the current runtime.
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let state = Arc::new(State::default());
        let (addr, task) = server::spawn(addr, Arc::clone(&state)).await?;
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`, the endpoint URL for a Bedrock runtime client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Appends a scenario to the FIFO queue.
    pub fn enqueue(&self, scenario: Scenario) {
        self.state.enqueue(scenario);
    }

    /// Scenarios still queued, front first.
    pub fn queued(&self) -> Vec<Scenario> {
        self.state.queued()
    }

    /// Every Bedrock call received so far (control calls excluded), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    pub fn clear_requests(&self) {
        self.state.clear_requests();
    }

    /// Keeps at most `limit` recorded requests, dropping the oldest (default
    /// [`DEFAULT_RECORD_LIMIT`]; 0 records nothing, for load tests).
    pub fn set_record_limit(&self, limit: usize) {
        self.state.set_record_limit(limit);
    }

    /// Streams whose body is still being written; drops to 0 when clients (or the gateway) cancel.
    pub fn active_streams(&self) -> usize {
        self.state
            .active_streams
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Empties the queue and the recorded requests.
    pub fn reset(&self) {
        self.state.reset();
    }
}

impl Drop for FakeBedrock {
    fn drop(&mut self) {
        self.task.abort();
    }
}
