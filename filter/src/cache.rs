//! Per-worker verdict cache keyed by the SHA-256 of the key, with per-entry expiry and a size
//! bound (oldest insertion evicted first). Time is passed in; nothing here reads a clock.

use std::collections::{HashMap, VecDeque};

use crate::auth::{KeyHash, Verdict};

pub struct AuthCache {
    capacity: usize,
    entries: HashMap<KeyHash, Entry>,
    /// Insertion order; an item is stale when its generation no longer matches the entry.
    order: VecDeque<(KeyHash, u64)>,
    generation: u64,
    /// Lookups since the host last took them (reported as Envoy stats by `host`).
    counts: Lookups,
}

/// Cache lookups: a hit answers without an `Auth/Check` call; an expired entry is a miss.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lookups {
    pub hits: u64,
    pub misses: u64,
}

struct Entry {
    verdict: Verdict,
    expires_at_ms: u64,
    generation: u64,
}

impl AuthCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
            counts: Lookups::default(),
        }
    }

    /// The lookups counted since the previous call (then zero again).
    pub fn take_lookups(&mut self) -> Lookups {
        std::mem::take(&mut self.counts)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached verdict, unless absent or expired (an expired entry is dropped).
    pub fn get(&mut self, key: &KeyHash, now_ms: u64) -> Option<Verdict> {
        let found = self.lookup(key, now_ms);
        if found.is_some() {
            self.counts.hits += 1;
        } else {
            self.counts.misses += 1;
        }
        found
    }

    fn lookup(&mut self, key: &KeyHash, now_ms: u64) -> Option<Verdict> {
        let entry = self.entries.get(key)?;
        if now_ms < entry.expires_at_ms {
            return Some(entry.verdict.clone());
        }
        self.entries.remove(key);
        None
    }

    pub fn insert(&mut self, key: KeyHash, verdict: Verdict, ttl_ms: u64, now_ms: u64) {
        if self.capacity == 0 || ttl_ms == 0 {
            return;
        }
        if !self.entries.contains_key(&key) {
            while self.entries.len() >= self.capacity {
                if !self.evict_oldest() {
                    break;
                }
            }
        }
        self.generation += 1;
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        self.entries.insert(
            key,
            Entry {
                verdict,
                expires_at_ms,
                generation: self.generation,
            },
        );
        self.order.push_back((key, self.generation));
        if self.order.len() > self.capacity.saturating_mul(2).max(16) {
            self.compact_order();
        }
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((key, generation)) = self.order.pop_front() {
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.generation == generation)
            {
                self.entries.remove(&key);
                return true;
            }
        }
        false
    }

    /// Drops stale order items (left behind by re-inserts and expiry).
    fn compact_order(&mut self) {
        let entries = &self.entries;
        self.order.retain(|(key, generation)| {
            entries
                .get(key)
                .is_some_and(|e| e.generation == *generation)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Grant;
    use crate::reply::LocalReply;

    fn grant(id: &str) -> Verdict {
        Ok(Grant {
            key_id: id.into(),
            tier: "default",
            requests_per_minute: 0,
            tokens_per_minute: 0,
        })
    }

    fn k(n: u8) -> KeyHash {
        [n; 32]
    }

    #[test]
    fn hit_until_expiry() {
        let mut cache = AuthCache::new(10);
        cache.insert(k(1), grant("a"), 1_000, 5_000);
        assert_eq!(cache.get(&k(1), 5_999), Some(grant("a")));
        assert_eq!(cache.get(&k(1), 6_000), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn caches_denials_too() {
        let mut cache = AuthCache::new(10);
        let denied: Verdict = Err(LocalReply::missing_key());
        cache.insert(k(2), denied.clone(), 2_000, 0);
        assert_eq!(cache.get(&k(2), 1), Some(denied));
    }

    #[test]
    fn bounded_with_oldest_evicted() {
        let mut cache = AuthCache::new(3);
        for n in 0..3 {
            cache.insert(k(n), grant("x"), 60_000, 0);
        }
        cache.insert(k(0), grant("refreshed"), 60_000, 1);
        cache.insert(k(9), grant("new"), 60_000, 2);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&k(1), 3), None, "oldest insertion goes first");
        assert_eq!(cache.get(&k(0), 3), Some(grant("refreshed")));
        for n in 10..200 {
            cache.insert(k(n), grant("y"), 60_000, 3);
            assert!(cache.len() <= 3);
        }
        assert!(cache.order.len() <= 16);
    }

    #[test]
    fn lookups_are_counted_until_taken() {
        let mut cache = AuthCache::new(10);
        assert_eq!(cache.get(&k(1), 0), None);
        cache.insert(k(1), grant("a"), 1_000, 0);
        assert!(cache.get(&k(1), 1).is_some());
        assert!(cache.get(&k(1), 2).is_some());
        assert_eq!(cache.get(&k(1), 1_000), None, "expired counts as a miss");
        assert_eq!(cache.take_lookups(), Lookups { hits: 2, misses: 2 });
        assert_eq!(cache.take_lookups(), Lookups::default());
    }

    #[test]
    fn zero_capacity_or_ttl_disables() {
        let mut cache = AuthCache::new(0);
        cache.insert(k(1), grant("a"), 1_000, 0);
        assert_eq!(cache.get(&k(1), 0), None);
        let mut cache = AuthCache::new(5);
        cache.insert(k(1), grant("a"), 0, 0);
        assert!(cache.is_empty());
    }
}
