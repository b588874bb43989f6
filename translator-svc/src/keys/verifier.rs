//! `Auth/Check` answered from the key store: master key first, then the verdict cache, then the
//! store (hash lookup, status, monthly spend against the budget). Marks a key `budget_exceeded`
//! when it crosses its budget and lifts that when the month rolls over or the budget is raised.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::cache::VerdictCache;
use super::clock::{Clock, Date, rfc3339_millis};
use super::item::StoreError;
use super::record::{KeyPolicy, KeyRecord, KeyStatus};
use super::secret::{hash_key, looks_like_key};
use super::store::KeyStore;
use crate::auth::{Denial, KeyGrant, KeyVerifier, MasterKeyVerifier, Verdict, VerifyError};
use crate::pricing::nanos_to_usd;

pub use crate::auth::MASTER_KEY_ID;

/// The filter's cache TTL for a key that has spent 90 % of its budget, to bound the overshoot.
const NEAR_BUDGET_FILTER_TTL: Duration = Duration::from_secs(1);

pub struct Verifier {
    store: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    master: MasterKeyVerifier,
    cache: VerdictCache,
}

/// 90 % of the budget spent.
fn near_budget(spent_nanos: u64, budget_nanos: u64) -> bool {
    spent_nanos.saturating_mul(10) >= budget_nanos.saturating_mul(9)
}

fn budget_message(budget_nanos: u64, spent_nanos: u64, today: Date) -> String {
    format!(
        "This API key has reached its monthly budget of ${:.2} (${:.2} spent in {}). The budget resets on {} (UTC); an administrator can raise it.",
        nanos_to_usd(budget_nanos),
        nanos_to_usd(spent_nanos),
        today.month_label(),
        today.first_of_next_month(),
    )
}

impl Verifier {
    pub fn new(
        store: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
        master_key: Option<String>,
        cache_ttl: Duration,
    ) -> Verifier {
        Verifier {
            store,
            clock,
            master: MasterKeyVerifier::new(master_key),
            cache: VerdictCache::new(cache_ttl),
        }
    }

    /// The verdict for a presented key; `Err` only when the store cannot be read.
    pub async fn check(&self, presented_key: &str) -> Result<Verdict, StoreError> {
        let result = self.check_uncounted(presented_key).await;
        crate::usage::catalog::auth_check(&result);
        result
    }

    async fn check_uncounted(&self, presented_key: &str) -> Result<Verdict, StoreError> {
        if let Ok(verdict @ Verdict::Allowed(_)) = self.master.verify(presented_key).await {
            return Ok(verdict);
        }
        if !looks_like_key(presented_key) {
            return Ok(Verdict::Denied(Denial::InvalidKey));
        }
        let hash = hash_key(presented_key);
        let now = self.clock.now();
        let cached = self.cache.get(&hash, now);
        crate::usage::catalog::auth_cache("verdict", cached.is_some());
        if let Some(cached) = cached {
            return Ok(cached.verdict);
        }
        let Some(record) = self.store.find_by_hash(&hash).await? else {
            let verdict = Verdict::Denied(Denial::InvalidKey);
            self.cache.put(hash, verdict.clone(), None, None, now);
            return Ok(verdict);
        };
        let (verdict, spent) = self.decide(&record, now).await?;
        if matches!(verdict, Verdict::Allowed(_)) {
            let (store, id, at) = (self.store.clone(), record.id.clone(), rfc3339_millis(now));
            // In the caller's span: the write's lines name the request that used the key.
            tokio::spawn(tracing::Instrument::in_current_span(async move {
                if let Err(e) = store.touch(&id, &at).await {
                    tracing::debug!(key_id = %id, error = %e, "cannot record last use");
                }
            }));
        }
        self.cache
            .put(hash, verdict.clone(), Some(&record), spent, now);
        Ok(verdict)
    }

