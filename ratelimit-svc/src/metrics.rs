//! Prometheus metrics. Labels are low-cardinality by construction: never a key id or a value.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = [(&'static str, &'static str); 1];
type Labels3 = [(&'static str, &'static str); 3];

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Per RateLimitRequest: `result` = ok | over_limit | failure_open | failure_closed.
    pub requests: Family<Labels, Counter>,
    /// Per descriptor: `source` x `kind` x `result` (ok, over_limit, shadow_over_limit,
    /// unlimited, no_rule, invalid).
    pub descriptors: Family<Labels3, Counter>,
    /// Units asked for (requests or tokens) by `kind`, including after-the-fact token charges.
    pub hits: Family<Labels, Counter>,
    pub store_errors: Counter,
    /// 1 while the last store call succeeded.
    pub store_up: Gauge,
    pub store_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let descriptors = Family::<Labels3, Counter>::default();
        let hits = Family::<Labels, Counter>::default();
        let store_errors = Counter::default();
        let store_up = Gauge::default();
        // 50 us .. ~100 ms: a healthy check is well under a millisecond.
        let store_seconds = Histogram::new([
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
        ]);
        registry.register(
            "ratelimit_requests",
            "RateLimitRequests answered, by result",
            requests.clone(),
        );
        registry.register(
            "ratelimit_descriptors",
            "Descriptors evaluated, by limit source, kind and result",
            descriptors.clone(),
        );
        registry.register(
            "ratelimit_hits",
            "Units charged (requests or tokens), by kind",
            hits.clone(),
        );
        registry.register(
            "ratelimit_store_errors",
            "Counter store calls that failed or timed out",
            store_errors.clone(),
        );
        registry.register(
            "ratelimit_store_up",
            "1 if the last counter store call succeeded",
            store_up.clone(),
        );
        registry.register(
            "ratelimit_store_duration_seconds",
            "Time of one atomic counter store call",
            store_seconds.clone(),
        );
        Self {
            registry,
            requests,
            descriptors,
            hits,
            store_errors,
            store_up,
            store_seconds,
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub fn request(&self, result: &'static str) {
        self.requests.get_or_create(&[("result", result)]).inc();
    }

    pub fn descriptor(&self, source: &'static str, kind: &'static str, result: &'static str) {
        self.descriptors
            .get_or_create(&[("source", source), ("kind", kind), ("result", result)])
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
