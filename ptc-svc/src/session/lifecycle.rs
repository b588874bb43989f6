//! Reading a session for a translator, the stored rounds for replay, and the end of sessions:
//! explicit close, idle expiry (the sweeper), and the drain at shutdown.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::drive;
use super::manager::{SessionError, Sessions, record_of};
use super::{Phase, RoundLookup, SegmentKey, SessionRecord, StoredRound, millis, now_ms};

impl Sessions {
    /// The session record for a translator; refreshes the expiry (the request names it).
    pub fn get(&self, container_id: &str, key_id: &str) -> Result<SessionRecord, SessionError> {
        let session = self.lookup(container_id, key_id)?;
        let mut record = record_of(&session);
        let now = now_ms();
        if !record.is_live(now, self.max_lifetime()) {
            return Err(SessionError::NotFound);
        }
        record.touch(now, self.config.session_idle, self.max_lifetime());
        Ok(record.clone())
    }

    /// Stores the response of a round for replay (ptc.md 5.6) and ends the round its ids opened.
    pub fn store_round(
        &self,
        container_id: &str,
        key_id: &str,
        mut round: StoredRound,
    ) -> Result<i64, SessionError> {
        let session = self.lookup(container_id, key_id)?;
        round.tool_use_ids.sort();
        let stored_at = round.stored_at_unix;
        {
            let mut record = record_of(&session);
            if record
                .open_round
                .as_ref()
                .is_some_and(|open| open.tool_use_ids == round.tool_use_ids)
            {
                record.open_round = None;
            }
            record.last_round = Some(round);
        }
        session.rounds.send_modify(|version| *version += 1);
        Ok(stored_at + i64::try_from(self.config.replay_ttl.as_secs()).unwrap_or(i64::MAX))
    }

    /// The request serving the round `ids` opened gave up without a response: release the round,
    /// so an identical retry takes it over (and waiting retries stop waiting).
    pub fn release_round(
        &self,
        container_id: &str,
        key_id: &str,
        mut ids: Vec<String>,
        owner: &str,
    ) -> Result<(), SessionError> {
        let session = self.lookup(container_id, key_id)?;
        ids.sort();
        {
            let mut record = record_of(&session);
            if let Some(open) = record.open_round.as_mut()
                && open.tool_use_ids == ids
                && (owner.is_empty() || open.owner.is_empty() || open.owner == owner)
            {
                open.claimed = false;
                tracing::info!(container = %container_id, execution_id = %open.execution_id, "round released without a response");
            }
        }
        session.rounds.send_modify(|version| *version += 1);
        Ok(())
    }

    /// `owner` still serves the round `ids` opened: its claim now lasts `lease` from now. False
    /// when the round is stored, released or another request's. A claim whose lease ran out is
    /// renewed too while nobody took the round over (the owner was only slow).
    pub fn renew_round(
        &self,
        container_id: &str,
        key_id: &str,
        mut ids: Vec<String>,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, SessionError> {
        let session = self.lookup(container_id, key_id)?;
        ids.sort();
        let mut record = record_of(&session);
        match record.open_round.as_mut() {
            Some(open)
                if open.tool_use_ids == ids
                    && open.claimed
                    && !owner.is_empty()
                    && open.owner == owner =>
            {
                open.claim(owner, Some(lease), now_ms());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The stored round answering exactly `ids` (as a set). While a request still serves the
    /// round those ids opened, waits up to `wait` for its response (or for its lease to run
    /// out).
    pub async fn get_round(
        &self,
        container_id: &str,
        key_id: &str,
        mut ids: Vec<String>,
        wait: Duration,
    ) -> Result<RoundLookup, SessionError> {
        let session = self.lookup(container_id, key_id)?;
        ids.sort();
        let mut changes = session.rounds.subscribe();
        let ttl = i64::try_from(self.config.replay_ttl.as_secs()).unwrap_or(i64::MAX);
        let look = || {
            let record = record_of(&session);
            if let Some(round) = record.last_round.as_ref().filter(|round| {
                round.tool_use_ids == ids && round.stored_at_unix + ttl > now_ms() / 1000
            }) {
                return RoundLookup::Found(round.clone());
            }
            match record.open_round.as_ref() {
                Some(open) if open.tool_use_ids == ids && open.held(now_ms()) => {
                    RoundLookup::InProgress
                }
                Some(open) if open.tool_use_ids == ids => {
                    let key = SegmentKey::Deliver(open.execution_id.clone(), ids.clone());
                    let replayable = record.segment.as_ref().is_some_and(|s| s.key == key);
                    if replayable {
                        RoundLookup::Resumable
                    } else {
                        RoundLookup::NotFound
                    }
                }
                _ => RoundLookup::NotFound,
            }
        };
        // When the owner's lease runs out if it is not renewed: nothing signals that, so the
        // wait wakes up to look again.
        let lease_left = || {
            let record = record_of(&session);
            let until = record.open_round.as_ref()?.lease_until_ms?;
            Some(Duration::from_millis(
                u64::try_from(until - now_ms()).unwrap_or(0) + 1,
            ))
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let found = look();
            if found != RoundLookup::InProgress {
                return Ok(found);
            }
            let wake = lease_left().map_or(deadline, |left| {
                deadline.min(tokio::time::Instant::now() + left)
            });
            match tokio::time::timeout_at(wake, changes.changed()).await {
                Ok(Ok(())) => continue,
                Err(_) if wake < deadline => continue,
                _ => return Ok(look()),
            }
        }
    }

    /// Closes a live session (removes its container). False when it was not live here.
    pub async fn close(&self, container_id: &str, key_id: &str) -> Result<bool, SessionError> {
        let Ok(session) = self.lookup(container_id, key_id) else {
            return Ok(false);
        };
        if record_of(&session).phase == Phase::Closed {
            return Ok(false);
        }
        drive::close_session(self, &session, "closed by request").await;
        Ok(true)
    }

    /// The sweeper's pass: close expired sessions, forget closed ones past the replay TTL.
    pub async fn sweep_expired(&self) {
        let now = now_ms();
        let ttl = millis(self.config.replay_ttl);
        for session in self.all() {
            let (expired, forget, container_id) = {
                let record = record_of(&session);
                (
                    record.phase != Phase::Closed
                        && record.phase != Phase::Starting
                        && record.expired(now, self.max_lifetime()),
                    record
                        .closed_at_ms
                        .is_some_and(|closed| closed + ttl <= now),
                    record.container_id.clone(),
                )
            };
            if expired {
                drive::close_session(self, &session, "expired").await;
            } else if forget {
                self.forget(&container_id);
            }
        }
    }

    /// Stops new sessions, lets running executions finish (up to PTC_DRAIN_S), removes all.
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + self.config.drain;
        while tokio::time::Instant::now() < deadline
            && self
                .all()
                .iter()
                .any(|s| record_of(s).phase == Phase::Running)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let closing = self
            .all()
            .into_iter()
            .filter(|s| record_of(s).phase != Phase::Closed)
            .collect::<Vec<_>>();
        let closes = closing
            .iter()
            .map(|s| drive::close_session(self, s, "shutdown"));
        futures_util::future::join_all(closes).await;
    }
}
