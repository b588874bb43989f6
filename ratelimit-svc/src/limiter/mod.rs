//! The rate-limit algorithm: GCRA kept as a per-bucket backlog, pure (no I/O, no clock).
//! Stores apply [`evaluate`] atomically; `store/gcra.lua` is its line-for-line mirror for Redis.
//!
//! Why GCRA and not fixed windows: a fixed window admits `limit` at 00:59.9 and `limit` again at
//! 01:00.0 (a double burst). GCRA admits at most `limit` in any sliding `period`, needs one
//! number per bucket, and can go into debt when a cost is only known afterwards (tokens).

pub mod clock;

use std::collections::HashMap;
use std::hash::Hash;

pub use clock::{Clock, ManualClock, SystemClock};

/// Float slack for comparisons: backlogs are sums of `period / limit` fractions.
pub const EPSILON_MS: f64 = 1e-6;

/// How one operation treats its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Admission control: `hits` are consumed only if they all fit. `hits == 0` is a probe
    /// ("is at least one unit free?") that never consumes.
    Check,
    /// An after-the-fact charge (tokens): always consumed, may drive the bucket into debt. The
    /// verdict is whether a unit was free *before* the charge, so a probe and a charge agree.
    Debt,
    /// Envoy's `is_negative_hits`: gives units back, never below an empty backlog.
    Refund,
}

/// One descriptor's operation on one bucket. `limit` is units per `period_ms`, never 0
/// (unlimited descriptors never reach the limiter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub period_ms: u64,
    pub limit: u64,
    pub hits: u64,
    pub mode: Mode,
    /// Shadow mode: a refusal is reported and counted but blocks nothing.
    pub shadow: bool,
}

impl Op {
    /// Milliseconds of backlog one unit costs (GCRA's emission interval).
    pub fn unit_ms(&self) -> f64 {
        self.period_ms as f64 / self.limit.max(1) as f64
    }

    /// Units that must be free for this operation to be admitted.
    fn units_needed(&self) -> u64 {
        match self.mode {
            Mode::Check if self.hits > 0 => self.hits,
            _ => 1,
        }
    }
}

/// What one operation saw and left. Backlog = ms of already-admitted work not yet drained;
/// the bucket is full at 0 and empty at `period_ms`; above that it is in debt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpResult {
    pub allowed: bool,
    pub backlog_before_ms: f64,
    pub backlog_after_ms: f64,
}

/// The outcome of all operations of one request.
#[derive(Debug, Clone)]
pub struct Evaluation<K> {
    pub results: Vec<OpResult>,
    /// A non-shadow operation was refused: the request is over limit and no `Check` consumed.
    pub blocked: bool,
    /// Final backlog of every bucket touched, to be stored as of the evaluation time.
    pub backlogs: HashMap<K, f64>,
}

/// Applies `ops` in order to buckets whose backlogs (as of now) are in `initial` (missing = 0).
/// All or nothing: if any non-shadow operation is refused, no `Check` consumes anything, so a
/// request refused for tokens does not also burn a request unit. `Debt` and `Refund` always
/// apply: they record what already happened.
pub fn evaluate<K: Eq + Hash + Clone>(ops: &[(K, Op)], initial: &HashMap<K, f64>) -> Evaluation<K> {
    let (first, backlogs) = pass(ops, initial, true);
    let blocked = first
        .iter()
        .zip(ops)
        .any(|(result, (_, op))| !result.allowed && !op.shadow);
    if !blocked {
        return Evaluation {
            results: first,
            blocked,
            backlogs,
        };
    }
    let (second, backlogs) = pass(ops, initial, false);
    let results = first
        .iter()
        .zip(second)
        .map(|(verdict, stored)| OpResult {
            allowed: verdict.allowed,
            ..stored
        })
        .collect();
    Evaluation {
        results,
        blocked,
        backlogs,
    }
}

