use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use futures::executor::block_on;

use super::*;

fn event(text: &str) -> SseChunk {
    SseChunk::Event(Bytes::from(text.to_string()))
}

fn usage(output_tokens: u64) -> TokenUsage {
    TokenUsage {
        input_tokens: 5,
        output_tokens,
        ..TokenUsage::default()
    }
}

fn coalesced(stream: impl Stream<Item = SseChunk> + Send + 'static) -> Coalesced {
    Coalesced {
        events: Box::pin(stream),
        trailers: None,
        ended: false,
    }
}

/// What a frame carries, in a form that is easy to compare.
#[derive(Debug, PartialEq)]
enum Seen {
    Data(String),
    Usage(String),
}

fn frames(body: Coalesced) -> Vec<Seen> {
    block_on(
        body.map(|frame| {
            let frame = frame.unwrap_or_else(|never| match never {});
            match frame.into_data() {
                Ok(data) => Seen::Data(String::from_utf8_lossy(&data).into_owned()),
                Err(frame) => {
                    let trailers = frame.into_trailers().unwrap_or_default();
                    let value = trailers
                        .get(USAGE_TOKENS_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("missing");
                    Seen::Usage(value.to_string())
                }
            }
        })
        .collect(),
    )
}

/// A stream that is pending once (and wakes at once) before each item marked `None`.
fn with_gaps(items: Vec<Option<SseChunk>>) -> impl Stream<Item = SseChunk> + Send {
    let mut items = items.into_iter();
    futures::stream::poll_fn(move |cx| match items.next() {
        Some(Some(chunk)) => Poll::Ready(Some(chunk)),
        Some(None) => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        None => Poll::Ready(None),
    })
}

#[test]
fn events_ready_together_leave_as_one_frame_then_the_trailer() {
    let body = coalesced(futures::stream::iter([
        event("event: message_start\n\n"),
        event("event: content_block_start\n\n"),
        event("event: message_stop\n\n"),
        SseChunk::End(usage(7)),
    ]));
    assert_eq!(
        frames(body),
        [
            Seen::Data(
                "event: message_start\n\nevent: content_block_start\n\nevent: message_stop\n\n"
                    .to_string()
            ),
            Seen::Usage("12".to_string()),
        ]
    );
}

#[test]
fn an_event_is_never_held_back_for_a_later_one() {
    let body = coalesced(with_gaps(vec![
        Some(event("a\n\n")),
        Some(event("b\n\n")),
        None,
        Some(event("c\n\n")),
        None,
        Some(event("d\n\n")),
        Some(SseChunk::End(usage(1))),
    ]));
    assert_eq!(
        frames(body),
        [
            Seen::Data("a\n\nb\n\n".to_string()),
            Seen::Data("c\n\n".to_string()),
            Seen::Data("d\n\n".to_string()),
            Seen::Usage("6".to_string()),
        ]
    );
}

#[test]
fn a_lone_event_is_sent_without_a_copy() {
    let bytes = Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n");
    let mut body = coalesced(futures::stream::iter([SseChunk::Event(bytes.clone())]));
    let frame = block_on(body.next()).and_then(|f| f.ok());
    let data = frame.and_then(|f| f.into_data().ok()).unwrap_or_default();
    assert_eq!(data, bytes);
    assert_eq!(data.as_ptr(), bytes.as_ptr());
    assert!(block_on(body.next()).is_none());
}

#[test]
fn a_large_burst_is_split_at_the_frame_limit() {
    let big = "x".repeat(MAX_FRAME_BYTES / 2 + 1);
    let body = coalesced(futures::stream::iter([
        event(&big),
        event(&big),
        event(&big),
        SseChunk::End(usage(0)),
    ]));
    let seen = frames(body);
    assert_eq!(
        seen,
        [
            Seen::Data(big.repeat(2)),
            Seen::Data(big.clone()),
            Seen::Usage("5".to_string()),
        ]
    );
}

#[test]
fn the_stream_is_not_polled_after_the_usage_trailer() {
    // The relay's generators end at their `End` yield: code after it must never run.
    let polls_after_end = Arc::new(AtomicUsize::new(0));
    let counter = polls_after_end.clone();
    let mut items = vec![event("a\n\n"), SseChunk::End(usage(2))].into_iter();
    let body = coalesced(futures::stream::poll_fn(move |_| match items.next() {
        Some(chunk) => Poll::Ready(Some(chunk)),
        None => {
            counter.fetch_add(1, Ordering::SeqCst);
            Poll::Ready(None)
        }
    }));
    assert_eq!(
        frames(body),
        [
            Seen::Data("a\n\n".to_string()),
            Seen::Usage("7".to_string())
        ]
    );
    assert_eq!(polls_after_end.load(Ordering::SeqCst), 0);
}

#[test]
fn a_stream_without_usage_ends_after_its_data() {
    let body = coalesced(futures::stream::iter([event("a\n\n"), event("b\n\n")]));
    assert_eq!(frames(body), [Seen::Data("a\n\nb\n\n".to_string())]);
}
