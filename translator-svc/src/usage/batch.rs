//! Turns queued usage records into one `TransactWriteItems`: a request item per record, each
//! conditional on not existing, plus the counters of the whole batch summed per counter item (the
//! key's month, the key and model's day). Pure: no I/O, no clock, no environment.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::UsageRecord;
use crate::keys::clock::{Date, rfc3339_millis, unix_secs};
use crate::keys::item::{Item, StoreError, n, s};
use crate::keys::tables::{PK, SK, day_pk, day_sk, month_sk, request_sk, usage_pk};
use crate::pricing::{PriceBook, Tokens};

/// Usage of requests that carried no key id (not through the gate filter).
pub const ANONYMOUS_KEY: &str = "anonymous";

/// DynamoDB's limits on one transaction: 100 actions, 4 MB in all.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// What the request items of one batch may add up to; the counters of a batch are small and
/// bounded by the record count, so this keeps the whole transaction well under 4 MB.
pub const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

/// A record with everything fixed at enqueue time, so every retry writes the same item.
pub struct Pending {
    pub record: UsageRecord,
    pub at: SystemTime,
}

/// Counter increments: one record's, or a batch's sum for one counter item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub cache_write_1h: u64,
    pub cost_nanos: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.input += other.input;
        self.output += other.output;
        self.cache_read += other.cache_read;
        self.cache_write += other.cache_write;
        self.cache_write_1h += other.cache_write_1h;
        self.cost_nanos += other.cost_nanos;
    }
}

/// One record ready to write: its request item, its increments and the counter items they go to.
#[derive(Debug)]
pub struct Prepared {
    pub record: UsageRecord,
    /// The key the usage is filed under (`anonymous` without one).
    pub key_id: String,
    /// The request item's sort key: with the key id, what makes two records the same request.
    pub sk: String,
    item: Item,
    pub counts: Counts,
    month: String,
    day: String,
    time: String,
    /// Roughly the request item's size on the wire, for the 4 MB limit.
    pub bytes: usize,
    /// Later records with the same key as this one (the same request recorded again): they are
    /// duplicates if this one is stored, and lost with it if it is not.
    pub repeats: Vec<UsageRecord>,
}

/// Price a record and lay out its request item. Counts an unpriced model once per record.
pub fn prepare(p: Pending, prices: &PriceBook, retention: Option<Duration>) -> Prepared {
    let r = &p.record;
    let key_id = r.key_id.clone().unwrap_or_else(|| ANONYMOUS_KEY.into());
    let time = rfc3339_millis(p.at);
    let date = Date::of(p.at);
    let (day, month) = (date.to_string(), date.month_label());
    let tokens = Tokens::from_usage(&r.usage, r.cache_write_1h_tokens);
    let cost = prices.cost(
        &r.resolved_model,
        &r.requested_model,
        r.tier.as_deref(),
        &tokens,
    );
    let priced = cost.is_some();
    if !priced {
        metrics::counter!("translator_usage_unpriced_total", "model" => r.resolved_model.clone())
            .increment(1);
    }
    let cost = cost.unwrap_or(0);
    // The model calls of one PTC round share a request id: the call number keeps them apart.
    let sk = match &r.ptc {
        Some(ptc) => format!("{}#{}", request_sk(&time, &r.request_id), ptc.model_call),
        None => request_sk(&time, &r.request_id),
    };
    let mut item = Item::from([
        (PK.to_string(), s(usage_pk(&key_id))),
        (SK.to_string(), s(&sk)),
        ("type".into(), s("request")),
        ("key_id".into(), s(&key_id)),
        ("request_id".into(), s(&r.request_id)),
        ("time".into(), s(&time)),
        ("day".into(), s(&day)),
        ("requested_model".into(), s(&r.requested_model)),
        ("resolved_model".into(), s(&r.resolved_model)),
        ("api".into(), s(r.api)),
        ("tier".into(), s(r.tier.as_deref().unwrap_or("default"))),
        ("stream".into(), AttributeValue::Bool(r.stream)),
        ("status".into(), s(r.outcome.label())),
        ("input_tokens".into(), n(tokens.input)),
        ("output_tokens".into(), n(tokens.output)),
        ("cache_read_tokens".into(), n(tokens.cache_read)),
        ("cache_write_5m_tokens".into(), n(tokens.cache_write_5m)),
        ("cache_write_1h_tokens".into(), n(tokens.cache_write_1h)),
        ("latency_ms".into(), n(r.latency.as_millis())),
        ("cost_nanos".into(), n(cost)),
        ("priced".into(), AttributeValue::Bool(priced)),
    ]);
    if let Some(ttft) = r.time_to_first_token {
        item.insert("ttft_ms".into(), n(ttft.as_millis()));
    }
    if let Some(ptc) = &r.ptc {
        item.insert("ptc_model_call".into(), n(ptc.model_call));
        if let Some(container_id) = &ptc.container_id {
            item.insert("container_id".into(), s(container_id));
        }
        if let Some(execution_id) = &ptc.execution_id {
            item.insert("execution_id".into(), s(execution_id));
        }
    }
    if let Some(retention) = retention {
        item.insert("expires_at".into(), n(unix_secs(p.at + retention)));
    }
    let bytes = item.iter().map(|(k, v)| k.len() + value_bytes(v)).sum();
    // A PTC round is one client request, whatever its number of model calls.
    let requests = u64::from(r.ptc.as_ref().is_none_or(|ptc| ptc.model_call <= 1));
    let counts = Counts {
        requests,
        input: tokens.input,
        output: tokens.output,
        cache_read: tokens.cache_read,
        cache_write: tokens.cache_write(),
        cache_write_1h: tokens.cache_write_1h,
        cost_nanos: cost,
    };
    Prepared {
        record: p.record,
        key_id,
        sk,
        item,
        counts,
        month,
        day,
        time,
        bytes,
        repeats: Vec::new(),
    }
}

