//! The DynamoDB usage sink: `record` only enqueues; a background task writes one usage item per
//! request plus the key's monthly counters and the daily aggregate in one transaction (the item
//! is conditional on not existing, so a retried write never counts twice). Retries with backoff;
//! a record that still fails is logged in full and counted. Never blocks or fails a response.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use rand::Rng;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use super::{UsageRecord, UsageSink};
use crate::keys::clock::{Clock, Date, rfc3339_millis, unix_secs};
use crate::keys::config::UsageSettings;
use crate::keys::dynamo::Dynamo;
use crate::keys::item::{Item, StoreError, is_condition_cancel, n, s};
use crate::keys::tables::{PK, SK, day_pk, day_sk, month_sk, request_sk, usage_pk};
use crate::keys::verifier::Verifier;
use crate::pricing::{PriceBook, Tokens};

/// Usage of requests that carried no key id (not through the gate filter).
pub const ANONYMOUS_KEY: &str = "anonymous";

enum Msg {
    Record(Box<Pending>),
    Flush(oneshot::Sender<()>),
}

/// A record with everything fixed at enqueue time, so every retry writes the same item.
struct Pending {
    record: UsageRecord,
    at: SystemTime,
}

struct Writer {
    dynamo: Dynamo,
    prices: Arc<PriceBook>,
    verifier: Option<Arc<Verifier>>,
    settings: UsageSettings,
    stats: Arc<Stats>,
}

