//! The usage sink against the embedded store: exact counters under concurrency, idempotent
//! retries, billing of disconnected clients, and a store that fails or is gone.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use crate::keys::KeysConfig;
use crate::keys::config::UsageSettings;
use crate::keys::item::{Item, get_n};
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

/// A batch that holds a record already stored among new ones: the transaction is refused as a
/// whole, then its records are written one by one, so the new ones are all stored, the stored one
/// is counted once as a duplicate, and the counters hold each request once.
#[tokio::test]
async fn a_batch_with_a_stored_record_among_new_ones_loses_nothing() {
    let h = harness().await;
    let (key, _) = h.create_key(settings("mixed")).await;
    let sink = &h.wired.usage_sink;
    sink.record(usage_record(&key.id, "req_a", 100, 1, Outcome::Ok));
    sink.flush().await;
    assert_eq!(sink.stats().transactions.load(Ordering::Relaxed), 1);

    // Queued together (the test's runtime runs the writer only once it awaits): one batch.
    sink.record(usage_record(&key.id, "req_b", 200, 2, Outcome::Ok));
    sink.record(usage_record(&key.id, "req_a", 100, 1, Outcome::Ok));
    sink.record(usage_record(&key.id, "req_c", 400, 4, Outcome::Ok));
    sink.flush().await;

    let stats = sink.stats();
    assert_eq!(stats.written.load(Ordering::Relaxed), 3);
    assert_eq!(stats.duplicates.load(Ordering::Relaxed), 1);
    assert_eq!(stats.failed.load(Ordering::Relaxed), 0);
    // The first record, then req_b and req_c on their own after the batch was refused.
    assert_eq!(stats.transactions.load(Ordering::Relaxed), 3);
    let items = scan(&h.wired.dynamo, &h.wired.dynamo.tables.usage).await;
    let requests = requests_of(&items);
    assert_eq!(requests.len(), 3);
    let spend = h.wired.store.month_spend(&key.id, "2026-11").await.unwrap();
    assert_eq!(
        (spend.requests, spend.input_tokens, spend.output_tokens),
        (3, 700, 7)
    );
    let day = items
        .iter()
        .find(|i| crate::keys::item::get_s(i, "pk").as_deref() == Some("day#2026-11-25"))
        .expect("daily aggregate");
    assert_eq!(get_n::<u64>(day, "input_tokens"), Some(700));
    assert_eq!(get_n::<u64>(day, "requests"), Some(3));
}

