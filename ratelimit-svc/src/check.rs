//! The use case: one rate-limit request -> each descriptor's limit -> one atomic store call ->
//! verdict, per-descriptor statuses and the Anthropic headers and body. No gRPC types here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::limiter::{Clock, Mode, Op, status};
use crate::limits::{Kind, Limit, Resolution, Resolved, Rules, Unit};
use crate::metrics::Metrics;
use crate::reply::{self, Headers, Observed};
use crate::store::{Applied, CounterStore, StoreError};

/// A descriptor whose last entry has this key is not a limit: it carries the gateway's request
/// id (when the filter provides one) so a 429 body names the same id as the logs.
pub const REQUEST_ID_KEY: &str = "request_id";

/// What to answer while the counter store is unreachable (`RATELIMIT_FAILURE_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Admit: an outage of the limiter must not become an outage of the gateway.
    Open,
    /// Refuse with a 429 `rate_limit_error` and `retry-after: 1`.
    Closed,
}

impl FailureMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DescriptorIn<'a> {
    pub entries: Vec<(&'a str, &'a str)>,
    /// Envoy's `limit` override (from dynamic metadata), if any.
    pub limit_override: Option<(u64, Unit)>,
    /// The descriptor's own `hits_addend`; it overrides the request's, and may be 0 (probe).
    pub hits_addend: Option<u64>,
    /// Envoy's `is_negative_hits`: give the units back.
    pub negative: bool,
}

#[derive(Debug, Clone)]
pub struct CheckIn<'a> {
    pub domain: &'a str,
    pub descriptors: Vec<DescriptorIn<'a>>,
    /// Request-level hits; 0 means 1, as in Envoy's RLS protocol.
    pub hits_addend: u32,
    /// The caller's `x-request-id`, written on this check's log lines (also when the call has
    /// no span: see `telemetry::call_span`).
    pub log_request_id: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorOut {
    pub over_limit: bool,
    pub limit: Option<Limit>,
    pub remaining: u64,
    pub reset_after_ms: u64,
}

impl DescriptorOut {
    const UNLIMITED: Self = Self {
        over_limit: false,
        limit: None,
        remaining: 0,
        reset_after_ms: 0,
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub over_limit: bool,
    /// One per descriptor, in request order.
    pub statuses: Vec<DescriptorOut>,
    /// Added to the 429, or to the upstream response when admitted.
    pub response_headers: Headers,
    /// The 429 body; empty when admitted.
    pub body: String,
}

pub struct Checker {
    rules: Rules,
    store: Arc<dyn CounterStore>,
    clock: Arc<dyn Clock>,
    failure_mode: FailureMode,
    metrics: Arc<Metrics>,
    store_healthy: AtomicBool,
}

impl Checker {
    pub fn new(
        rules: Rules,
        store: Arc<dyn CounterStore>,
        clock: Arc<dyn Clock>,
        failure_mode: FailureMode,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.store_up.set(1);
        Self {
            rules,
            store,
            clock,
            failure_mode,
            metrics,
            store_healthy: AtomicBool::new(true),
        }
    }

    pub fn store_kind(&self) -> &'static str {
        self.store.kind()
    }

    pub fn store_healthy(&self) -> bool {
        self.store_healthy.load(Ordering::Relaxed)
    }

    pub async fn check(&self, request: &CheckIn<'_>) -> Decision {
        let now_ms = self.clock.now_ms();
        let request_hits = u64::from(request.hits_addend.max(1));
        let mut request_id: Option<&str> = None;
        let mut ops: Vec<(String, Op)> = Vec::new();
        // For each descriptor, its limit; limited ones also have an entry in `ops`, in order.
        let mut planned: Vec<Option<Resolved>> = Vec::with_capacity(request.descriptors.len());
        for descriptor in &request.descriptors {
            if let Some((REQUEST_ID_KEY, id)) = descriptor.entries.last() {
                request_id = Some(id);
                planned.push(None);
                continue;
            }
            let resolution = self.rules.resolve(
                request.domain,
                &descriptor.entries,
                descriptor.limit_override,
            );
            let Resolution::Limited(resolved) = resolution else {
                self.count_unlimited(request, &resolution);
                planned.push(None);
                continue;
            };
            let hits = descriptor.hits_addend.unwrap_or(request_hits);
            let mode = match (descriptor.negative, resolved.limit.kind) {
                (true, _) => Mode::Refund,
                (false, Kind::Tokens) => Mode::Debt,
                (false, Kind::Requests) => Mode::Check,
            };
            if mode != Mode::Refund && hits > 0 {
                self.metrics
                    .hits
                    .get_or_create(&[("kind", kind_label(resolved.limit.kind))])
                    .inc_by(hits);
            }
            ops.push((
                resolved.bucket.clone(),
                Op {
                    period_ms: resolved.limit.unit.period_ms(),
                    limit: resolved.limit.requests_per_unit,
                    hits,
                    mode,
                    shadow: resolved.shadow,
                },
            ));
            planned.push(Some(resolved));
        }
        if ops.is_empty() {
            self.metrics.request("ok");
            return admitted(planned.len(), Headers::new());
        }
        let started = Instant::now();
        let applied = self.store.apply(now_ms, &ops).await;
        self.metrics
            .store_seconds
            .observe(started.elapsed().as_secs_f64());
        match applied {
            Ok(applied) => {
                self.store_ok(request.log_request_id);
                self.decide(
                    now_ms,
                    &planned,
                    &ops,
                    &applied,
                    request_id,
                    request.log_request_id,
                )
            }
            Err(error) => {
                self.store_failed(&error, planned.len(), request_id, request.log_request_id)
            }
        }
    }

