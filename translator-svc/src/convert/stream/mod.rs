//! Stream state machines (spec 13): Bedrock stream events in, Anthropic SSE events out. They are
//! synchronous (`on_event`/`on_chunk` -> events, `finish(end)` -> events); the async shell in
//! `api/` owns timers, pings while idle and writing. No I/O, no clock here.

mod converse;
mod invoke;

#[cfg(test)]
pub(crate) mod golden;
#[cfg(test)]
mod tests;

pub use converse::ConverseStreamState;
pub use invoke::InvokeStreamState;

use crate::anthropic::response::{Message, Usage};
use crate::anthropic::stream::{MessageStreamEvent, SseEvent};
use crate::convert::response::ResponseOptions;
use crate::error::ApiError;

/// How the upstream stream ended, as the shell saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// Upstream ended normally (end of the event stream).
    Completed,
    /// `awaiting_metadata()` stayed true for 5 s: finish with the best known usage.
    MetadataTimeout,
    /// A failure after the commit: an `error` event, and no `message_stop` (spec 13.6).
    Error(ApiError),
}

/// The message the gateway cannot know yet: empty content, no stop reason, zero usage.
fn message_start(opts: &ResponseOptions) -> [SseEvent; 2] {
    let message = Message {
        id: opts.message_id.clone(),
        kind: Message::TYPE.to_string(),
        role: Message::ROLE.to_string(),
        model: opts.requested_model.clone(),
        content: Vec::new(),
        stop_reason: None,
        stop_sequence: None,
        usage: Usage::default(),
    };
    [
        MessageStreamEvent::MessageStart { message }.into(),
        SseEvent::ping(),
    ]
}

/// The stream ended before the model said it stopped.
fn unexpected_end(opts: &ResponseOptions) -> SseEvent {
    let err = ApiError::api("upstream stream ended unexpectedly");
    SseEvent::error(&err, &opts.request_id)
}
