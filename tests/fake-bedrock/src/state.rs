//! Shared state behind the server and the Rust API: the FIFO scenario queue, the recorded requests,
//! and the per-call choice of scenario (marker, tool result, queue, default).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::builtin::{builtin, find_marker};
use crate::request::{Operation, RecordedRequest, RequestView};
use crate::scenario::{ErrorSpec, Scenario};

/// Characters of a tool result echoed by the automatic `Tool said: ...` reply.
const TOOL_RESULT_ECHO_CHARS: usize = 200;

/// What to answer one call with.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// An HTTP error before anything else.
    Error(ErrorSpec),
    /// A reply rendered from this scenario (its `error` is ignored).
    Reply(Box<Scenario>),
}

#[derive(Debug)]
struct Queued {
    scenario: Scenario,
    errors_left: u32,
    reply_after_errors: bool,
}

/// Recorded requests kept by default (the oldest are dropped beyond this, so load tests stay bounded).
pub const DEFAULT_RECORD_LIMIT: usize = 10_000;

#[derive(Debug)]
pub struct State {
    queue: Mutex<VecDeque<Queued>>,
    requests: Mutex<VecDeque<RecordedRequest>>,
    record_limit: AtomicUsize,
    /// Streams whose body is still being written (a cancelled client drops its body).
    pub(crate) active_streams: Arc<AtomicUsize>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            queue: Mutex::default(),
            requests: Mutex::default(),
            record_limit: AtomicUsize::new(DEFAULT_RECORD_LIMIT),
            active_streams: Arc::default(),
        }
    }
}

/// Poisoning only means another test thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    pub fn enqueue(&self, scenario: Scenario) {
        let (errors_left, reply_after_errors) = match (&scenario.error, scenario.error_times) {
            (None, _) => (0, true),
            (Some(_), None) => (1, false),
            (Some(_), Some(times)) => (times, true),
        };
        lock(&self.queue).push_back(Queued {
            scenario,
            errors_left,
            reply_after_errors,
        });
    }

    pub fn queued(&self) -> Vec<Scenario> {
        lock(&self.queue)
            .iter()
            .map(|q| q.scenario.clone())
            .collect()
    }

    pub fn record(&self, request: RecordedRequest) {
        let limit = self.record_limit.load(Ordering::Relaxed);
        let mut requests = lock(&self.requests);
        requests.push_back(request);
        while requests.len() > limit {
            requests.pop_front();
        }
    }

    /// Keeps at most `limit` recorded requests (0 records nothing).
    pub fn set_record_limit(&self, limit: usize) {
        self.record_limit.store(limit, Ordering::Relaxed);
        let mut requests = lock(&self.requests);
        while requests.len() > limit {
            requests.pop_front();
        }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        lock(&self.requests).clear();
    }

    pub fn reset(&self) {
        lock(&self.queue).clear();
        self.clear_requests();
    }

    /// Chooses the answer for a call (see the crate docs for the order).
    pub fn decide(&self, operation: Operation, model_id: &str, view: &RequestView) -> Decision {
        if operation.is_generation() {
            let marked = view
                .last_user_texts
                .iter()
                .find_map(|text| find_marker(text));
            if let Some(scenario) = marked.and_then(builtin) {
                let refusal = tier_refusal(&scenario, view, model_id);
                return match scenario.error.clone().or(refusal) {
                    Some(error) => Decision::Error(error),
                    None => Decision::Reply(Box::new(scenario)),
                };
            }
        }
        let tool_result = view
            .last_user_tool_result
            .as_deref()
            .filter(|_| operation.is_generation());
        if let Some(decision) = self.take_queued(operation, model_id, view) {
            return decision;
        }
        match tool_result {
            Some(result) => {
                let echo: String = result.chars().take(TOOL_RESULT_ECHO_CHARS).collect();
                Decision::Reply(Box::new(Scenario::text(format!("Tool said: {echo}"))))
            }
            None => Decision::Reply(Box::default()),
        }
    }

    fn take_queued(
        &self,
        operation: Operation,
        model_id: &str,
        view: &RequestView,
    ) -> Option<Decision> {
        let after_tool_result = operation.is_generation() && view.last_user_tool_result.is_some();
        let mut queue = lock(&self.queue);
        let position = queue.iter().position(|queued| {
            let scenario = &queued.scenario;
            scenario.applies_to(operation)
                && scenario
                    .model
                    .as_deref()
                    .is_none_or(|model| model == model_id)
                && (!after_tool_result || scenario.on_tool_result)
        })?;
        let queued = queue.get_mut(position)?;
        // A refused tier leaves the scenario queued for the retry without the tier.
        if let Some(refusal) = tier_refusal(&queued.scenario, view, model_id) {
            return Some(Decision::Error(refusal));
        }
        if queued.errors_left > 0 {
            queued.errors_left -= 1;
            let error = queued.scenario.error.clone();
            if queued.errors_left == 0 && !queued.reply_after_errors {
                queue.remove(position);
            }
            if let Some(error) = error {
                return Some(Decision::Error(error));
            }
        }
        queue
            .remove(position)
            .map(|queued| Decision::Reply(Box::new(queued.scenario)))
    }
}

