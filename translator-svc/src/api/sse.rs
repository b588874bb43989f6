//! The SSE response: headers that keep proxies from buffering or compressing, a body that writes
//! each already-encoded event as soon as the relay yields it (the events ready at the same moment
//! as one frame), and a closing HTTP/2 trailer with the tokens used (Envoy's rate limiter charges
//! them; the gate filter strips the trailer).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::Stream;
use http_body_util::StreamBody;
use hyper::body::Frame;

use crate::convert::response::TokenUsage;
use crate::relay::{SseBody, SseChunk};

/// Response header (JSON) or trailer (SSE) carrying the tokens a response used.
pub const USAGE_TOKENS_HEADER: &str = "x-gw-usage-tokens";

/// Tokens charged against a key's tokens-per-minute limit: everything the model processed or
/// produced except cache reads, which Anthropic does not count against input limits either.
pub fn usage_tokens(usage: &TokenUsage) -> HeaderValue {
    HeaderValue::from(usage.input_tokens + usage.cache_creation_input_tokens + usage.output_tokens)
}

pub fn response(stream: SseBody) -> Response {
    let frames = Coalesced {
        events: stream,
        trailers: None,
        ended: false,
    };
    let mut response = Response::new(Body::new(StreamBody::new(frames)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx-style proxies buffer SSE unless told not to.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Upper bound of one coalesced DATA frame; a larger burst continues in the next frame.
const MAX_FRAME_BYTES: usize = 64 * 1024;

/// The body's frames: every event the relay has ready when the body is polled goes out as one
/// DATA frame. Events come in bursts (`message_start` with the first `content_block_start`, the
/// last delta with `content_block_stop`, `message_delta` and `message_stop`, or several Bedrock
/// chunks in one read), and each frame costs a pass through hyper, h2 and every Envoy filter.
/// Nothing waits for company: a lone event leaves when it is produced. After the usage trailer
/// the relay's stream is never polled again (its last yield is the `End`).
struct Coalesced {
    events: SseBody,
    /// The trailer frame, sent after the data that was ready with it.
    trailers: Option<Frame<Bytes>>,
    ended: bool,
}

fn trailers_frame(usage: &TokenUsage) -> Frame<Bytes> {
    let mut trailers = HeaderMap::new();
    trailers.insert(USAGE_TOKENS_HEADER, usage_tokens(usage));
    Frame::trailers(trailers)
}

/// The events of one frame: the first one as is (a lone event is never copied).
#[derive(Default)]
struct Batch {
    first: Option<Bytes>,
    more: Option<BytesMut>,
}

impl Batch {
    fn len(&self) -> usize {
        match (&self.first, &self.more) {
            (_, Some(more)) => more.len(),
            (Some(first), None) => first.len(),
            (None, None) => 0,
        }
    }

    fn push(&mut self, event: Bytes) {
        match (&mut self.first, &mut self.more) {
            (None, _) => self.first = Some(event),
            (Some(_), Some(more)) => more.extend_from_slice(&event),
            (Some(first), None) => {
                let mut more = BytesMut::with_capacity((first.len() + event.len()) * 2);
                more.extend_from_slice(first);
                more.extend_from_slice(&event);
                self.more = Some(more);
            }
        }
    }

    fn into_frame(self) -> Option<Frame<Bytes>> {
        match (self.first, self.more) {
            (_, Some(more)) => Some(Frame::data(more.freeze())),
            (Some(first), None) => Some(Frame::data(first)),
            (None, None) => None,
        }
    }
}

impl Stream for Coalesced {
    type Item = Result<Frame<Bytes>, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(trailers) = this.trailers.take() {
            return Poll::Ready(Some(Ok(trailers)));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        let mut batch = Batch::default();
        while batch.len() < MAX_FRAME_BYTES {
            match this.events.as_mut().poll_next(cx) {
                Poll::Ready(Some(SseChunk::Event(bytes))) => batch.push(bytes),
                Poll::Ready(Some(SseChunk::End(usage))) => {
                    this.trailers = Some(trailers_frame(&usage));
                    this.ended = true;
                    break;
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        match batch.into_frame() {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None => match this.trailers.take() {
                Some(trailers) => Poll::Ready(Some(Ok(trailers))),
                None if this.ended => Poll::Ready(None),
                // The relay's stream is pending and has registered the waker.
                None => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests;
