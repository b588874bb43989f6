//! How a batch is laid out: counters summed per item, a repeated request riding along, and the
//! transaction limits.

use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::TransactWriteItem;

use super::*;
use crate::keys::clock::Date;
use crate::keys::testing::usage_record;
use crate::usage::Outcome;

fn noon() -> SystemTime {
    Date::new(2026, 11, 25).expect("date").start() + Duration::from_secs(12 * 3600)
}

fn prepared(key_id: &str, request_id: &str, input: u64, output: u64) -> Prepared {
    let prices = PriceBook::new(Default::default());
    let record = usage_record(key_id, request_id, input, output, Outcome::Ok);
    prepare(Pending { record, at: noon() }, &prices, None)
}

fn value<'a>(action: &'a TransactWriteItem, name: &str) -> Option<&'a str> {
    let update = action.update()?;
    match update.expression_attribute_values()?.get(name)? {
        AttributeValue::N(v) | AttributeValue::S(v) => Some(v),
        _ => None,
    }
}

#[test]
fn counters_are_summed_per_counter_item() {
    let mut other_model = prepared("key_a", "req_3", 1_000, 10);
    other_model.record.requested_model = "claude-haiku-4-5".into();
    let records = vec![
        prepared("key_a", "req_1", 100, 7),
        prepared("key_a", "req_2", 200, 8),
        other_model,
        prepared("key_b", "req_4", 50, 1),
    ];
    let actions = transaction("usage", &records).unwrap();
    // Four request items, two month counters (key_a, key_b), three daily aggregates.
    assert_eq!(actions.len(), 4 + 2 + 3);
    assert!(actions[..4].iter().all(|a| {
        a.put()
            .is_some_and(|p| p.condition_expression() == Some("attribute_not_exists(pk)"))
    }));
    let month_a = &actions[4];
    assert_eq!(
        month_a.update().unwrap().key().get("pk"),
        Some(&AttributeValue::S("key#key_a".into()))
    );
    assert_eq!(value(month_a, ":one"), Some("3"));
    assert_eq!(value(month_a, ":in"), Some("1300"));
    assert_eq!(value(month_a, ":out"), Some("25"));
    // $3/MTok in, $15/MTok out: nano-USD 3000 and 15000 per token.
    assert_eq!(
        value(month_a, ":cost"),
        Some((1300 * 3000 + 25 * 15000).to_string().as_str())
    );
    let sonnet_day_a = actions[6..]
        .iter()
        .find(|a| {
            a.update().unwrap().key().get("sk")
                == Some(&AttributeValue::S(
                    "key#key_a#model#claude-sonnet-4-5".into(),
                ))
        })
        .expect("daily aggregate of key_a's sonnet requests");
    assert_eq!(value(sonnet_day_a, ":in"), Some("300"));
    assert_eq!(value(sonnet_day_a, ":one"), Some("2"));
}

#[test]
fn a_repeated_request_rides_along_and_does_not_add_an_action() {
    let mut batch = Batch::new(25);
    batch.push(prepared("key_a", "req_1", 100, 7)).unwrap();
    batch.push(prepared("key_a", "req_1", 100, 7)).unwrap();
    // The same request id under another key is another record.
    batch.push(prepared("key_b", "req_1", 100, 7)).unwrap();
    assert_eq!(batch.records.len(), 2);
    assert_eq!(batch.records[0].repeats.len(), 1);
    let actions = transaction("usage", &batch.records).unwrap();
    assert_eq!(actions.len(), 2 + 2 + 2);
    assert_eq!(value(&actions[2], ":one"), Some("1"));
}

#[test]
fn a_batch_stays_within_the_transaction_limits() {
    // Asked for more than fits, a batch still holds at most 33 records: 99 actions at worst.
    let mut batch = Batch::new(1000);
    let mut refused = None;
    for i in 0..40 {
        let mut p = prepared(&format!("key_{i}"), &format!("req_{i}"), 1, 1);
        p.record.requested_model = format!("model_{i}");
        if let Err(p) = batch.push(p) {
            refused = Some(p);
            break;
        }
    }
    assert_eq!(batch.records.len(), MAX_TRANSACTION_ITEMS / 3);
    assert_eq!(refused.map(|p| p.record.request_id), Some("req_33".into()));
    let actions = transaction("usage", &batch.records).unwrap();
    assert!(actions.len() <= MAX_TRANSACTION_ITEMS, "{}", actions.len());

    // Large items close a batch by size before the count does.
    let mut batch = Batch::new(25);
    let big = |i: usize| {
        let mut p = prepared("key_a", &format!("req_{i}"), 1, 1);
        p.bytes = MAX_BATCH_BYTES / 3;
        p
    };
    for i in 0..3 {
        batch.push(big(i)).unwrap();
    }
    assert!(batch.push(big(3)).is_err());
    // Alone, even an oversized record makes a batch (DynamoDB then judges the item itself).
    let mut alone = Batch::new(25);
    let mut huge = big(4);
    huge.bytes = MAX_BATCH_BYTES * 2;
    assert!(alone.push(huge).is_ok());
}

#[test]
fn a_ptc_round_counts_one_request_however_many_calls() {
    let prices = PriceBook::new(Default::default());
    let call = |n: u32| {
        let mut record = usage_record("key_a", "req_ptc", 10, 1, Outcome::Ok);
        record.ptc = Some(crate::usage::PtcCall {
            model_call: n,
            ..Default::default()
        });
        prepare(Pending { record, at: noon() }, &prices, None)
    };
    let records = vec![call(1), call(2), call(3)];
    let actions = transaction("usage", &records).unwrap();
    assert_eq!(actions.len(), 3 + 1 + 1);
    assert_eq!(value(&actions[3], ":one"), Some("1"));
    assert_eq!(value(&actions[3], ":in"), Some("30"));
}
