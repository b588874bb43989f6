//! The usage sink against the embedded store: exact counters under concurrency, idempotent
//! retries, billing of disconnected clients, and a store that fails or is gone.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use crate::keys::KeysConfig;
use crate::keys::config::UsageSettings;
use crate::keys::item::get_n;
use crate::keys::testing::{MASTER, harness, scan, settings, usage_record};
use crate::usage::Outcome;

fn requests_of(items: &[Item]) -> Vec<&Item> {
    items
        .iter()
        .filter(|i| crate::keys::item::get_s(i, "type").as_deref() == Some("request"))
        .collect()
}

fn sum(items: &[&Item], name: &str) -> u64 {
    items
        .iter()
        .map(|i| get_n::<u64>(i, name).unwrap_or(0))
        .sum()
}

#[tokio::test]
async fn two_hundred_concurrent_requests_in_one_second_are_all_counted_exactly() {
    let h = harness().await;
    let (record, _) = h.create_key(settings("busy")).await;
    let sink = h.wired.usage_sink.clone();
    // The clock does not move: every record lands in the same millisecond.
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            let sink = sink.clone();
            let id = record.id.clone();
            tokio::spawn(async move {
                sink.record(usage_record(
                    &id,
                    &format!("req_{i:03}"),
                    100 + i,
                    7 + i % 13,
                    Outcome::Ok,
                ));
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    sink.flush().await;

    let items = scan(&h.wired.dynamo, &h.wired.dynamo.tables.usage).await;
    let requests = requests_of(&items);
    assert_eq!(requests.len(), 200);
    let expected_input: u64 = (0..200).map(|i| 100 + i).sum();
    let expected_output: u64 = (0..200).map(|i| 7 + i % 13).sum();
    assert_eq!(sum(&requests, "input_tokens"), expected_input);
    assert_eq!(sum(&requests, "output_tokens"), expected_output);

    let spend = h
        .wired
        .store
        .month_spend(&record.id, "2026-11")
        .await
        .unwrap();
    assert_eq!(spend.requests, 200);
    assert_eq!(spend.input_tokens, expected_input);
    assert_eq!(spend.output_tokens, expected_output);
    assert_eq!(spend.cost_nanos, sum(&requests, "cost_nanos"));
    // $3/MTok in, $15/MTok out, in nano-USD: 3000 and 15000 per token.
    assert_eq!(
        spend.cost_nanos,
        expected_input * 3000 + expected_output * 15000
    );

    let day = items
        .iter()
        .find(|i| crate::keys::item::get_s(i, "pk").as_deref() == Some("day#2026-11-25"))
        .expect("daily aggregate");
    assert_eq!(get_n::<u64>(day, "requests"), Some(200));
    assert_eq!(get_n::<u64>(day, "cost_nanos"), Some(spend.cost_nanos));
    assert_eq!(sink.stats().written.load(Ordering::Relaxed), 200);
}

#[tokio::test]
async fn a_repeated_record_is_written_once() {
    let h = harness().await;
    let (record, _) = h.create_key(settings("retry")).await;
    let sink = &h.wired.usage_sink;
    for _ in 0..3 {
        sink.record(usage_record(&record.id, "req_same", 10, 10, Outcome::Ok));
    }
    sink.flush().await;
    let items = scan(&h.wired.dynamo, &h.wired.dynamo.tables.usage).await;
    assert_eq!(requests_of(&items).len(), 1);
    assert_eq!(
        h.wired
            .store
            .month_spend(&record.id, "2026-11")
            .await
            .unwrap()
            .requests,
        1
    );
    assert_eq!(sink.stats().duplicates.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_is_billed_for_the_reported_tokens() {
    let h = harness().await;
    let (record, _) = h.create_key(settings("flaky client")).await;
    let sink = &h.wired.usage_sink;
    sink.record(usage_record(
        &record.id,
        "req_gone",
        1_000,
        250,
        Outcome::ClientDisconnected,
    ));
    sink.record(usage_record(
        &record.id,
        "req_fail",
        1_000,
        250,
        Outcome::Error("overloaded_error"),
    ));
    sink.flush().await;
    let items = scan(&h.wired.dynamo, &h.wired.dynamo.tables.usage).await;
    let requests = requests_of(&items);
    let gone = requests
        .iter()
        .find(|i| crate::keys::item::get_s(i, "request_id").as_deref() == Some("req_gone"))
        .expect("usage item");
    assert_eq!(
        crate::keys::item::get_s(gone, "status").as_deref(),
        Some("client_disconnected")
    );
    // 1000 * $3/MTok + 250 * $15/MTok = $0.00675.
    assert_eq!(get_n::<u64>(gone, "cost_nanos"), Some(6_750_000));
    assert_eq!(get_n::<u64>(gone, "ttft_ms"), Some(40));
    let spend = h
        .wired
        .store
        .month_spend(&record.id, "2026-11")
        .await
        .unwrap();
    assert_eq!((spend.requests, spend.cost_nanos), (2, 13_500_000));
}

#[tokio::test]
async fn tier_and_unknown_models_are_priced_as_configured() {
    let h = harness().await;
    let sink = &h.wired.usage_sink;
    let mut flex = usage_record("key_t", "req_flex", 1_000_000, 0, Outcome::Ok);
    flex.tier = Some("flex".into());
    let mut other = usage_record("key_t", "req_qwen", 1_000_000, 0, Outcome::Ok);
    other.requested_model = "qwen3-32b".into();
    other.resolved_model = "qwen.qwen3-32b-v1:0".into();
    let mut anonymous = usage_record("x", "req_anon", 1, 1, Outcome::Ok);
    anonymous.key_id = None;
    for r in [flex, other, anonymous] {
        sink.record(r);
    }
    sink.flush().await;
    let spend = h.wired.store.month_spend("key_t", "2026-11").await.unwrap();
    // Flex at half of $3 for 1M input tokens; the unpriced model costs 0 but is counted.
    assert_eq!((spend.requests, spend.cost_nanos), (2, 1_500_000_000));
    let items = scan(&h.wired.dynamo, &h.wired.dynamo.tables.usage).await;
    let priced = |request_id: &str| {
        let item = requests_of(&items)
            .into_iter()
            .find(|i| crate::keys::item::get_s(i, "request_id").as_deref() == Some(request_id))
            .expect("usage item");
        crate::keys::item::get_bool(item, "priced")
    };
    assert_eq!(
        (priced("req_flex"), priced("req_qwen")),
        (Some(true), Some(false))
    );
    assert_eq!(
        h.wired
            .store
            .month_spend(ANONYMOUS_KEY, "2026-11")
            .await
            .unwrap()
            .requests,
        1
    );
}

#[tokio::test]
async fn a_failing_store_is_retried_until_it_recovers() {
    let h = harness().await;
    // A sink on tables that do not exist yet: the first attempts fail.
    let late = Dynamo {
        client: h.wired.dynamo.client.clone(),
        tables: crate::keys::tables::TableNames::with_prefix(&crate::keys::testing::unique_prefix(
            "late",
        )),
    };
    let clock = Arc::new(crate::keys::clock::SystemClock);
    let sink = &DynamoUsageSink::spawn(
        late.clone(),
        h.wired.prices.clone(),
        None,
        clock,
        KeysConfig::for_tests(MASTER).usage,
    );
    sink.record(usage_record("key_late", "req_1", 5, 5, Outcome::Ok));
    for _ in 0..200 {
        if sink.stats().retries.load(Ordering::Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(sink.stats().retries.load(Ordering::Relaxed) > 0);
    crate::keys::dynamo::ensure_tables(&late, false)
        .await
        .unwrap();
    sink.flush().await;
    assert_eq!(sink.stats().written.load(Ordering::Relaxed), 1);
    let items = scan(&late, &late.tables.usage).await;
    assert_eq!(requests_of(&items).len(), 1);
}

#[tokio::test]
async fn a_dead_store_never_blocks_the_caller() {
    let dead = crate::keys::dynamo::local_client("us-east-1", "http://127.0.0.1:1");
    let dynamo = Dynamo {
        client: dead,
        tables: crate::keys::tables::TableNames::with_prefix("x_"),
    };
    let settings = UsageSettings {
        queue_capacity: 1,
        concurrency: 1,
        max_attempts: 2,
        backoff_base: Duration::from_millis(1),
        ..UsageSettings::default()
    };
    let clock = Arc::new(crate::keys::clock::SystemClock);
    let prices = Arc::new(PriceBook::new(Default::default()));
    let sink = DynamoUsageSink::spawn(dynamo, prices, None, clock, settings);
    let started = std::time::Instant::now();
    for i in 0..50 {
        sink.record(usage_record(
            "key_x",
            &format!("req_{i}"),
            1,
            1,
            Outcome::Ok,
        ));
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "record() blocked"
    );
    sink.flush().await;
    let stats = sink.stats();
    let (failed, dropped) = (
        stats.failed.load(Ordering::Relaxed),
        stats.dropped.load(Ordering::Relaxed),
    );
    assert!(dropped > 0);
    assert_eq!(failed + dropped, 50);
    assert!(stats.retries.load(Ordering::Relaxed) >= failed);
}

/// ptc.md 16: the model calls of one PTC round are one record each under the round's request id,
/// in the same millisecond here, none lost; a repeated record still writes once; the round counts
/// as one request in the counters, its tokens all count.
#[tokio::test]
async fn the_model_calls_of_a_ptc_round_are_separate_records() {
    let h = harness().await;
    let (key, _) = h.create_key(settings("ptc")).await;
    let sink = h.wired.usage_sink.clone();
    let call = |n: u32, execution: Option<&str>| {
        let mut record = usage_record(&key.id, "req_ptc", 100 * u64::from(n), 10, Outcome::Ok);
        record.ptc = Some(crate::usage::PtcCall {
            model_call: n,
            container_id: Some("container_abc".into()),
            execution_id: execution.map(str::to_string),
        });
        record
    };
    sink.record(call(1, None));
    sink.record(call(2, Some("srvtoolu_1")));
    sink.record(call(3, Some("srvtoolu_2")));
    sink.record(call(2, Some("srvtoolu_1")));
    sink.flush().await;

    let items = scan(&h.wired.dynamo, &h.wired.dynamo.tables.usage).await;
    let mut requests = requests_of(&items);
    requests.sort_by_key(|i| get_n::<u64>(i, "ptc_model_call"));
    assert_eq!(requests.len(), 3);
    assert_eq!(sum(&requests, "input_tokens"), 600);
    assert_eq!(sum(&requests, "output_tokens"), 30);
    let field = |i: &Item, name: &str| crate::keys::item::get_s(i, name);
    assert!(
        requests
            .iter()
            .all(|i| field(i, "request_id").as_deref() == Some("req_ptc"))
    );
    assert!(
        requests
            .iter()
            .all(|i| field(i, "container_id").as_deref() == Some("container_abc"))
    );
    assert_eq!(field(requests[0], "execution_id"), None);
    assert_eq!(
        field(requests[2], "execution_id").as_deref(),
        Some("srvtoolu_2")
    );
    let spend = h.wired.store.month_spend(&key.id, "2026-11").await.unwrap();
    assert_eq!(spend.requests, 1);
    assert_eq!(spend.input_tokens, 600);
    assert_eq!(sink.stats().duplicates.load(Ordering::Relaxed), 1);
}
