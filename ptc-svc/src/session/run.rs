//! Starting executions and delivering results: the state checks, exact-id matching of results,
//! and replays (a repeated call waits for, and answers with, the segment the first one started).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::drive::{self, Action};
use super::manager::{SessionError, Sessions, record_of};
use super::{
    ExecutionRecord, OpenRound, Outcome, Phase, QueuedExecution, SegmentKey, SegmentSlot,
    SessionRecord, millis, now_ms,
};

impl Sessions {
    pub async fn execute(
        self: &Arc<Self>,
        container_id: &str,
        key_id: &str,
        execution: QueuedExecution,
        queue: Vec<QueuedExecution>,
    ) -> Result<Outcome, SessionError> {
        let session = self.lookup(container_id, key_id)?;
        let plan = 'plan: {
            let mut record = record_of(&session);
            let now = now_ms();
            if let Some(replay) =
                replay_of(&record, &SegmentKey::Start(execution.execution_id.clone()))
            {
                break 'plan Err(replay);
            }
            // The same execution id again, after it moved on (paused, resumed): never run it twice;
            // answer with its latest segment.
            let same = record
                .execution
                .as_ref()
                .is_some_and(|e| e.execution_id == execution.execution_id);
            if let (true, Some(slot)) = (same, record.segment.as_ref()) {
                break 'plan Err(Replay {
                    receiver: slot.outcome.clone(),
                    replayed: true,
                    claimed: false,
                });
            }
            if !record.is_live(now, self.max_lifetime()) {
                return Err(SessionError::NotFound);
            }
            check_can_start(&record)?;
            let mut queue = queue;
            queue.retain(|queued| queued.execution_id != execution.execution_id);
            record.queue = queue;
            record.execution = Some(ExecutionRecord {
                execution_id: execution.execution_id.clone(),
                code: execution.code,
                tool_names: execution.tool_names,
                clock_used: Duration::ZERO,
                calls_made: 0,
                pending: Vec::new(),
                last_outcome: None,
                last_delivery: Vec::new(),
            });
            Ok(self.begin_segment(&mut record, SegmentKey::Start(execution.execution_id), now))
        };
        let (sender, receiver) = match plan {
            Ok(channel) => channel,
            Err(replay) => return self.wait_outcome(replay).await,
        };
        drive::spawn(Arc::clone(self), session, Action::Start, sender);
        self.wait_outcome(Replay {
            receiver,
            replayed: false,
            claimed: false,
        })
        .await
    }

    pub async fn deliver(
        self: &Arc<Self>,
        container_id: &str,
        key_id: &str,
        execution_id: &str,
        results: Vec<(String, bool, String)>,
    ) -> Result<Outcome, SessionError> {
        self.deliver_as(container_id, key_id, execution_id, results, "", None)
            .await
    }

    /// Delivers results on behalf of `owner`, the request that will serve the round they open,
    /// claimed for `lease` unless renewed (`None`: until stored or released).
    pub async fn deliver_as(
        self: &Arc<Self>,
        container_id: &str,
        key_id: &str,
        execution_id: &str,
        results: Vec<(String, bool, String)>,
        owner: &str,
        lease: Option<Duration>,
    ) -> Result<Outcome, SessionError> {
        let session = self.lookup(container_id, key_id)?;
        let mut ids: Vec<String> = results.iter().map(|(id, _, _)| id.clone()).collect();
        ids.sort();
        let key = SegmentKey::Deliver(execution_id.to_owned(), ids.clone());
        let plan = 'plan: {
            let mut record = record_of(&session);
            let now = now_ms();
            if let Some(mut replay) = replay_of(&record, &key) {
                // A repeat never reaches the code. It serves the round when it is the owner's
                // own repeat, or takes the round over when released (or its lease ran out).
                if let Some(open) = record.open_round.as_mut()
                    && open.execution_id == execution_id
                    && open.tool_use_ids == ids
                {
                    if !open.held(now) {
                        open.claim(owner, lease, now);
                        replay.claimed = true;
                        tracing::info!(container = %container_id, execution_id, "a repeated delivery takes over a released round");
                    } else if !owner.is_empty() && open.owner == owner {
                        open.claim(owner, lease, now);
                        replay.claimed = true;
                    }
                }
                break 'plan Err(replay);
            }
            if !record.is_live(now, self.max_lifetime()) {
                return Err(SessionError::NotFound);
            }
            let Some(execution) = record.execution.as_ref() else {
                return Err(SessionError::WrongExecution(
                    "no execution is paused".into(),
                ));
            };
            if execution.execution_id != execution_id {
                return Err(SessionError::WrongExecution(format!(
                    "execution {execution_id} is not the paused execution ({})",
                    execution.execution_id
                )));
            }
            match record.phase {
                Phase::Paused => {}
                Phase::Running | Phase::Starting => return Err(SessionError::Busy),
                _ => {
                    return Err(SessionError::WrongExecution(format!(
                        "execution {execution_id} is not paused"
                    )));
                }
            }
            let answers = match_results(&execution.pending, results)?;
            let (sender, receiver) = self.begin_segment(&mut record, key, now);
            if let Some(execution) = record.execution.as_mut() {
                execution.pending.clear();
                execution.last_delivery.clone_from(&ids);
            }
            record.open_round = Some(OpenRound {
                execution_id: execution_id.to_owned(),
                tool_use_ids: ids,
                claimed: true,
                owner: owner.to_owned(),
                lease_until_ms: lease.map(|lease| now + millis(lease)),
            });
            Ok((sender, receiver, answers))
        };
        let (sender, receiver, answers) = match plan {
            Ok(plan) => plan,
            Err(replay) => return self.wait_outcome(replay).await,
        };
        drive::spawn(Arc::clone(self), session, Action::Deliver(answers), sender);
        self.wait_outcome(Replay {
            receiver,
            replayed: false,
            claimed: true,
        })
        .await
    }

    fn begin_segment(
        &self,
        record: &mut SessionRecord,
        key: SegmentKey,
        now: i64,
    ) -> (
        watch::Sender<Option<Outcome>>,
        watch::Receiver<Option<Outcome>>,
    ) {
        let (sender, receiver) = watch::channel(None);
        record.phase = Phase::Running;
        record.touch(now, self.config.session_idle, self.max_lifetime());
        record.segment = Some(SegmentSlot {
            key,
            outcome: receiver.clone(),
        });
        (sender, receiver)
    }

    async fn wait_outcome(&self, replay: Replay) -> Result<Outcome, SessionError> {
        let Replay {
            mut receiver,
            replayed,
            claimed,
        } = replay;
        let outcome = receiver
            .wait_for(Option::is_some)
            .await
            .map_err(|_| SessionError::Internal("the execution driver stopped".into()))?
            .clone();
        let mut outcome = outcome.ok_or_else(|| SessionError::Internal("no outcome".into()))?;
        outcome.replayed = replayed;
        outcome.round_claimed = claimed;
        Ok(outcome)
    }
}

