//! The verdict cache in front of the key store: SHA-256 of the presented key -> verdict, for a
//! short TTL. Invalidated by key id when an operator changes a key on this replica; other
//! replicas see the change when their entry expires.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::record::{KeyPolicy, KeyRecord};
use crate::auth::Verdict;

/// Past this many entries the expired ones go, then (if still full) all of them.
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone)]
pub struct Cached {
    pub verdict: Verdict,
    /// The key behind the verdict (none for unknown keys).
    pub key_id: Option<String>,
    expires: SystemTime,
}

/// What the request path and the spend watch need to know about a recently seen key.
#[derive(Clone)]
struct KeyFacts {
    /// Monthly budget in nano-USD.
    budget_nanos: Option<u64>,
    /// This month's spend as this replica knows it: the counter read at the check plus the usage
    /// written here since (nano-USD). `None`: not read yet.
    spent_nanos: Option<u64>,
    policy: KeyPolicy,
    expires: SystemTime,
}

/// A budgeted key's budget and its known spend, for the spend watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpendWatch {
    pub budget_nanos: u64,
    pub spent_nanos: Option<u64>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Cached>,
    /// key id -> facts of keys recently allowed or looked up.
    keys: HashMap<String, KeyFacts>,
}

pub struct VerdictCache {
    ttl: Duration,
    inner: Mutex<Inner>,
}

impl VerdictCache {
    pub fn new(ttl: Duration) -> VerdictCache {
        VerdictCache {
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn get(&self, hash: &str, now: SystemTime) -> Option<Cached> {
        let inner = self.inner.lock().ok()?;
        inner.entries.get(hash).filter(|c| c.expires > now).cloned()
    }

    /// Cache a verdict (and, for an allowed key, its record's facts and the month's spend the
    /// verdict was decided on).
    pub fn put(
        &self,
        hash: String,
        verdict: Verdict,
        record: Option<&KeyRecord>,
        spent_nanos: Option<u64>,
        now: SystemTime,
    ) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.retain(|_, c| c.expires > now);
            inner.keys.retain(|_, facts| facts.expires > now);
            if inner.entries.len() >= MAX_ENTRIES {
                *inner = Inner::default();
            }
        }
        let expires = now + self.ttl;
        if let (Some(record), Verdict::Allowed(_)) = (record, &verdict) {
            let mut facts = facts(record, expires);
            facts.spent_nanos = spent_nanos;
            inner.keys.insert(record.id.clone(), facts);
        }
        let key_id = record.map(|r| r.id.clone());
        inner.entries.insert(
            hash,
            Cached {
                verdict,
                key_id,
                expires,
            },
        );
    }

    /// Forget every verdict about `key_id`.
    pub fn invalidate_key(&self, key_id: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            inner
                .entries
                .retain(|_, c| c.key_id.as_deref() != Some(key_id));
            inner.keys.remove(key_id);
        }
    }

    /// After usage of `cost_nanos` was written for `key_id`: add it to the known spend and return
    /// the budget with the new spend, if a fresh allowed verdict with a budget is cached.
    pub fn add_spend(&self, key_id: &str, cost_nanos: u64, now: SystemTime) -> Option<SpendWatch> {
        let mut inner = self.inner.lock().ok()?;
        let facts = inner.keys.get_mut(key_id).filter(|f| f.expires > now)?;
        let budget_nanos = facts.budget_nanos?;
        if let Some(spent) = &mut facts.spent_nanos {
            *spent = spent.saturating_add(cost_nanos);
        }
        Some(SpendWatch {
            budget_nanos,
            spent_nanos: facts.spent_nanos,
        })
    }

    /// The spend just read from the store for `key_id` (replaces the estimate).
    pub fn set_spend(&self, key_id: &str, spent_nanos: u64) {
        if let Ok(mut inner) = self.inner.lock()
            && let Some(facts) = inner.keys.get_mut(key_id)
        {
            facts.spent_nanos = Some(spent_nanos);
        }
    }

    /// The cached policy of `key_id`, if it was seen within the TTL.
    pub fn policy_of(&self, key_id: &str, now: SystemTime) -> Option<KeyPolicy> {
        let inner = self.inner.lock().ok()?;
        let facts = inner.keys.get(key_id).filter(|f| f.expires > now)?;
        Some(facts.policy.clone())
    }

    /// Remember a key's facts after a lookup by id.
    pub fn put_record(&self, record: &KeyRecord, now: SystemTime) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut inner) = self.inner.lock() {
            inner
                .keys
                .insert(record.id.clone(), facts(record, now + self.ttl));
        }
    }
}

fn facts(record: &KeyRecord, expires: SystemTime) -> KeyFacts {
    KeyFacts {
        budget_nanos: record.budget_nanos(),
        spent_nanos: None,
        policy: record.policy(),
        expires,
    }
}