/// What the sink did since it started (also exported as `translator_usage_write*` metrics).
#[derive(Debug, Default)]
pub struct Stats {
    pub written: AtomicU64,
    pub duplicates: AtomicU64,
    pub retries: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

impl Stats {
    fn count(&self, counter: &AtomicU64, result: &'static str) {
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("translator_usage_writes_total", "result" => result).increment(1);
    }
}

#[derive(Clone)]
pub struct DynamoUsageSink {
    tx: mpsc::Sender<Msg>,
    clock: Arc<dyn Clock>,
    stats: Arc<Stats>,
}

enum Written {
    New,
    Duplicate,
}

impl DynamoUsageSink {
    /// Start the writer task (on the current Tokio runtime).
    pub fn spawn(
        dynamo: Dynamo,
        prices: Arc<PriceBook>,
        verifier: Option<Arc<Verifier>>,
        clock: Arc<dyn Clock>,
        settings: UsageSettings,
    ) -> DynamoUsageSink {
        let (tx, rx) = mpsc::channel(settings.queue_capacity);
        let stats = Arc::new(Stats::default());
        let writer = Arc::new(Writer {
            dynamo,
            prices,
            verifier,
            settings,
            stats: stats.clone(),
        });
        tokio::spawn(run(writer, rx));
        DynamoUsageSink { tx, clock, stats }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Wait until every record enqueued before this call is written or given up (tests, and
    /// graceful shutdown).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

impl UsageSink for DynamoUsageSink {
    fn record(&self, record: UsageRecord) {
        let pending = Pending {
            record,
            at: self.clock.now(),
        };
        if let Err(e) = self.tx.try_send(Msg::Record(Box::new(pending))) {
            let reason = match e {
                mpsc::error::TrySendError::Full(_) => "queue_full",
                mpsc::error::TrySendError::Closed(_) => "closed",
            };
            self.stats.count(&self.stats.dropped, "dropped");
            if let mpsc::error::TrySendError::Full(Msg::Record(p))
            | mpsc::error::TrySendError::Closed(Msg::Record(p)) = e
            {
                log_lost(&p.record, reason);
            }
        }
    }
}

/// The last trace of a record that could not be stored: everything needed to bill it by hand.
fn log_lost(r: &UsageRecord, reason: &str) {
    tracing::error!(
        reason,
        request_id = %r.request_id,
        key_id = r.key_id.as_deref().unwrap_or(ANONYMOUS_KEY),
        requested_model = %r.requested_model,
        resolved_model = %r.resolved_model,
        tier = r.tier.as_deref().unwrap_or("default"),
        input_tokens = r.usage.input_tokens,
        output_tokens = r.usage.output_tokens,
        cache_read_input_tokens = r.usage.cache_read_input_tokens,
        cache_creation_input_tokens = r.usage.cache_creation_input_tokens,
        cache_write_1h_tokens = r.cache_write_1h_tokens,
        "usage record lost"
    );
}

async fn run(writer: Arc<Writer>, mut rx: mpsc::Receiver<Msg>) {
    let permits = Arc::new(Semaphore::new(writer.settings.concurrency));
    let mut in_flight = JoinSet::new();
    while let Some(msg) = rx.recv().await {
        while in_flight.try_join_next().is_some() {}
        match msg {
            Msg::Record(pending) => {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let writer = writer.clone();
                // The write outlives the request's task; its lines still name the request.
                let span =
                    tracing::info_span!("usage_write", request_id = %pending.record.request_id);
                in_flight.spawn(tracing::Instrument::instrument(
                    async move {
                        writer.write_with_retry(*pending).await;
                        drop(permit);
                    },
                    span,
                ));
            }
            Msg::Flush(done) => {
                while in_flight.join_next().await.is_some() {}
                let _ = done.send(());
            }
        }
    }
    while in_flight.join_next().await.is_some() {}
}

impl Writer {
    async fn write_with_retry(&self, pending: Pending) {
        let r = &pending.record;
        let key_id = r.key_id.clone().unwrap_or_else(|| ANONYMOUS_KEY.into());
        let items = match self.transaction(&pending, &key_id) {
            Ok(items) => items,
            Err(e) => {
                self.stats.count(&self.stats.failed, "failed");
                tracing::error!(error = %e, "cannot build the usage write");
                return log_lost(r, "invalid");
            }
        };
        // Every attempt writes the same items: an attempt that did commit (its answer lost) makes
        // the next one fail its condition, which counts as done.
        let mut attempt = 1;
        loop {
            match self.write(items.clone()).await {
                Ok(Written::New) => {
                    self.stats.count(&self.stats.written, "ok");
                    if let Some(verifier) = &self.verifier {
                        verifier.after_usage(&key_id).await;
                    }
                    return;
                }
                Ok(Written::Duplicate) => {
                    self.stats.count(&self.stats.duplicates, "duplicate");
                    return;
                }
                Err(e) if attempt < self.settings.max_attempts => {
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("translator_usage_write_retries_total").increment(1);
                    tracing::debug!(request_id = %r.request_id, attempt, error = %e, "retrying a usage write");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    self.stats.count(&self.stats.failed, "failed");
                    tracing::error!(request_id = %r.request_id, attempts = attempt, error = %e, "usage write failed");
                    return log_lost(r, "store_failed");
                }
            }
        }
    }

    /// Exponential with full jitter, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.settings.backoff_base.as_millis() as u64;
        let cap = self.settings.backoff_max.as_millis() as u64;
        let ceiling = base.saturating_mul(1 << attempt.min(20)).min(cap).max(1);
        Duration::from_millis(rand::rng().random_range(ceiling / 2..=ceiling))
    }

    async fn write(&self, items: Vec<TransactWriteItem>) -> Result<Written, StoreError> {
        let result = self
            .dynamo
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Written::New),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c))
                    if is_condition_cancel(c.cancellation_reasons()) =>
                {
                    Ok(Written::Duplicate)
                }
                _ => Err(StoreError::backend(e)),
            },
        }
    }

    fn transaction(&self, p: &Pending, key_id: &str) -> Result<Vec<TransactWriteItem>, StoreError> {
        let r = &p.record;
        let time = rfc3339_millis(p.at);
        let date = Date::of(p.at);
        let (day, month) = (date.to_string(), date.month_label());
        let tokens = Tokens::from_usage(&r.usage, r.cache_write_1h_tokens);
        let cost = self.prices.cost(
            &r.resolved_model,
            &r.requested_model,
            r.tier.as_deref(),
            &tokens,
        );
        let priced = cost.is_some();
        if !priced {
            metrics::counter!("translator_usage_unpriced_total", "model" => r.resolved_model.clone()).increment(1);
        }
        let cost = cost.unwrap_or(0);
        // The model calls of one PTC round share a request id: the call number keeps them apart.
        let sk = match &r.ptc {
            Some(ptc) => format!("{}#{}", request_sk(&time, &r.request_id), ptc.model_call),
            None => request_sk(&time, &r.request_id),
        };
        let mut item = Item::from([
            (PK.to_string(), s(usage_pk(key_id))),
            (SK.to_string(), s(sk)),
            ("type".into(), s("request")),
            ("key_id".into(), s(key_id)),
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
        if let Some(retention) = self.settings.retention {
            item.insert("expires_at".into(), n(unix_secs(p.at + retention)));
        }
        let table = &self.dynamo.tables.usage;
        // A PTC round is one client request, whatever its number of model calls.
        let requests = u64::from(r.ptc.as_ref().is_none_or(|ptc| ptc.model_call <= 1));
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(StoreError::backend)?;
        let month_counter =
            counter_update(table, usage_pk(key_id), month_sk(&month), &tokens, cost)
                .update_expression(format!(
                    "{COUNTERS} SET key_id = :key, #month = :month, updated_at = :now"
                ))
                .expression_attribute_names("#month", "month")
                .expression_attribute_values(":key", s(key_id))
                .expression_attribute_values(":month", s(&month))
                .expression_attribute_values(":now", s(&time))
                .expression_attribute_values(":one", n(requests))
                .build()
                .map_err(StoreError::backend)?;
        let day_counter = counter_update(
            table,
            day_pk(&day),
            day_sk(key_id, &r.requested_model),
            &tokens,
            cost,
        )
        .update_expression(format!(
            "{COUNTERS} SET key_id = :key, model = :model, #day = :day"
        ))
        .expression_attribute_names("#day", "day")
        .expression_attribute_values(":key", s(key_id))
        .expression_attribute_values(":model", s(&r.requested_model))
        .expression_attribute_values(":day", s(&day))
        .expression_attribute_values(":one", n(requests))
        .build()
        .map_err(StoreError::backend)?;
        Ok(vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(month_counter).build(),
            TransactWriteItem::builder().update(day_counter).build(),
        ])
    }
}

const COUNTERS: &str = "ADD requests :one, input_tokens :in, output_tokens :out, cache_read_tokens :cr, cache_write_tokens :cw, cache_write_1h_tokens :cw1h, cost_nanos :cost";

fn counter_update(
    table: &str,
    pk: String,
    sk: String,
    tokens: &Tokens,
    cost: u64,
) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
    Update::builder()
        .table_name(table)
        .key(PK, s(pk))
        .key(SK, s(sk))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":in", n(tokens.input))
        .expression_attribute_values(":out", n(tokens.output))
        .expression_attribute_values(":cr", n(tokens.cache_read))
        .expression_attribute_values(":cw", n(tokens.cache_write()))
        .expression_attribute_values(":cw1h", n(tokens.cache_write_1h))
        .expression_attribute_values(":cost", n(cost))
}

#[cfg(test)]
#[path = "dynamo_tests.rs"]
mod tests;
