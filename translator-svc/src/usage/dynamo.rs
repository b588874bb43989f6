//! The DynamoDB usage sink: `record` only enqueues; a background task drains the queue in batches
//! and writes each batch in one transaction: a request item per record (conditional on not
//! existing, so a retried write never counts twice) and the batch's sums on the keys' monthly
//! counters and the daily aggregates. Retries with backoff; a record that still fails is logged in
//! full and counted. Never blocks or fails a response.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::TransactWriteItem;
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use super::batch::{self, Batch, Pending, Prepared};
use super::{UsageRecord, UsageSink};
use crate::keys::clock::Clock;
use crate::keys::config::UsageSettings;
use crate::keys::dynamo::Dynamo;
use crate::keys::item::{StoreError, is_condition_cancel};
use crate::keys::verifier::Verifier;
use crate::pricing::PriceBook;

pub use super::batch::ANONYMOUS_KEY;

enum Msg {
    Record(Box<Pending>),
    Flush(oneshot::Sender<()>),
}

struct Writer {
    dynamo: Dynamo,
    prices: Arc<PriceBook>,
    verifier: Option<Arc<Verifier>>,
    settings: UsageSettings,
    stats: Arc<Stats>,
}

/// What the sink did since it started, per record (also exported as `translator_usage_write*`
/// metrics).
#[derive(Debug, Default)]
pub struct Stats {
    pub written: AtomicU64,
    pub duplicates: AtomicU64,
    pub retries: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    /// Transactions that committed (a batch of records each).
    pub transactions: AtomicU64,
}