    fn decide(
        &self,
        now_ms: u64,
        planned: &[Option<Resolved>],
        ops: &[(String, Op)],
        applied: &Applied,
        request_id: Option<&str>,
        log_request_id: Option<&str>,
    ) -> Decision {
        let mut observed = Vec::with_capacity(ops.len());
        let mut statuses = Vec::with_capacity(planned.len());
        let mut results = ops.iter().zip(&applied.results);
        for resolved in planned {
            let Some(resolved) = resolved else {
                statuses.push(DescriptorOut::UNLIMITED);
                continue;
            };
            let Some(((_, op), result)) = results.next() else {
                statuses.push(DescriptorOut::UNLIMITED);
                continue;
            };
            let st = status(op, result);
            let refused = !result.allowed && !op.shadow;
            let outcome = match (result.allowed, op.shadow) {
                (true, _) => "ok",
                (false, true) => "shadow_over_limit",
                (false, false) => "over_limit",
            };
            self.metrics.descriptor(
                resolved.source.label(),
                kind_label(resolved.limit.kind),
                outcome,
            );
            if !result.allowed {
                tracing::debug!(
                    request_id = log_request_id,
                    bucket = %resolved.bucket,
                    shadow = op.shadow,
                    "descriptor over limit"
                );
            }
            statuses.push(DescriptorOut {
                over_limit: refused,
                limit: Some(resolved.limit.clone()),
                remaining: st.remaining,
                reset_after_ms: st.reset_after_ms,
            });
            observed.push(Observed {
                limit: &resolved.limit,
                status: st,
                refused,
                shadow: op.shadow,
            });
        }
        let mut headers = reply::ratelimit_headers(now_ms, &observed);
        if !applied.blocked {
            self.metrics.request("ok");
            return Decision {
                over_limit: false,
                statuses,
                response_headers: headers,
                body: String::new(),
            };
        }
        self.metrics.request("over_limit");
        let (extra, body) = reply::over_limit(&observed, &request_id_or_new(request_id));
        headers.extend(extra);
        Decision {
            over_limit: true,
            statuses,
            response_headers: headers,
            body,
        }
    }

    fn store_ok(&self, log_request_id: Option<&str>) {
        self.metrics.store_up.set(1);
        if !self.store_healthy.swap(true, Ordering::Relaxed) {
            tracing::info!(
                request_id = log_request_id,
                store = self.store.kind(),
                "counter store recovered"
            );
        }
    }

    fn store_failed(
        &self,
        error: &StoreError,
        descriptors: usize,
        request_id: Option<&str>,
        log_request_id: Option<&str>,
    ) -> Decision {
        self.metrics.store_errors.inc();
        self.metrics.store_up.set(0);
        if self.store_healthy.swap(false, Ordering::Relaxed) {
            tracing::error!(
                request_id = log_request_id,
                store = self.store.kind(),
                %error,
                failure_mode = self.failure_mode.name(),
                "counter store unavailable; answering per RATELIMIT_FAILURE_MODE until it recovers"
            );
        } else {
            tracing::debug!(
                request_id = log_request_id,
                %error,
                "counter store still unavailable"
            );
        }
        match self.failure_mode {
            FailureMode::Open => {
                self.metrics.request("failure_open");
                admitted(descriptors, Headers::new())
            }
            FailureMode::Closed => {
                self.metrics.request("failure_closed");
                let (headers, body) = reply::store_unavailable(&request_id_or_new(request_id));
                Decision {
                    over_limit: true,
                    statuses: vec![
                        DescriptorOut {
                            over_limit: true,
                            ..DescriptorOut::UNLIMITED
                        };
                        descriptors
                    ],
                    response_headers: headers,
                    body,
                }
            }
        }
    }

    fn count_unlimited(&self, request: &CheckIn<'_>, resolution: &Resolution) {
        let result = match resolution {
            Resolution::Unlimited => "unlimited",
            Resolution::NoRule => "no_rule",
            Resolution::Invalid(reason) => {
                tracing::warn!(
                    request_id = request.log_request_id,
                    domain = request.domain,
                    reason,
                    "ignoring a descriptor with an invalid per-key limit"
                );
                "invalid"
            }
            Resolution::Limited(_) => "ok",
        };
        self.metrics.descriptor("none", "none", result);
    }
}

/// The filter's id when it sent one; otherwise one made here (only a 429 needs it).
fn request_id_or_new(from_filter: Option<&str>) -> String {
    from_filter.map_or_else(reply::new_request_id, str::to_owned)
}

fn admitted(descriptors: usize, headers: Headers) -> Decision {
    Decision {
        over_limit: false,
        statuses: vec![DescriptorOut::UNLIMITED; descriptors],
        response_headers: headers,
        body: String::new(),
    }
}

fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Requests => "requests",
        Kind::Tokens => "tokens",
    }
}

#[cfg(test)]
mod tests;
