//! ConverseStream events -> Anthropic SSE events (spec 13.4), as a synchronous state machine.
//! Holds `message_delta`/`message_stop` until `metadata` (the only source of usage) arrives.

use std::collections::{BTreeMap, VecDeque};
use std::mem;

use serde_json::{Map, Value};

use crate::anthropic::response::ContentBlock;
use crate::anthropic::stream::{Delta, DeltaUsage, MessageDelta, MessageStreamEvent, SseEvent};
use crate::converse::stream::{
    ContentBlockDeltaEvent, ContentBlockStartEvent, MessageStopEvent, StreamEvent,
};
use crate::convert::response::{
    ResponseOptions, TokenUsage, converse_stop_sequence, decode_blob, encode_blob,
    map_converse_stop_reason, tool_use_id,
};
use crate::convert::stream::{StreamEnd, message_start, unexpected_end};

/// Converts one ConverseStream into Anthropic SSE events.
///
/// Bedrock's `contentBlockIndex` only names a block; Anthropic indices are assigned here in order
/// of `content_block_start`, so Bedrock indices may skip. At most one block is open. While a
/// thinking or tool use block is open, events for other Bedrock blocks wait until it stops (a
/// signature covers the whole thinking text; tool input fragments form one JSON document), so
/// interleaved Bedrock blocks still come out whole. An open text block is simply closed.
#[derive(Debug)]
pub struct ConverseStreamState {
    opts: ResponseOptions,
    started: bool,
    next_index: u32,
    open: Option<OpenBlock>,
    /// Events for other Bedrock blocks, waiting for the open thinking/tool block to stop.
    deferred: VecDeque<StreamEvent>,
    /// Redacted reasoning bytes per Bedrock index, emitted whole at that block's stop.
    redacted: BTreeMap<u32, Vec<u8>>,
    has_tool_use: bool,
    stop: Option<MessageStopEvent>,
    metadata_seen: bool,
    /// `message_stop` was emitted; nothing follows.
    finished: bool,
    usage: TokenUsage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    Thinking,
    ToolUse,
}

#[derive(Debug, Clone, Copy)]
struct OpenBlock {
    bedrock_index: u32,
    index: u32,
    kind: BlockKind,
}

impl OpenBlock {
    /// Thinking and tool use blocks must stay contiguous; a text block may be split.
    fn holds_others(self) -> bool {
        self.kind != BlockKind::Text
    }

    fn is(self, bedrock_index: u32, kind: BlockKind) -> bool {
        self.bedrock_index == bedrock_index && self.kind == kind
    }
}

impl ConverseStreamState {
    pub fn new(opts: ResponseOptions) -> Self {
        ConverseStreamState {
            opts,
            started: false,
            next_index: 0,
            open: None,
            deferred: VecDeque::new(),
            redacted: BTreeMap::new(),
            has_tool_use: false,
            stop: None,
            metadata_seen: false,
            finished: false,
            usage: TokenUsage::default(),
        }
    }

    /// Feeds one upstream event. The first known event emits `message_start` and `ping`.
    pub fn on_event(&mut self, event: StreamEvent) -> Vec<SseEvent> {
        if self.finished || event == StreamEvent::Unknown {
            return Vec::new();
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.extend(message_start(&self.opts));
        }
        self.dispatch(VecDeque::from([event]), &mut out);
        out
    }

    /// `messageStop` was seen but `metadata` was not: the shell starts its 5 s timer.
    pub fn awaiting_metadata(&self) -> bool {
        self.stop.is_some() && !self.metadata_seen && !self.finished
    }

    /// Ends the stream. After `messageStop`, a missing `metadata` still yields `message_delta`
    /// (best known usage) and `message_stop`; before it, the stream is reported as broken.
    pub fn finish(mut self, end: StreamEnd) -> Vec<SseEvent> {
        if self.finished {
            return Vec::new();
        }
        match end {
            StreamEnd::Error(err) => vec![SseEvent::error(&err, &self.opts.request_id)],
            StreamEnd::Completed | StreamEnd::MetadataTimeout if self.stop.is_none() => {
                vec![unexpected_end(&self.opts)]
            }
            StreamEnd::Completed | StreamEnd::MetadataTimeout => {
                let mut out = Vec::new();
                self.emit_final(&mut out);
                out
            }
        }
    }

