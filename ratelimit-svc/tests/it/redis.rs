//! Against a real Redis: atomicity under concurrency, no boundary burst, parity of the Lua
//! script with the Rust algorithm, and outages (fail-open, fail-closed, recovery).

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ratelimit_svc::check::{CheckIn, Checker, DescriptorIn, FailureMode};
use ratelimit_svc::limiter::{ManualClock, Mode, Op};
use ratelimit_svc::limits::Rules;
use ratelimit_svc::metrics::Metrics;
use ratelimit_svc::store::{CounterStore, MemoryStore, RedisStore};
use support::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(200);

fn checker(store: Arc<dyn CounterStore>, clock: &ManualClock, mode: FailureMode) -> Checker {
    Checker::new(
        Rules::empty(),
        store,
        Arc::new(clock.clone()),
        mode,
        Arc::new(Metrics::new()),
    )
}

fn rpm<'a>(key: &'a str, limit: &'a str) -> CheckIn<'a> {
    CheckIn {
        domain: "gateway",
        descriptors: vec![DescriptorIn {
            entries: vec![("key_id", key), ("rpm", limit)],
            limit_override: None,
            hits_addend: None,
            negative: false,
        }],
        hits_addend: 1,
        log_request_id: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_checks_for_limit_fifty_admit_exactly_fifty() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::starting_now();
    // Four "replicas", each with its own connection, racing on the same key.
    let replicas: Vec<Arc<Checker>> = (0..4)
        .map(|_| {
            let store = RedisStore::new(&redis.url(), TIMEOUT).expect("store");
            Arc::new(checker(Arc::new(store), &clock, FailureMode::Closed))
        })
        .collect();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let replica = replicas[i % replicas.len()].clone();
        tasks.push(tokio::spawn(async move {
            replica.check(&rpm("racer", "50")).await.over_limit
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        if !task.await.expect("task") {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 50);
    assert!(replicas.iter().all(|r| r.store_healthy()));
}

#[tokio::test]
async fn no_burst_above_the_limit_across_a_minute_boundary() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // 100 ms before a wall-clock minute boundary.
    let minute = 60_000;
    let start = (ManualClock::starting_now().now() / minute + 1) * minute - 100;
    let clock = ManualClock::new(start);
    let store = RedisStore::new(&redis.url(), TIMEOUT).expect("store");
    let checker = checker(Arc::new(store), &clock, FailureMode::Closed);
    let mut admitted_before = 0;
    for _ in 0..100 {
        admitted_before += usize::from(!checker.check(&rpm("k", "50")).await.over_limit);
    }
    clock.advance_ms(100); // exactly on the boundary: a fixed window would reset here
    let mut admitted_after = 0;
    for _ in 0..100 {
        admitted_after += usize::from(!checker.check(&rpm("k", "50")).await.over_limit);
    }
    assert_eq!(admitted_before, 50);
    assert_eq!(admitted_after, 0, "a fixed window would admit 50 more here");

    // Sustained: in every sliding window of W ms, at most limit + W/T were admitted.
    let mut admitted_at = Vec::new();
    for _ in 0..1_800 {
        clock.advance_ms(100);
        if !checker.check(&rpm("k", "50")).await.over_limit {
            admitted_at.push(clock.now());
        }
    }
    let unit_ms = 1_200;
    for (i, t) in admitted_at.iter().enumerate() {
        for window in [1_000u64, 10_000, 60_000] {
            let in_window = admitted_at[i..]
                .iter()
                .take_while(|u| **u < t + window)
                .count();
            assert!(
                in_window as u64 <= 1 + window / unit_ms,
                "window {window} ms at {t}: {in_window}"
            );
        }
    }
}

#[tokio::test]
async fn lua_script_and_rust_algorithm_agree_exactly() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let redis_store = RedisStore::new(&redis.url(), TIMEOUT).expect("store");
    let memory = MemoryStore::new();
    let mut now = 1_767_225_600_000u64;
    // A deterministic pseudo-random mix of modes, limits, hits and shared buckets.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..400 {
        now += next(3_000);
        let ops: Vec<(String, Op)> = (0..1 + next(3))
            .map(|_| {
                let mode = match next(10) {
                    0..=5 => Mode::Check,
                    6..=8 => Mode::Debt,
                    _ => Mode::Refund,
                };
                let limit = [1, 3, 7, 50, 1_000, 123_457][next(6) as usize];
                let op = Op {
                    period_ms: [1_000, 60_000][next(2) as usize],
                    limit,
                    hits: next(limit.min(5_000) * 2),
                    mode,
                    shadow: next(8) == 0,
                };
                (format!("rl|parity|b{}", next(3)), op)
            })
            .collect();
        let from_redis = redis_store.apply(now, &ops).await.expect("redis");
        let from_memory = memory.apply(now, &ops).await.expect("memory");
        assert_eq!(from_redis, from_memory, "round {round}: {ops:?}");
    }
}

/// Polls until `done` or a deadline; each check itself must stay fast during an outage.
async fn until(checker: &Checker, request: &CheckIn<'_>, done: impl Fn(bool) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let started = Instant::now();
        let over = checker.check(request).await.over_limit;
        assert!(started.elapsed() < Duration::from_secs(2), "a check hung");
        if done(over) && checker.store_healthy() {
            return;
        }
        assert!(Instant::now() < deadline, "no recovery within 15 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn redis_killed_then_restarted_fails_open_and_recovers() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::starting_now();
    let store = RedisStore::new(&redis.url(), TIMEOUT).expect("store");
    let checker = checker(Arc::new(store), &clock, FailureMode::Open);
    assert!(!checker.check(&rpm("k", "1")).await.over_limit);
    assert!(checker.check(&rpm("k", "1")).await.over_limit);

    redis.kill();
    for _ in 0..5 {
        let started = Instant::now();
        let decision = checker.check(&rpm("k", "1")).await;
        assert!(!decision.over_limit, "fail-open admits while Redis is down");
        assert!(decision.response_headers.is_empty());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    assert!(!checker.store_healthy());

    redis.restart();
    // Recovers by itself; counters were lost with the unpersisted Redis, so the key starts
    // fresh: one admitted, then refused again.
    until(&checker, &rpm("k2", "1"), |_| true).await;
    assert!(!checker.check(&rpm("k", "1")).await.over_limit);
    assert!(checker.check(&rpm("k", "1")).await.over_limit);
}

#[tokio::test]
async fn redis_killed_then_restarted_fails_closed_and_recovers() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::starting_now();
    let store = RedisStore::new(&redis.url(), TIMEOUT).expect("store");
    let checker = checker(Arc::new(store), &clock, FailureMode::Closed);
    assert!(!checker.check(&rpm("k", "100")).await.over_limit);

    redis.kill();
    let decision = checker.check(&rpm("k", "100")).await;
    assert!(
        decision.over_limit,
        "fail-closed refuses while Redis is down"
    );
    assert!(
        decision.body.contains("cannot be checked"),
        "{}",
        decision.body
    );
    assert!(
        decision
            .response_headers
            .iter()
            .any(|(k, v)| k == "retry-after" && v == "1")
    );

    redis.restart();
    until(&checker, &rpm("k", "100"), |over| !over).await;
}

#[tokio::test]
async fn redis_down_at_start_is_not_fatal() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    redis.kill();
    let clock = ManualClock::starting_now();
    let store = RedisStore::new(&url, TIMEOUT).expect("lazy store needs no server");
    let checker = checker(Arc::new(store), &clock, FailureMode::Open);
    assert!(!checker.check(&rpm("k", "1")).await.over_limit);
    redis.restart();
    until(&checker, &rpm("k", "1"), |_| true).await;
}

#[tokio::test]
async fn an_enormous_debt_is_stored_without_overflowing_the_expiry() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(&redis.url(), TIMEOUT).expect("store");
    let op = Op {
        period_ms: 60_000,
        limit: 1,
        hits: 1_000_000_000,
        mode: Mode::Debt,
        shadow: false,
    };
    let ops = vec![("rl|debt|k".to_owned(), op)];
    let applied = store.apply(1_767_225_600_000, &ops).await.expect("stored");
    assert_eq!(applied.results[0].backlog_after_ms, 6e13);
    let probe = vec![("rl|debt|k".to_owned(), Op { hits: 0, ..op })];
    let again = store
        .apply(1_767_225_600_001, &probe)
        .await
        .expect("read back");
    assert!(!again.results[0].allowed);
}