fn pass<K: Eq + Hash + Clone>(
    ops: &[(K, Op)],
    initial: &HashMap<K, f64>,
    apply_checks: bool,
) -> (Vec<OpResult>, HashMap<K, f64>) {
    let mut backlogs: HashMap<K, f64> = HashMap::with_capacity(ops.len());
    let mut results = Vec::with_capacity(ops.len());
    for (key, op) in ops {
        let before = backlogs
            .get(key)
            .or_else(|| initial.get(key))
            .copied()
            .unwrap_or(0.0);
        let (allowed, after) = step(before, op, apply_checks);
        backlogs.insert(key.clone(), after);
        results.push(OpResult {
            allowed,
            backlog_before_ms: before,
            backlog_after_ms: after,
        });
    }
    (results, backlogs)
}

/// One GCRA step on a backlog `b`: returns (allowed, backlog after).
fn step(b: f64, op: &Op, apply_checks: bool) -> (bool, f64) {
    let period = op.period_ms as f64;
    let unit = op.unit_ms();
    let cost = op.hits as f64 * unit;
    let one_free = b + unit <= period + EPSILON_MS;
    match op.mode {
        Mode::Check if op.hits == 0 => (one_free, b),
        Mode::Check => {
            let next = b + cost;
            let fits = next <= period + EPSILON_MS;
            (fits, if fits && apply_checks { next } else { b })
        }
        Mode::Debt => (one_free, b + cost),
        Mode::Refund => (true, (b - cost).max(0.0)),
    }
}

/// What a client is told about one bucket after an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Whole units still free (0 while in debt).
    pub remaining: u64,
    /// Until the bucket is completely full again (Anthropic's "reset").
    pub reset_after_ms: u64,
    /// Until this operation could be admitted; `None` when it was.
    pub retry_after_ms: Option<u64>,
}

pub fn status(op: &Op, result: &OpResult) -> Status {
    let period = op.period_ms as f64;
    let unit = op.unit_ms();
    let free = ((period - result.backlog_after_ms + EPSILON_MS) / unit).floor();
    let remaining = if free <= 0.0 {
        0
    } else {
        (free as u64).min(op.limit)
    };
    let retry_after_ms = (!result.allowed).then(|| {
        let needed = op.units_needed() as f64 * unit;
        if needed > period + EPSILON_MS {
            // Can never fit in one period: report the period rather than a wait that lies.
            op.period_ms
        } else {
            ceil_ms(result.backlog_before_ms + needed - period)
        }
    });
    Status {
        remaining,
        reset_after_ms: ceil_ms(result.backlog_after_ms),
        retry_after_ms,
    }
}

fn ceil_ms(ms: f64) -> u64 {
    if ms <= EPSILON_MS {
        0
    } else {
        ms.ceil() as u64
    }
}

/// Persisted form of one bucket: its backlog as of `at_ms`. Stored relative to a timestamp
/// (not as GCRA's absolute "theoretical arrival time") so every float stays small and exact
/// enough: absolute times near 1.7e12 ms would lose sub-millisecond precision in an f64.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketState {
    pub at_ms: u64,
    pub backlog_ms: f64,
}

impl BucketState {
    /// The backlog drained down to `now_ms`. A timestamp from a replica whose clock runs ahead
    /// counts as "no time elapsed" rather than adding backlog.
    pub fn backlog_at(&self, now_ms: u64) -> f64 {
        (self.backlog_ms - now_ms.saturating_sub(self.at_ms) as f64).max(0.0)
    }

    /// `"<at_ms> <backlog_ms>"`, the same text the Lua script writes.
    pub fn encode(&self) -> String {
        format!("{} {}", self.at_ms, self.backlog_ms)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (at, backlog) = text.split_once(' ')?;
        let backlog_ms: f64 = backlog.parse().ok()?;
        backlog_ms.is_finite().then_some(Self {
            at_ms: at.parse().ok()?,
            backlog_ms,
        })
    }
}

#[cfg(test)]
mod tests;