    /// Usage known so far (zeros until `metadata`), exactly as reported in `message_delta`.
    pub fn usage(&self) -> TokenUsage {
        self.usage
    }

    /// `message_start` was emitted: failures from now on are SSE `error` events.
    pub fn committed(&self) -> bool {
        self.started
    }

    /// Runs events in order, parking those that must wait for the open block and replaying
    /// them, ahead of anything newer, once it closes.
    fn dispatch(&mut self, mut work: VecDeque<StreamEvent>, out: &mut Vec<SseEvent>) {
        while let Some(event) = work.pop_front() {
            if self.finished {
                return;
            }
            if self.must_wait(&event) {
                self.deferred.push_back(event);
                continue;
            }
            self.handle(event, out);
            if !self.deferred.is_empty() && !self.open.is_some_and(OpenBlock::holds_others) {
                let mut replay = mem::take(&mut self.deferred);
                replay.append(&mut work);
                work = replay;
            }
        }
    }

    fn must_wait(&self, event: &StreamEvent) -> bool {
        match (self.open, event.content_block_index()) {
            (Some(open), Some(index)) => open.holds_others() && open.bedrock_index != index,
            _ => false,
        }
    }

    fn handle(&mut self, event: StreamEvent, out: &mut Vec<SseEvent>) {
        match event {
            StreamEvent::MessageStart(_) | StreamEvent::Unknown => {}
            StreamEvent::ContentBlockStart(e) => self.block_start(e, out),
            StreamEvent::ContentBlockDelta(e) => self.block_delta(e, out),
            StreamEvent::ContentBlockStop(e) => {
                let bedrock_index = e.content_block_index;
                if self.open.is_some_and(|o| o.bedrock_index == bedrock_index) {
                    self.close_open(out);
                }
                if let Some(bytes) = self.redacted.remove(&bedrock_index) {
                    self.emit_redacted(&bytes, out);
                }
            }
            StreamEvent::MessageStop(e) => {
                self.flush_blocks(out);
                self.stop = Some(e);
                if self.metadata_seen {
                    self.emit_final(out);
                }
            }
            StreamEvent::Metadata(e) => {
                if let Some(usage) = &e.usage {
                    self.usage = usage.into();
                }
                self.metadata_seen = true;
                if self.stop.is_some() {
                    self.emit_final(out);
                }
            }
        }
    }

    fn block_start(&mut self, event: ContentBlockStartEvent, out: &mut Vec<SseEvent>) {
        let bedrock_index = event.content_block_index;
        let Some(tool) = event.start.tool_use else {
            tracing::debug!(bedrock_index, "ignoring a non-tool contentBlockStart");
            return;
        };
        if self
            .open
            .is_some_and(|o| o.is(bedrock_index, BlockKind::ToolUse))
        {
            tracing::warn!(
                bedrock_index,
                "ignoring a repeated toolUse contentBlockStart"
            );
            return;
        }
        let block = ContentBlock::ToolUse {
            id: tool_use_id(&tool.tool_use_id),
            name: tool.name,
            input: Value::Object(Map::new()),
        };
        self.start_block(bedrock_index, BlockKind::ToolUse, block, out);
        self.has_tool_use = true;
    }