fn value_bytes(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(text) | AttributeValue::N(text) => text.len(),
        _ => 1,
    }
}

/// The records of one transaction, at most `max_records` and `MAX_BATCH_BYTES`.
pub struct Batch {
    pub records: Vec<Prepared>,
    bytes: usize,
    max_records: usize,
}

impl Batch {
    /// `max_records` is capped so that a record, its month counter and its day aggregate (three
    /// actions each at worst) always fit in one transaction.
    pub fn new(max_records: usize) -> Batch {
        Batch {
            records: Vec::new(),
            bytes: 0,
            max_records: max_records.clamp(1, MAX_TRANSACTION_ITEMS / 3),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.records.len() >= self.max_records
    }

    /// Add a record; `Err(record)` when it does not fit (it starts the next batch). A record with
    /// the key of one already here is that request again: it rides along as a repeat, since one
    /// transaction may not touch an item twice.
    pub fn push(&mut self, p: Prepared) -> Result<(), Box<Prepared>> {
        if let Some(first) = self
            .records
            .iter_mut()
            .find(|q| q.sk == p.sk && q.key_id == p.key_id)
        {
            first.repeats.push(p.record);
            return Ok(());
        }
        if !self.records.is_empty() && (self.is_full() || self.bytes + p.bytes > MAX_BATCH_BYTES) {
            return Err(Box::new(p));
        }
        self.bytes += p.bytes;
        self.records.push(p);
        Ok(())
    }
}

/// The counter items of a batch, each with the sum of its records' increments. `BTreeMap`s keep
/// the action order stable from one attempt to the next.
#[derive(Default)]
pub struct Counters {
    /// (key id, month) -> increments and the latest record time.
    pub months: BTreeMap<(String, String), (Counts, String)>,
    /// (day, key id, requested model) -> increments.
    pub days: BTreeMap<(String, String, String), Counts>,
}

impl Counters {
    pub fn of(records: &[Prepared]) -> Counters {
        let mut counters = Counters::default();
        for p in records {
            let month = counters
                .months
                .entry((p.key_id.clone(), p.month.clone()))
                .or_insert_with(|| (Counts::default(), p.time.clone()));
            month.0.add(&p.counts);
            if p.time > month.1 {
                month.1.clone_from(&p.time);
            }
            counters
                .days
                .entry((
                    p.day.clone(),
                    p.key_id.clone(),
                    p.record.requested_model.clone(),
                ))
                .or_default()
                .add(&p.counts);
        }
        counters
    }
}

/// The actions of one transaction for `records` (distinct request items): their puts, then one
/// update per month counter and per daily aggregate. Every attempt builds the same actions, so a
/// retry after a commit whose answer was lost fails on the puts' conditions and counts nothing.
pub fn transaction(
    table: &str,
    records: &[Prepared],
) -> Result<Vec<TransactWriteItem>, StoreError> {
    let counters = Counters::of(records);
    let mut actions =
        Vec::with_capacity(records.len() + counters.months.len() + counters.days.len());
    for p in records {
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(p.item.clone()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(StoreError::backend)?;
        actions.push(TransactWriteItem::builder().put(put).build());
    }
    for ((key_id, month), (counts, time)) in &counters.months {
        let update = counter_update(table, usage_pk(key_id), month_sk(month), counts)
            .update_expression(format!(
                "{COUNTERS} SET key_id = :key, #month = :month, updated_at = :now"
            ))
            .expression_attribute_names("#month", "month")
            .expression_attribute_values(":key", s(key_id))
            .expression_attribute_values(":month", s(month))
            .expression_attribute_values(":now", s(time))
            .build()
            .map_err(StoreError::backend)?;
        actions.push(TransactWriteItem::builder().update(update).build());
    }
    for ((day, key_id, model), counts) in &counters.days {
        let update = counter_update(table, day_pk(day), day_sk(key_id, model), counts)
            .update_expression(format!(
                "{COUNTERS} SET key_id = :key, model = :model, #day = :day"
            ))
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":key", s(key_id))
            .expression_attribute_values(":model", s(model))
            .expression_attribute_values(":day", s(day))
            .build()
            .map_err(StoreError::backend)?;
        actions.push(TransactWriteItem::builder().update(update).build());
    }
    Ok(actions)
}

const COUNTERS: &str = "ADD requests :one, input_tokens :in, output_tokens :out, cache_read_tokens :cr, cache_write_tokens :cw, cache_write_1h_tokens :cw1h, cost_nanos :cost";

fn counter_update(
    table: &str,
    pk: String,
    sk: String,
    counts: &Counts,
) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
    Update::builder()
        .table_name(table)
        .key(PK, s(pk))
        .key(SK, s(sk))
        .expression_attribute_values(":one", n(counts.requests))
        .expression_attribute_values(":in", n(counts.input))
        .expression_attribute_values(":out", n(counts.output))
        .expression_attribute_values(":cr", n(counts.cache_read))
        .expression_attribute_values(":cw", n(counts.cache_write))
        .expression_attribute_values(":cw1h", n(counts.cache_write_1h))
        .expression_attribute_values(":cost", n(counts.cost_nanos))
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