impl Stats {
    fn count(&self, counter: &AtomicU64, result: &'static str, records: u64) {
        if records == 0 {
            return;
        }
        counter.fetch_add(records, Ordering::Relaxed);
        metrics::counter!("translator_usage_writes_total", "result" => result).increment(records);
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
    /// A condition failed: at least one request item of the transaction already exists.
    Duplicate,
    /// The store refused the request itself (a validation error, e.g. an item over 400 KB):
    /// the same request can never succeed, so it is not retried.
    Refused,
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
    /// graceful shutdown). Cuts a batch that is still collecting short.
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
            self.stats.count(&self.stats.dropped, "dropped", 1);
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

/// What ended the collection of a batch.
enum Cut {
    /// The batch is full or its linger has passed: write it, keep going. (Only this cut leaves
    /// a record carried over to the next batch.)
    Ready,
    /// A flush asked for everything queued before it.
    Flush(oneshot::Sender<()>),
    /// Every sender is gone: write what is left and stop.
    Closed,
}

/// The writer task. Takes a write permit first and only then collects a batch, so while every
/// permit is busy the records wait in the queue and the next batch takes many of them at once.
async fn run(writer: Arc<Writer>, mut rx: mpsc::Receiver<Msg>) {
    let permits = Arc::new(Semaphore::new(writer.settings.concurrency));
    let mut in_flight = JoinSet::new();
    // A record that did not fit in the previous batch starts the next one.
    let mut carried: Option<Box<Prepared>> = None;
    loop {
        while in_flight.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let mut batch = Batch::new(writer.settings.batch_max_records);
        if let Some(first) = carried.take() {
            // A fresh batch takes any one record.
            let _ = batch.push(*first);
        }
        let cut = collect(&writer, &mut rx, &mut batch, &mut carried).await;
        if !batch.is_empty() {
            writer.clone().spawn_write(&mut in_flight, batch, permit);
        }
        match cut {
            Cut::Ready => {}
            Cut::Flush(done) => {
                while in_flight.join_next().await.is_some() {}
                let _ = done.send(());
            }
            Cut::Closed => break,
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// Fill `batch` from the queue: wait for a first record, then take more until the batch is full
/// or the linger has passed since the first one (records already queued are taken at once).
async fn collect(
    writer: &Writer,
    rx: &mut mpsc::Receiver<Msg>,
    batch: &mut Batch,
    carried: &mut Option<Box<Prepared>>,
) -> Cut {
    let mut deadline = None;
    if !batch.is_empty() {
        deadline = Some(tokio::time::Instant::now() + writer.settings.batch_linger);
    }
    while !batch.is_full() {
        let msg = match deadline {
            None => rx.recv().await,
            Some(deadline) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(msg) => msg,
                Err(_) => return Cut::Ready,
            },
        };
        match msg {
            Some(Msg::Record(pending)) => {
                let prepared = writer.prepare(*pending);
                if let Err(next) = batch.push(prepared) {
                    *carried = Some(next);
                    return Cut::Ready;
                }
                if deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + writer.settings.batch_linger);
                }
            }
            Some(Msg::Flush(done)) => return Cut::Flush(done),
            None => return Cut::Closed,
        }
    }
    Cut::Ready
}

fn write_span(records: &[Prepared]) -> tracing::Span {
    let first = records.first().map_or("", |p| p.record.request_id.as_str());
    tracing::info_span!("usage_write", request_id = %first, records = records.len())
}

impl Writer {
    fn prepare(&self, pending: Pending) -> Prepared {
        batch::prepare(pending, &self.prices, self.settings.retention)
    }

    fn spawn_write(
        self: Arc<Self>,
        in_flight: &mut JoinSet<()>,
        batch: Batch,
        permit: OwnedSemaphorePermit,
    ) {
        // The write outlives the requests' tasks. Its lines name the batch's first request and
        // how many records it carries (a lost record's line names its own request).
        let span = write_span(&batch.records);
        in_flight.spawn(tracing::Instrument::instrument(
            async move {
                self.write_batch(batch.records).await;
                drop(permit);
            },
            span,
        ));
    }

    /// Write a batch in one transaction. If a request item already exists (a record queued
    /// twice, or a write whose commit was not acknowledged), or one record is refused, the whole
    /// transaction fails: then each record is written on its own, so exactly the duplicates are
    /// skipped and only a refused record is lost.
    async fn write_batch(&self, records: Vec<Prepared>) {
        match self.write_with_retry(&records).await {
            Some(Written::New) => self.settle_new(records).await,
            Some(Written::Duplicate | Written::Refused) if records.len() > 1 => {
                tracing::debug!(
                    records = records.len(),
                    "a usage batch was refused as a whole; writing its records one by one"
                );
                for p in records {
                    let one = vec![p];
                    let span = write_span(&one);
                    let written =
                        tracing::Instrument::instrument(self.write_with_retry(&one), span).await;
                    match written {
                        Some(Written::New) => self.settle_new(one).await,
                        Some(Written::Duplicate) => self.settle_duplicates(&one),
                        Some(Written::Refused) | None => self.settle_lost(&one),
                    }
                }
            }
            Some(Written::Duplicate) => self.settle_duplicates(&records),
            Some(Written::Refused) | None => self.settle_lost(&records),
        }
    }

    /// `None`: given up after the last attempt (or the write could not be built).
    async fn write_with_retry(&self, records: &[Prepared]) -> Option<Written> {
        let items = match batch::transaction(&self.dynamo.tables.usage, records) {
            Ok(items) => items,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the usage write");
                return None;
            }
        };
        let size = records.len() as u64;
        // Every attempt writes the same items: an attempt that did commit (its answer lost) makes
        // the next one fail its conditions, which counts as done.
        let mut attempt = 1;
        loop {
            match self.write(items.clone()).await {
                Ok(written) => return Some(written),
                Err(e) if attempt < self.settings.max_attempts => {
                    self.stats.retries.fetch_add(size, Ordering::Relaxed);
                    metrics::counter!("translator_usage_write_retries_total").increment(size);
                    tracing::debug!(attempt, error = %e, "retrying a usage write");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(attempts = attempt, error = %e, "usage write failed");
                    return None;
                }
            }
        }
    }

    async fn settle_new(&self, records: Vec<Prepared>) {
        let repeats: usize = records.iter().map(|p| p.repeats.len()).sum();
        self.stats
            .count(&self.stats.written, "ok", records.len() as u64);
        self.stats
            .count(&self.stats.duplicates, "duplicate", repeats as u64);
        self.stats.transactions.fetch_add(1, Ordering::Relaxed);
        let Some(verifier) = &self.verifier else {
            return;
        };
        // One spend check per key, with what the batch added to it.
        let mut added: BTreeMap<&str, u64> = BTreeMap::new();
        for p in &records {
            *added.entry(&p.key_id).or_default() += p.counts.cost_nanos;
        }
        for (key_id, cost_nanos) in added {
            verifier.after_usage(key_id, cost_nanos).await;
        }
    }

    fn settle_duplicates(&self, records: &[Prepared]) {
        let count: usize = records.iter().map(|p| 1 + p.repeats.len()).sum();
        self.stats
            .count(&self.stats.duplicates, "duplicate", count as u64);
    }

    fn settle_lost(&self, records: &[Prepared]) {
        for p in records {
            self.stats
                .count(&self.stats.failed, "failed", 1 + p.repeats.len() as u64);
            log_lost(&p.record, "store_failed");
            for repeat in &p.repeats {
                log_lost(repeat, "store_failed");
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
                Some(service) if is_refusal(service) => {
                    tracing::warn!(error = %StoreError::backend(e), "the store refused a usage write");
                    Ok(Written::Refused)
                }
                _ => Err(StoreError::backend(e)),
            },
        }
    }
}

/// A validation error, for the request or one of its actions: no retry can change the answer.
fn is_refusal(error: &TransactWriteItemsError) -> bool {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    match error {
        TransactWriteItemsError::TransactionCanceledException(c) => c
            .cancellation_reasons()
            .iter()
            .any(|r| r.code() == Some("ValidationError")),
        other => other.code() == Some("ValidationException"),
    }
}

#[cfg(test)]
#[path = "dynamo_tests.rs"]
mod tests;