    fn block_delta(&mut self, event: ContentBlockDeltaEvent, out: &mut Vec<SseEvent>) {
        let bedrock_index = event.content_block_index;
        let delta = event.delta;
        // Empty text: Anthropic never streams it, and an empty block would be echoed back.
        if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
            let index = self.open_for_delta(bedrock_index, false, out);
            emit_delta(out, index, Delta::TextDelta { text });
        }
        if let Some(reasoning) = delta.reasoning_content {
            if let Some(thinking) = reasoning.text.filter(|t| !t.is_empty()) {
                let index = self.open_for_delta(bedrock_index, true, out);
                emit_delta(out, index, Delta::ThinkingDelta { thinking });
            }
            if let Some(signature) = reasoning.signature.filter(|s| !s.is_empty()) {
                let index = self.open_for_delta(bedrock_index, true, out);
                emit_delta(out, index, Delta::SignatureDelta { signature });
            }
            if let Some(blob) = reasoning.redacted_content {
                match decode_blob(&blob) {
                    Some(bytes) => self
                        .redacted
                        .entry(bedrock_index)
                        .or_default()
                        .extend(bytes),
                    None => tracing::warn!(bedrock_index, "dropping undecodable redactedContent"),
                }
            }
        }
        if let Some(tool) = delta.tool_use.filter(|t| !t.input.is_empty()) {
            match self.open {
                Some(open) if open.is(bedrock_index, BlockKind::ToolUse) => {
                    let partial_json = tool.input;
                    emit_delta(out, open.index, Delta::InputJsonDelta { partial_json });
                }
                _ => tracing::warn!(
                    bedrock_index,
                    "dropping toolUse input for no open tool block"
                ),
            }
        }
        if delta.citation.is_some() {
            tracing::debug!(bedrock_index, "ignoring a citation delta");
        }
    }

    /// The Anthropic index of the open text (`thinking == false`) or thinking block for this
    /// Bedrock block, starting one if needed (Converse sends no start for these blocks).
    fn open_for_delta(
        &mut self,
        bedrock_index: u32,
        thinking: bool,
        out: &mut Vec<SseEvent>,
    ) -> u32 {
        let kind = if thinking {
            BlockKind::Thinking
        } else {
            BlockKind::Text
        };
        if let Some(open) = self.open.filter(|o| o.is(bedrock_index, kind)) {
            return open.index;
        }
        let block = if thinking {
            ContentBlock::Thinking {
                thinking: String::new(),
                signature: String::new(),
            }
        } else {
            ContentBlock::Text {
                text: String::new(),
            }
        };
        self.start_block(bedrock_index, kind, block, out)
    }

    fn start_block(
        &mut self,
        bedrock_index: u32,
        kind: BlockKind,
        content_block: ContentBlock,
        out: &mut Vec<SseEvent>,
    ) -> u32 {
        self.close_open(out);
        let index = self.next_index;
        self.next_index += 1;
        out.push(
            MessageStreamEvent::ContentBlockStart {
                index,
                content_block,
            }
            .into(),
        );
        self.open = Some(OpenBlock {
            bedrock_index,
            index,
            kind,
        });
        index
    }

    fn close_open(&mut self, out: &mut Vec<SseEvent>) {
        if let Some(open) = self.open.take() {
            out.push(MessageStreamEvent::ContentBlockStop { index: open.index }.into());
        }
    }

    /// A redacted block is emitted whole: start with all bytes, then stop.
    fn emit_redacted(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        self.close_open(out);
        let index = self.next_index;
        self.next_index += 1;
        let content_block = ContentBlock::RedactedThinking {
            data: encode_blob(bytes),
        };
        out.push(
            MessageStreamEvent::ContentBlockStart {
                index,
                content_block,
            }
            .into(),
        );
        out.push(MessageStreamEvent::ContentBlockStop { index }.into());
    }

    /// Closes everything before `message_delta`: the open block, parked events, redacted blocks
    /// whose stop never came.
    fn flush_blocks(&mut self, out: &mut Vec<SseEvent>) {
        while self.open.is_some() || !self.deferred.is_empty() {
            self.close_open(out);
            let parked = mem::take(&mut self.deferred);
            self.dispatch(parked, out);
        }
        for bytes in mem::take(&mut self.redacted).into_values() {
            self.emit_redacted(&bytes, out);
        }
    }

    fn emit_final(&mut self, out: &mut Vec<SseEvent>) {
        self.flush_blocks(out);
        let stop = self.stop.take().unwrap_or_default();
        let stop_reason = map_converse_stop_reason(stop.stop_reason.as_deref(), self.has_tool_use);
        let stop_sequence = converse_stop_sequence(
            stop_reason,
            stop.additional_model_response_fields.as_ref(),
            &self.opts,
        );
        let u = self.usage;
        let message_delta = MessageStreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: Some(stop_reason),
                stop_sequence,
            },
            usage: DeltaUsage {
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                cache_creation_input_tokens: u.cache_creation_input_tokens,
                cache_read_input_tokens: u.cache_read_input_tokens,
            },
        };
        out.push(message_delta.into());
        out.push(MessageStreamEvent::MessageStop.into());
        self.finished = true;
    }
}

fn emit_delta(out: &mut Vec<SseEvent>, index: u32, delta: Delta) {
    out.push(MessageStreamEvent::ContentBlockDelta { index, delta }.into());
}