/// Many records from many tasks on several threads, all in the same millisecond, over several
/// keys and models and with repeats: every counter item equals the sum of its stored requests,
/// and the writes went out in batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_equal_the_sum_of_the_stored_requests() {
    let h = harness().await;
    let mut keys = Vec::new();
    for name in ["k1", "k2", "k3"] {
        keys.push(h.create_key(settings(name)).await.0.id);
    }
    let sink = h.wired.usage_sink.clone();
    let tasks: Vec<_> = (0..300u64)
        .map(|i| {
            let sink = sink.clone();
            let key = keys[(i % 3) as usize].clone();
            tokio::spawn(async move {
                // Every tenth request is recorded twice.
                for _ in 0..(1 + u64::from(i % 10 == 0)) {
                    let mut r =
                        usage_record(&key, &format!("req_{i:03}"), 10 + i, 1 + i % 7, Outcome::Ok);
                    if i % 2 == 1 {
                        r.requested_model = "claude-haiku-4-5".into();
                    }
                    sink.record(r);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    sink.flush().await;

    let stats = sink.stats();
    assert_eq!(stats.written.load(Ordering::Relaxed), 300);
    assert_eq!(stats.duplicates.load(Ordering::Relaxed), 30);
    let transactions = stats.transactions.load(Ordering::Relaxed);
    assert!(
        transactions < 300,
        "{transactions} transactions for 300 records"
    );

    let items = scan(&h.wired.dynamo, &h.wired.dynamo.tables.usage).await;
    let requests = requests_of(&items);
    assert_eq!(requests.len(), 300);
    let get_s = |i: &Item, name: &str| crate::keys::item::get_s(i, name).unwrap_or_default();
    for key in &keys {
        let of_key: Vec<&Item> = requests
            .iter()
            .copied()
            .filter(|i| get_s(i, "key_id") == *key)
            .collect();
        let spend = h.wired.store.month_spend(key, "2026-11").await.unwrap();
        assert_eq!(spend.requests, of_key.len() as u64);
        assert_eq!(spend.input_tokens, sum(&of_key, "input_tokens"));
        assert_eq!(spend.output_tokens, sum(&of_key, "output_tokens"));
        assert_eq!(spend.cost_nanos, sum(&of_key, "cost_nanos"));
        for model in ["claude-sonnet-4-5", "claude-haiku-4-5"] {
            let of_model: Vec<&Item> = of_key
                .iter()
                .copied()
                .filter(|i| get_s(i, "requested_model") == model)
                .collect();
            let day = items
                .iter()
                .find(|i| {
                    get_s(i, "pk") == "day#2026-11-25"
                        && get_s(i, "sk") == format!("key#{key}#model#{model}")
                })
                .expect("daily aggregate");
            assert_eq!(get_n::<u64>(day, "requests"), Some(of_model.len() as u64));
            assert_eq!(
                get_n::<u64>(day, "input_tokens"),
                Some(sum(&of_model, "input_tokens"))
            );
            assert_eq!(
                get_n::<u64>(day, "cost_nanos"),
                Some(sum(&of_model, "cost_nanos"))
            );
        }
    }
    let expected_input: u64 = (0..300).map(|i| 10 + i).sum();
    assert_eq!(sum(&requests, "input_tokens"), expected_input);
}

/// A batch's write that keeps failing loses its records as a whole, each logged and counted,
/// the repeat of one included.
#[tokio::test]
async fn a_batch_that_cannot_be_written_counts_every_record_lost() {
    let dead = crate::keys::dynamo::local_client("us-east-1", "http://127.0.0.1:1");
    let dynamo = Dynamo {
        client: dead,
        tables: crate::keys::tables::TableNames::with_prefix("x_"),
    };
    let settings = UsageSettings {
        max_attempts: 2,
        backoff_base: Duration::from_millis(1),
        ..UsageSettings::default()
    };
    let clock = Arc::new(crate::keys::clock::ManualClock::at(
        crate::keys::clock::Date::new(2026, 11, 25).unwrap(),
    ));
    let prices = Arc::new(PriceBook::new(Default::default()));
    let sink = DynamoUsageSink::spawn(dynamo, prices, None, clock, settings);
    for id in ["req_1", "req_2", "req_1"] {
        sink.record(usage_record("key_x", id, 1, 1, Outcome::Ok));
    }
    sink.flush().await;
    let stats = sink.stats();
    assert_eq!(stats.failed.load(Ordering::Relaxed), 3);
    assert_eq!(stats.written.load(Ordering::Relaxed), 0);
    assert_eq!(stats.duplicates.load(Ordering::Relaxed), 0);
    // One batch, retried once: one retry per record in it.
    assert_eq!(stats.retries.load(Ordering::Relaxed), 2);
}

/// A record the store refuses (its item is over DynamoDB's 400 KB) fails the batch's
/// transaction; the batch is then written record by record, so only that record is lost, at once
/// (no retries of a request that cannot succeed).
#[tokio::test]
async fn a_refused_record_takes_no_other_record_with_it() {
    let h = harness().await;
    let (key, _) = h.create_key(settings("oversized")).await;
    let sink = &h.wired.usage_sink;
    let mut huge = usage_record(&key.id, "req_huge", 1, 1, Outcome::Ok);
    huge.resolved_model = "m".repeat(500 * 1024);
    sink.record(usage_record(&key.id, "req_1", 100, 1, Outcome::Ok));
    sink.record(huge);
    sink.record(usage_record(&key.id, "req_2", 200, 2, Outcome::Ok));
    sink.flush().await;

    let stats = sink.stats();
    assert_eq!(stats.written.load(Ordering::Relaxed), 2);
    assert_eq!(stats.failed.load(Ordering::Relaxed), 1);
    assert_eq!(stats.retries.load(Ordering::Relaxed), 0);
    let items = scan(&h.wired.dynamo, &h.wired.dynamo.tables.usage).await;
    assert_eq!(requests_of(&items).len(), 2);
    let spend = h.wired.store.month_spend(&key.id, "2026-11").await.unwrap();
    assert_eq!((spend.requests, spend.input_tokens), (2, 300));
}
