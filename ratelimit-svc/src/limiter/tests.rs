use std::collections::HashMap;

use super::*;

const MINUTE: u64 = 60_000;

fn check(limit: u64, hits: u64) -> Op {
    Op {
        period_ms: MINUTE,
        limit,
        hits,
        mode: Mode::Check,
        shadow: false,
    }
}

fn debt(limit: u64, hits: u64) -> Op {
    Op {
        mode: Mode::Debt,
        ..check(limit, hits)
    }
}

/// Buckets persisted between calls the way a store does it, with time moved by hand.
#[derive(Default)]
struct Sim {
    now_ms: u64,
    buckets: HashMap<&'static str, BucketState>,
}

impl Sim {
    fn run(&mut self, ops: &[(&'static str, Op)]) -> Evaluation<&'static str> {
        let initial = self
            .buckets
            .iter()
            .map(|(k, s)| (*k, s.backlog_at(self.now_ms)))
            .collect();
        let evaluation = evaluate(ops, &initial);
        for (key, backlog) in &evaluation.backlogs {
            self.buckets.insert(
                key,
                BucketState {
                    at_ms: self.now_ms,
                    backlog_ms: *backlog,
                },
            );
        }
        evaluation
    }

    fn one(&mut self, op: Op) -> (bool, Status) {
        let evaluation = self.run(&[("k", op)]);
        let result = evaluation.results[0];
        (result.allowed, status(&op, &result))
    }

    fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }
}

#[test]
fn admits_exactly_the_limit_as_a_burst_then_refuses() {
    let mut sim = Sim::default();
    for i in 0..50 {
        let (allowed, st) = sim.one(check(50, 1));
        assert!(allowed, "request {i} refused");
        assert_eq!(st.remaining, 49 - i);
    }
    let (allowed, st) = sim.one(check(50, 1));
    assert!(!allowed);
    assert_eq!(st.remaining, 0);
    // One unit refills after period/limit = 1.2 s.
    assert_eq!(st.retry_after_ms, Some(1_200));
    assert_eq!(st.reset_after_ms, MINUTE);
}

#[test]
fn boundary_one_millisecond_before_a_unit_refills_is_still_refused() {
    let mut sim = Sim::default();
    for _ in 0..50 {
        assert!(sim.one(check(50, 1)).0);
    }
    sim.advance(1_199);
    let (allowed, st) = sim.one(check(50, 1));
    assert!(!allowed);
    assert_eq!(st.retry_after_ms, Some(1));
    sim.advance(1);
    assert!(sim.one(check(50, 1)).0);
    assert!(!sim.one(check(50, 1)).0);
}

#[test]
fn refills_continuously_and_never_above_the_limit() {
    let mut sim = Sim::default();
    for _ in 0..50 {
        assert!(sim.one(check(50, 1)).0);
    }
    sim.advance(30_000);
    let (_, st) = sim.one(check(50, 0));
    assert_eq!(st.remaining, 25);
    // A long idle period does not bank more than one period's worth.
    sim.advance(10 * MINUTE);
    let (_, st) = sim.one(check(50, 0));
    assert_eq!(st.remaining, 50);
    assert_eq!(st.reset_after_ms, 0);
    let admitted = (0..200).filter(|_| sim.one(check(50, 1)).0).count();
    assert_eq!(admitted, 50);
}

#[test]
fn no_double_burst_across_a_minute_boundary() {
    // Fixed windows admit 50 at 59.9 s and 50 more at 60.0 s. GCRA admits only what refilled.
    let mut sim = Sim {
        now_ms: 59_900,
        ..Sim::default()
    };
    let first = (0..50).filter(|_| sim.one(check(50, 1)).0).count();
    sim.advance(100);
    let second = (0..50).filter(|_| sim.one(check(50, 1)).0).count();
    assert_eq!(first, 50);
    assert_eq!(second, 0);
    // In any sliding minute, at most 50 + what refilled during it.
    sim.advance(MINUTE - 100);
    let third = (0..100).filter(|_| sim.one(check(50, 1)).0).count();
    assert_eq!(third, 50);
}

#[test]
fn a_check_larger_than_the_limit_never_fits_and_reports_the_period() {
    let mut sim = Sim::default();
    let (allowed, st) = sim.one(check(10, 11));
    assert!(!allowed);
    assert_eq!(st.retry_after_ms, Some(MINUTE));
    assert_eq!(st.remaining, 10, "a refused check consumed nothing");
}

#[test]
fn probe_with_zero_hits_never_consumes() {
    let mut sim = Sim::default();
    for _ in 0..5 {
        let (allowed, st) = sim.one(check(3, 0));
        assert!(allowed);
        assert_eq!(st.remaining, 3);
    }
}

#[test]
fn debt_charge_drives_the_bucket_negative_and_probe_refuses_until_it_refills() {
    let mut sim = Sim::default();
    // Request time: probe the token bucket (hits 0).
    assert!(sim.one(debt(1_000, 0)).0);
    // Response end: the real count is charged even though it exceeds the budget.
    let (allowed, st) = sim.one(debt(1_000, 1_500));
    assert!(allowed, "the verdict is about the state before the charge");
    assert_eq!(st.remaining, 0);
    assert_eq!(st.reset_after_ms, 90_000);
    // The next request is refused until 500 tokens of debt plus one token have refilled.
    let (allowed, st) = sim.one(debt(1_000, 0));
    assert!(!allowed);
    assert_eq!(st.retry_after_ms, Some(30_060));
    sim.advance(30_059);
    assert!(!sim.one(debt(1_000, 0)).0);
    sim.advance(1);
    let (allowed, st) = sim.one(debt(1_000, 0));
    assert!(allowed);
    assert_eq!(st.remaining, 1);
}

#[test]
fn a_charge_while_in_debt_still_applies() {
    let mut sim = Sim::default();
    sim.one(debt(100, 150));
    let (allowed, st) = sim.one(debt(100, 50));
    assert!(!allowed);
    assert_eq!(
        st.reset_after_ms, 120_000,
        "both charges are in the backlog"
    );
}

#[test]
fn refund_gives_units_back_but_never_beyond_full() {
    let mut sim = Sim::default();
    for _ in 0..10 {
        sim.one(check(10, 1));
    }
    let refund = Op {
        mode: Mode::Refund,
        ..check(10, 3)
    };
    assert_eq!(sim.one(refund).1.remaining, 3);
    let refund_all = Op {
        hits: 100,
        ..refund
    };
    let (_, st) = sim.one(refund_all);
    assert_eq!(st.remaining, 10);
    assert_eq!(st.reset_after_ms, 0);
}

#[test]
fn all_or_nothing_a_token_refusal_does_not_burn_a_request_unit() {
    let mut sim = Sim::default();
    sim.run(&[("tpm", debt(100, 200))]);
    let evaluation = sim.run(&[("rpm", check(5, 1)), ("tpm", debt(100, 0))]);
    assert!(evaluation.blocked);
    assert!(evaluation.results[0].allowed);
    assert!(!evaluation.results[1].allowed);
    let rpm = sim.run(&[("rpm", check(5, 0))]);
    assert_eq!(
        status(&check(5, 0), &rpm.results[0]).remaining,
        5,
        "the refused request consumed no request unit"
    );
}

#[test]
fn a_debt_charge_applies_even_when_the_request_is_blocked() {
    let mut sim = Sim::default();
    for _ in 0..2 {
        sim.run(&[("rpm", check(2, 1))]);
    }
    let evaluation = sim.run(&[("rpm", check(2, 1)), ("tpm", debt(100, 40))]);
    assert!(evaluation.blocked);
    let tpm = sim.run(&[("tpm", debt(100, 0))]);
    assert_eq!(status(&debt(100, 0), &tpm.results[0]).remaining, 60);
}

#[test]
fn shadow_refusals_block_nothing_and_consume_nothing() {
    let mut sim = Sim::default();
    let shadow = Op {
        shadow: true,
        ..check(1, 1)
    };
    assert!(!sim.run(&[("s", shadow)]).blocked);
    let evaluation = sim.run(&[("s", shadow), ("rpm", check(10, 1))]);
    assert!(!evaluation.blocked);
    assert!(!evaluation.results[0].allowed);
    assert!(evaluation.results[1].allowed);
    assert_eq!(
        status(&check(10, 1), &evaluation.results[1]).remaining,
        9,
        "the real limit still consumed"
    );
}

#[test]
fn the_same_bucket_twice_in_one_request_is_applied_in_order() {
    let mut sim = Sim::default();
    let evaluation = sim.run(&[("k", check(3, 2)), ("k", check(3, 2))]);
    assert!(evaluation.blocked);
    assert!(evaluation.results[0].allowed);
    assert!(!evaluation.results[1].allowed);
    // Blocked, so neither consumed.
    assert_eq!(sim.one(check(3, 0)).1.remaining, 3);
}

#[test]
fn large_limits_keep_precision() {
    let mut sim = Sim::default();
    let limit = 1_000_000_000;
    for _ in 0..1_000 {
        assert!(sim.one(debt(limit, 999_983)).0);
    }
    let (_, st) = sim.one(debt(limit, 0));
    assert_eq!(st.remaining, limit - 999_983_000);
}

#[test]
fn bucket_state_round_trips_and_rejects_garbage() {
    let state = BucketState {
        at_ms: 1_764_000_000_123,
        backlog_ms: 1_199.999_999_999_999_8,
    };
    assert_eq!(BucketState::decode(&state.encode()), Some(state));
    assert_eq!(
        BucketState::decode("5 1.25e2"),
        Some(BucketState {
            at_ms: 5,
            backlog_ms: 125.0
        })
    );
    for bad in ["", "5", "x 1", "5 y", "5 NaN", "5 inf", "-1 3"] {
        assert_eq!(BucketState::decode(bad), None, "{bad:?}");
    }
}

#[test]
fn backlog_drains_with_time_and_ignores_a_clock_behind_the_writer() {
    let state = BucketState {
        at_ms: 10_000,
        backlog_ms: 500.0,
    };
    assert_eq!(state.backlog_at(10_200), 300.0);
    assert_eq!(state.backlog_at(20_000), 0.0);
    assert_eq!(state.backlog_at(9_000), 500.0);
}