struct Replay {
    receiver: watch::Receiver<Option<Outcome>>,
    replayed: bool,
    /// The caller serves the round this delivery opened.
    claimed: bool,
}

/// A repeat of the call that started the current (or last) segment: answer with its outcome.
fn replay_of(record: &SessionRecord, key: &SegmentKey) -> Option<Replay> {
    let slot = record.segment.as_ref()?;
    (slot.key == *key).then(|| Replay {
        receiver: slot.outcome.clone(),
        replayed: true,
        claimed: false,
    })
}

fn check_can_start(record: &SessionRecord) -> Result<(), SessionError> {
    match record.phase {
        Phase::Idle => Ok(()),
        Phase::Paused => Err(SessionError::PendingCalls(
            record
                .execution
                .iter()
                .flat_map(|e| e.pending.iter().map(|c| c.id.clone()))
                .collect(),
        )),
        Phase::Running | Phase::Starting => Err(SessionError::Busy),
        Phase::Closed => Err(SessionError::NotFound),
    }
}

/// Pairs every pending call with exactly one result, by exact id (never by position).
fn match_results(
    pending: &[super::ToolCall],
    results: Vec<(String, bool, String)>,
) -> Result<Vec<(u64, bool, String)>, SessionError> {
    let mut by_id: HashMap<String, (bool, String)> = HashMap::new();
    let mut duplicated = Vec::new();
    let mut unknown = Vec::new();
    for (id, is_error, content) in results {
        if !pending.iter().any(|call| call.id == id) {
            unknown.push(id);
            continue;
        }
        match by_id.entry(id) {
            std::collections::hash_map::Entry::Occupied(entry) => {
                duplicated.push(entry.key().clone())
            }
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert((is_error, content));
            }
        }
    }
    let missing: Vec<String> = pending
        .iter()
        .filter(|call| !by_id.contains_key(&call.id))
        .map(|call| call.id.clone())
        .collect();
    if !missing.is_empty() || !duplicated.is_empty() || !unknown.is_empty() {
        let mut parts = Vec::new();
        for (label, ids) in [
            ("missing results for", &missing),
            ("duplicated results for", &duplicated),
            ("unknown tool_use ids", &unknown),
        ] {
            if !ids.is_empty() {
                parts.push(format!("{label}: {}", ids.join(", ")));
            }
        }
        return Err(SessionError::ResultsMismatch {
            message: parts.join("; "),
            missing,
            duplicated,
            unknown,
        });
    }
    Ok(pending
        .iter()
        .filter_map(|call| {
            by_id
                .remove(&call.id)
                .map(|(is_error, content)| (call.seq, is_error, content))
        })
        .collect())
}
