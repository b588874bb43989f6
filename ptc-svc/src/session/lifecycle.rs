//! Reading a session for a translator, the stored rounds for replay, and the end of sessions:
//! explicit close, idle expiry (the sweeper), and the drain at shutdown.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::drive;
use super::manager::{SessionError, Sessions, record_of};
use super::{Phase, SessionRecord, StoredRound, millis, now_ms};

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

    pub fn store_round(
        &self,
        container_id: &str,
        key_id: &str,
        mut round: StoredRound,
    ) -> Result<i64, SessionError> {
        let session = self.lookup(container_id, key_id)?;
        round.tool_use_ids.sort();
        let stored_at = round.stored_at_unix;
        record_of(&session).last_round = Some(round);
        session.rounds.send_modify(|version| *version += 1);
        Ok(stored_at + i64::try_from(self.config.replay_ttl.as_secs()).unwrap_or(i64::MAX))
    }

    /// The stored round answering exactly `ids` (as a set), waiting up to `wait` for it.
    pub async fn get_round(
        &self,
        container_id: &str,
        key_id: &str,
        mut ids: Vec<String>,
        wait: Duration,
    ) -> Result<Option<StoredRound>, SessionError> {
        let session = self.lookup(container_id, key_id)?;
        ids.sort();
        let mut changes = session.rounds.subscribe();
        let ttl = i64::try_from(self.config.replay_ttl.as_secs()).unwrap_or(i64::MAX);
        let find = || {
            record_of(&session).last_round.clone().filter(|round| {
                round.tool_use_ids == ids && round.stored_at_unix + ttl > now_ms() / 1000
            })
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(round) = find() {
                return Ok(Some(round));
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Ok(find()),
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
