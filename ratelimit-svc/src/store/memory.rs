//! The embedded default (no `REDIS_URL`): buckets in a map under one mutex, same semantics as
//! Redis. Right for a single gateway replica; several replicas would each count separately.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Applied, CounterStore, StoreFuture};
use crate::limiter::{BucketState, Op, evaluate};

/// How often drained buckets are swept out, so memory follows active keys, not all keys ever seen.
const SWEEP_EVERY_MS: u64 = 10_000;

#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    buckets: HashMap<String, BucketState>,
    last_sweep_ms: u64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Buckets currently held (drained ones disappear at the next sweep).
    pub fn len(&self) -> usize {
        self.lock().buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a bucket half-written (each insert is
        // one map operation), so a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn apply_now(&self, now_ms: u64, ops: &[(String, Op)]) -> Applied {
        let mut inner = self.lock();
        let initial: HashMap<String, f64> = ops
            .iter()
            .map(|(key, _)| {
                let backlog = inner
                    .buckets
                    .get(key)
                    .map_or(0.0, |state| state.backlog_at(now_ms));
                (key.clone(), backlog)
            })
            .collect();
        let evaluation = evaluate(ops, &initial);
        for (key, backlog_ms) in evaluation.backlogs {
            if backlog_ms > 0.0 {
                let state = BucketState {
                    at_ms: now_ms,
                    backlog_ms,
                };
                inner.buckets.insert(key, state);
            } else {
                inner.buckets.remove(&key);
            }
        }
        if now_ms.saturating_sub(inner.last_sweep_ms) >= SWEEP_EVERY_MS {
            inner.last_sweep_ms = now_ms;
            inner
                .buckets
                .retain(|_, state| state.backlog_at(now_ms) > 0.0);
        }
        Applied {
            results: evaluation.results,
            blocked: evaluation.blocked,
        }
    }
}

impl CounterStore for MemoryStore {
    fn apply<'a>(&'a self, now_ms: u64, ops: &'a [(String, Op)]) -> StoreFuture<'a> {
        let applied = self.apply_now(now_ms, ops);
        Box::pin(async move { Ok(applied) })
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::Mode;

    fn op(limit: u64, hits: u64) -> Op {
        Op {
            period_ms: 60_000,
            limit,
            hits,
            mode: Mode::Check,
            shadow: false,
        }
    }

    #[tokio::test]
    async fn counts_per_bucket_and_forgets_drained_buckets() {
        let store = MemoryStore::new();
        let ops = vec![("a".to_owned(), op(2, 1))];
        assert!(!store.apply(0, &ops).await.unwrap().blocked);
        assert!(!store.apply(0, &ops).await.unwrap().blocked);
        assert!(store.apply(0, &ops).await.unwrap().blocked);
        let other = vec![("b".to_owned(), op(2, 1))];
        assert!(!store.apply(0, &other).await.unwrap().blocked);
        assert_eq!(store.len(), 2);
        // A minute later both drained; the sweep removes them.
        let probe = vec![("c".to_owned(), op(2, 0))];
        store.apply(60_000 + SWEEP_EVERY_MS, &probe).await.unwrap();
        assert!(store.is_empty());
    }
}