/// The ValidationException Bedrock answers when a model does not offer the requested service tier.
fn tier_refusal(scenario: &Scenario, view: &RequestView, model_id: &str) -> Option<ErrorSpec> {
    let tier = view.service_tier.as_ref()?;
    scenario.reject_service_tiers.contains(tier).then(|| ErrorSpec {
        status: None,
        kind: "ValidationException".into(),
        message: Some(format!(
            "The requested service tier ({tier}) is not supported for model {model_id}. Try again with a different service tier."
        )),
        original_status_code: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view_with_text(text: &str) -> RequestView {
        RequestView {
            last_user_texts: vec![text.into()],
            ..RequestView::default()
        }
    }

    #[test]
    fn marker_beats_queue_and_queue_beats_default() {
        let state = State::default();
        state.enqueue(Scenario::text("queued"));
        let marked = state.decide(Operation::Converse, "m", &view_with_text("[[fake:bash]]"));
        assert!(
            matches!(marked, Decision::Reply(s) if s.stop_reason.is_none() && s.content.as_ref().is_some_and(|c| c.len() == 2))
        );
        assert_eq!(
            state.decide(Operation::Converse, "m", &view_with_text("x")),
            Decision::Reply(Box::new(Scenario::text("queued")))
        );
        assert_eq!(
            state.decide(Operation::Converse, "m", &view_with_text("x")),
            Decision::Reply(Box::default())
        );
        assert!(matches!(
            state.decide(Operation::Invoke, "m", &view_with_text("[[fake:throttle]]")),
            Decision::Error(_)
        ));
    }

    #[test]
    fn tool_results_get_an_echo_unless_a_scenario_opts_in() {
        let state = State::default();
        state.enqueue(Scenario::text("plain"));
        let view = RequestView {
            last_user_tool_result: Some("x".repeat(300)),
            ..RequestView::default()
        };
        let Decision::Reply(echo) = state.decide(Operation::ConverseStream, "m", &view) else {
            panic!("expected a reply");
        };
        assert_eq!(
            *echo,
            Scenario::text(format!("Tool said: {}", "x".repeat(200)))
        );
        state.reset();
        state.enqueue(Scenario {
            on_tool_result: true,
            ..Scenario::text("scripted")
        });
        assert_eq!(
            state.decide(Operation::ConverseStream, "m", &view),
            Decision::Reply(Box::new(Scenario {
                on_tool_result: true,
                ..Scenario::text("scripted")
            }))
        );
    }

    #[test]
    fn error_times_then_success_and_model_filter() {
        let state = State::default();
        state.enqueue(Scenario {
            model: Some("other".into()),
            ..Scenario::text("not for m")
        });
        state.enqueue(Scenario {
            error_times: Some(2),
            ..Scenario::error("ThrottlingException", "slow")
        });
        state.enqueue(Scenario::error("ValidationException", "once"));
        let view = RequestView::default();
        assert!(
            matches!(state.decide(Operation::Converse, "m", &view), Decision::Error(e) if e.kind == "ThrottlingException")
        );
        assert!(
            matches!(state.decide(Operation::Converse, "m", &view), Decision::Error(e) if e.kind == "ThrottlingException")
        );
        assert!(matches!(
            state.decide(Operation::Converse, "m", &view),
            Decision::Reply(_)
        ));
        assert!(
            matches!(state.decide(Operation::Converse, "m", &view), Decision::Error(e) if e.kind == "ValidationException")
        );
        assert_eq!(
            state.decide(Operation::Converse, "m", &view),
            Decision::Reply(Box::default())
        );
        assert_eq!(state.queued().len(), 1);
        assert!(
            matches!(state.decide(Operation::Converse, "other", &view), Decision::Reply(s) if s.model.is_some())
        );
    }

    #[test]
    fn recording_is_bounded() {
        let state = State::default();
        let request = |n: usize| RecordedRequest {
            operation: Operation::Converse,
            model_id: n.to_string(),
            method: "POST".into(),
            path: "/".into(),
            headers: Default::default(),
            body: serde_json::Value::Null,
            body_bytes: 0,
        };
        state.set_record_limit(2);
        (0..5).for_each(|n| state.record(request(n)));
        let ids: Vec<String> = state.requests().into_iter().map(|r| r.model_id).collect();
        assert_eq!(ids, vec!["3", "4"]);
        state.set_record_limit(0);
        assert!(state.requests().is_empty());
    }

    #[test]
    fn count_tokens_only_takes_its_own_scenarios() {
        let state = State::default();
        state.enqueue(Scenario::text("generation"));
        state.enqueue(Scenario {
            count_tokens: Some(42),
            ..Scenario::default()
        });
        let view = view_with_text("[[fake:throttle]]");
        assert!(
            matches!(state.decide(Operation::CountTokens, "m", &view), Decision::Reply(s) if s.count_tokens == Some(42))
        );
        assert_eq!(
            state.decide(Operation::CountTokens, "m", &view),
            Decision::Reply(Box::default())
        );
        assert_eq!(state.queued().len(), 1);
    }
}
