//! Turns rendered frames plus a scenario's timing and failure knobs (delays, pause, mid-stream exception,
//! truncation) into a chunked HTTP body that writes each frame when its time comes.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;

use crate::error::exception_frame;
use crate::scenario::Scenario;

/// Frames to send and the delay before each.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub items: Vec<(Duration, Bytes)>,
}

impl Schedule {
    /// Applies `scenario`'s stream knobs to the event frames of a complete reply.
    pub fn plan(mut frames: Vec<Bytes>, scenario: &Scenario) -> anyhow::Result<Self> {
        if let Some(error) = &scenario.stream_error {
            frames.truncate(error.after_events);
            frames.push(exception_frame(error)?);
        } else if let Some(limit) = scenario.truncate_after_events {
            frames.truncate(limit);
        }
        let items = frames
            .into_iter()
            .enumerate()
            .map(|(index, frame)| {
                let mut delay_ms = if index == 0 {
                    scenario.first_event_delay_ms
                } else {
                    scenario.event_delay_ms
                };
                if let Some(pause) = scenario.pause
                    && pause.after_events == index
                {
                    delay_ms += pause.ms;
                }
                (Duration::from_millis(delay_ms), frame)
            })
            .collect();
        Ok(Self { items })
    }

    /// A streaming body; each frame is written after its delay (frames without delay go out together).
    /// `active` counts bodies still being written, so tests can see a cancelled call stop.
    pub fn into_body(self, active: Arc<AtomicUsize>) -> Body {
        let guard = ActiveStream::new(active);
        let stream = futures::stream::unfold(
            (self.items.into_iter(), guard),
            |(mut items, guard)| async move {
                let (delay, frame) = items.next()?;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Some((Ok::<_, Infallible>(frame), (items, guard)))
            },
        );
        Body::from_stream(stream)
    }
}

/// Increments a counter while alive; the body drops it when finished or when the client goes away.
struct ActiveStream(Arc<AtomicUsize>);

impl ActiveStream {
    fn new(counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventstream::decode_all;
    use crate::scenario::{Pause, StreamErrorSpec};

    fn frames(n: usize) -> Vec<Bytes> {
        (0..n)
            .map(|i| Bytes::from(vec![u8::try_from(i).unwrap_or(0)]))
            .collect()
    }

    #[test]
    fn delays_pause_and_truncation() {
        let scenario = Scenario {
            first_event_delay_ms: 50,
            event_delay_ms: 5,
            pause: Some(Pause {
                after_events: 2,
                ms: 100,
            }),
            truncate_after_events: Some(3),
            ..Scenario::default()
        };
        let schedule = Schedule::plan(frames(6), &scenario).expect("plans");
        let delays: Vec<u64> = schedule
            .items
            .iter()
            .map(|(d, _)| d.as_millis() as u64)
            .collect();
        assert_eq!(delays, vec![50, 5, 105]);
    }

    #[test]
    fn stream_error_replaces_the_tail() {
        let scenario = Scenario {
            stream_error: Some(StreamErrorSpec {
                after_events: 2,
                kind: "ModelStreamErrorException".into(),
                message: None,
                original_status_code: Some(529),
                original_message: None,
            }),
            ..Scenario::default()
        };
        let schedule = Schedule::plan(frames(6), &scenario).expect("plans");
        assert_eq!(schedule.items.len(), 3);
        let last = decode_all(&schedule.items[2].1).expect("exception frame decodes");
        assert_eq!(
            last[0].header(":exception-type"),
            Some("modelStreamErrorException")
        );
        assert_eq!(last[0].payload["originalStatusCode"], 529);
        assert!(last[0].payload["originalMessage"].is_string());
    }
}
