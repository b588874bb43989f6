//! The filter's own counters, published as Envoy stats (Envoy prefixes proxy-wasm metrics with
//! `wasmcustom.`; Prometheus sees the bare names). Pure: `host` supplies the `MetricsHost`. A
//! counter the host refused to define is skipped, never an error: metrics must not stop traffic.

use crate::cache::Lookups;

/// Verdict cache lookups answered without an `Auth/Check` call (summed over workers).
pub const CACHE_HITS: &str = "gate_auth_cache_hits";
/// Lookups that needed an `Auth/Check` call (absent or expired entry).
pub const CACHE_MISSES: &str = "gate_auth_cache_misses";

/// The host's metric calls (proxy-wasm `define_metric` / `increment_metric` in the filter).
pub trait MetricsHost {
    /// A counter's id, or `None` when the host refuses it.
    fn define_counter(&self, name: &str) -> Option<u32>;
    fn increment(&self, id: u32, delta: u64);
}

/// The ids of the filter's counters on this worker.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GateMetrics {
    cache_hits: Option<u32>,
    cache_misses: Option<u32>,
}

impl GateMetrics {
    pub fn define(host: &impl MetricsHost) -> Self {
        Self {
            cache_hits: host.define_counter(CACHE_HITS),
            cache_misses: host.define_counter(CACHE_MISSES),
        }
    }

    /// Adds cache lookups to the counters (zero deltas are not sent).
    pub fn record_lookups(&self, host: &impl MetricsHost, lookups: Lookups) {
        for (id, delta) in [
            (self.cache_hits, lookups.hits),
            (self.cache_misses, lookups.misses),
        ] {
            if let Some(id) = id
                && delta > 0
            {
                host.increment(id, delta);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;

    /// Defines only the names it is told to accept; sums increments per id.
    struct FakeHost {
        accepts: Vec<&'static str>,
        defined: RefCell<Vec<String>>,
        totals: RefCell<HashMap<u32, u64>>,
    }

    impl FakeHost {
        fn new(accepts: Vec<&'static str>) -> Self {
            Self {
                accepts,
                defined: RefCell::default(),
                totals: RefCell::default(),
            }
        }

        fn total(&self, name: &str) -> u64 {
            let defined = self.defined.borrow();
            let Some(id) = defined.iter().position(|n| n == name) else {
                return 0;
            };
            let id = u32::try_from(id).unwrap_or(u32::MAX);
            self.totals.borrow().get(&id).copied().unwrap_or(0)
        }
    }

    impl MetricsHost for FakeHost {
        fn define_counter(&self, name: &str) -> Option<u32> {
            if !self.accepts.contains(&name) {
                return None;
            }
            let mut defined = self.defined.borrow_mut();
            defined.push(name.to_owned());
            u32::try_from(defined.len() - 1).ok()
        }

        fn increment(&self, id: u32, delta: u64) {
            *self.totals.borrow_mut().entry(id).or_default() += delta;
        }
    }

    #[test]
    fn lookups_reach_their_counters() {
        let host = FakeHost::new(vec![CACHE_HITS, CACHE_MISSES]);
        let metrics = GateMetrics::define(&host);
        metrics.record_lookups(&host, Lookups { hits: 3, misses: 1 });
        metrics.record_lookups(&host, Lookups { hits: 2, misses: 0 });
        assert_eq!(host.total(CACHE_HITS), 5);
        assert_eq!(host.total(CACHE_MISSES), 1);
    }

    #[test]
    fn a_refused_counter_is_skipped() {
        let host = FakeHost::new(vec![CACHE_MISSES]);
        let metrics = GateMetrics::define(&host);
        metrics.record_lookups(&host, Lookups { hits: 4, misses: 2 });
        assert_eq!(host.total(CACHE_HITS), 0);
        assert_eq!(host.total(CACHE_MISSES), 2);
    }
}