    /// The verdict, and the month's spend it was decided on (for a key with a budget).
    async fn decide(
        &self,
        record: &KeyRecord,
        now: SystemTime,
    ) -> Result<(Verdict, Option<u64>), StoreError> {
        if record.status == KeyStatus::Disabled {
            return Ok((Verdict::Denied(Denial::InvalidKey), None));
        }
        let today = Date::of(now);
        let month = today.month_label();
        let at = rfc3339_millis(now);
        let mut near = false;
        let mut spent_nanos = None;
        if let Some(budget) = record.budget_nanos() {
            let spent = self.store.month_spend(&record.id, &month).await?.cost_nanos;
            if spent >= budget {
                if record.status == KeyStatus::Active {
                    self.set_status(record, KeyStatus::BudgetExceeded, Some(&month), &at)
                        .await;
                }
                let message = budget_message(budget, spent, today);
                return Ok((Verdict::Denied(Denial::NotPermitted(message)), Some(spent)));
            }
            near = near_budget(spent, budget);
            spent_nanos = Some(spent);
        }
        if record.status == KeyStatus::BudgetExceeded {
            self.set_status(record, KeyStatus::Active, None, &at).await;
        }
        let grant = KeyGrant {
            key_id: record.id.clone(),
            tier: record.settings.tier,
            requests_per_minute: record.settings.requests_per_minute,
            tokens_per_minute: record.settings.tokens_per_minute,
            cache_ttl: near.then_some(NEAR_BUDGET_FILTER_TTL),
        };
        Ok((Verdict::Allowed(grant), spent_nanos))
    }

    /// Move a key between `active` and `budget_exceeded`; the verdict stands even if this fails.
    async fn set_status(&self, record: &KeyRecord, to: KeyStatus, month: Option<&str>, at: &str) {
        match self
            .store
            .set_status(&record.id, to, Some(record.status), month, at)
            .await
        {
            Ok(true) => {
                tracing::info!(key_id = %record.id, status = to.as_str(), "key status changed by its budget")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(key_id = %record.id, error = %e, "cannot update the key status")
            }
        }
    }

    /// The allowed models and cache TTL preference of a key the gate let through (by the key id
    /// the gate forwards). `None`: no such key. The master key has no restrictions.
    pub async fn policy(&self, key_id: &str) -> Result<Option<KeyPolicy>, StoreError> {
        if key_id == MASTER_KEY_ID {
            return Ok(Some(KeyPolicy::default()));
        }
        let now = self.clock.now();
        let cached = self.cache.policy_of(key_id, now);
        crate::usage::catalog::auth_cache("policy", cached.is_some());
        if let Some(policy) = cached {
            return Ok(Some(policy));
        }
        let Some(record) = self.store.get_key(key_id).await? else {
            return Ok(None);
        };
        self.cache.put_record(&record, now);
        Ok(Some(record.policy()))
    }

    /// Forget cached verdicts for a key (after an operator changed it).
    pub fn invalidate_key(&self, key_id: &str) {
        self.cache.invalidate_key(key_id);
    }

    /// After usage costing `cost_nanos` was written for `key_id`: if a cached grant has a budget
    /// that is now spent, mark the key and drop the grant so the next check refuses it.
    ///
    /// The counter is re-read only once the spend this replica knows of (read at the check, plus
    /// the usage it wrote since) reaches 90 % of the budget: below that, its writes have not
    /// crossed the budget, and a read per write would cost a store call per request. Spend other
    /// replicas write shows at the next check, within the verdict cache's TTL.
    pub async fn after_usage(&self, key_id: &str, cost_nanos: u64) {
        let now = self.clock.now();
        let Some(watch) = self.cache.add_spend(key_id, cost_nanos, now) else {
            return;
        };
        let budget = watch.budget_nanos;
        if watch
            .spent_nanos
            .is_some_and(|spent| !near_budget(spent, budget))
        {
            return;
        }
        let month = Date::of(now).month_label();
        match self.store.month_spend(key_id, &month).await {
            Ok(spend) if spend.cost_nanos >= budget => {
                self.cache.invalidate_key(key_id);
                let at = rfc3339_millis(now);
                match self
                    .store
                    .set_status(
                        key_id,
                        KeyStatus::BudgetExceeded,
                        Some(KeyStatus::Active),
                        Some(&month),
                        &at,
                    )
                    .await
                {
                    Ok(true) => tracing::info!(%key_id, "key reached its monthly budget"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(%key_id, error = %e, "cannot mark the key budget_exceeded")
                    }
                }
            }
            // Near the budget: recompute at the next check, which grants with the short filter TTL.
            Ok(spend) if near_budget(spend.cost_nanos, budget) => self.cache.invalidate_key(key_id),
            Ok(spend) => self.cache.set_spend(key_id, spend.cost_nanos),
            Err(e) => tracing::warn!(%key_id, error = %e, "cannot read the key's monthly spend"),
        }
    }
}

#[tonic::async_trait]
impl KeyVerifier for Verifier {
    async fn verify(&self, presented_key: &str) -> Result<Verdict, VerifyError> {
        self.check(presented_key)
            .await
            .map_err(|e| VerifyError(e.to_string()))
    }
}
