//! Key lifecycle, hashing at rest, verification, budgets and `Auth/Check` over gRPC, against the
//! embedded store (or `KEYS_TEST_DYNAMODB_ENDPOINT`) on a manual clock.

use std::sync::Arc;
use std::time::Duration;

use super::clock::{Clock, Date};
use super::item::StoreError;
use super::record::{KeyRecord, KeySettings, KeyStatus, Tier};
use super::store::{KeyStore, MonthSpend};
use super::testing::{MASTER, harness, scan, settings, usage_record};
use super::{KeysConfig, Verifier, lifecycle};
use crate::auth::{Denial, KeyVerifier, Verdict};
use crate::usage::{Outcome, UsageSink};

fn allowed_id(verdict: &Verdict) -> &str {
    match verdict {
        Verdict::Allowed(grant) => &grant.key_id,
        Verdict::Denied(denial) => panic!("expected allowed, got {denial:?}"),
    }
}

fn denial(verdict: Verdict) -> Denial {
    match verdict {
        Verdict::Denied(denial) => denial,
        Verdict::Allowed(grant) => panic!("expected a denial, got {grant:?}"),
    }
}

#[tokio::test]
async fn key_lifecycle_against_the_embedded_store() {
    let h = harness().await;
    let (store, verifier) = (h.wired.store.clone(), h.wired.verifier.clone());
    let mut s = settings("ci");
    s.tier = Tier::Flex;
    let (record, secret) = h.create_key(s).await;

    let Verdict::Allowed(grant) = verifier.verify(&secret).await.unwrap() else {
        panic!("refused")
    };
    assert_eq!(grant.key_id, record.id);
    assert_eq!(grant.tier, crate::auth::Tier::Flex);
    assert_eq!(
        (grant.requests_per_minute, grant.tokens_per_minute),
        (60, 100_000)
    );
    // (`last_used_at` is written in the background, so compare the rest.)
    let listed = store.list_keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (&listed[0].id, &listed[0].settings, &listed[0].key_hash),
        (&record.id, &record.settings, &record.key_hash)
    );

    // Disabled: refused once this replica's cache is dropped (the admin API does that).
    assert!(
        store
            .set_status(&record.id, KeyStatus::Disabled, None, None, "t")
            .await
            .unwrap()
    );
    verifier.invalidate_key(&record.id);
    assert_eq!(
        denial(verifier.verify(&secret).await.unwrap()),
        Denial::InvalidKey
    );
    store
        .set_status(&record.id, KeyStatus::Active, None, None, "t")
        .await
        .unwrap();
    verifier.invalidate_key(&record.id);
    assert_eq!(
        allowed_id(&verifier.verify(&secret).await.unwrap()),
        record.id
    );

    // Rotated: the old secret stops, the new one works under the same id.
    let new_secret = lifecycle::rotate_key(store.as_ref(), &record, h.clock_now())
        .await
        .unwrap();
    verifier.invalidate_key(&record.id);
    assert_eq!(
        denial(verifier.verify(&secret).await.unwrap()),
        Denial::InvalidKey
    );
    assert_eq!(
        allowed_id(&verifier.verify(&new_secret).await.unwrap()),
        record.id
    );
    let rotated = store.get_key(&record.id).await.unwrap().unwrap();
    assert_ne!(rotated.key_hash, record.key_hash);
    assert!(new_secret.starts_with(&rotated.key_prefix));

    // Deleted: gone from the store and refused.
    store.delete_key(&record.id).await.unwrap();
    verifier.invalidate_key(&record.id);
    assert_eq!(
        denial(verifier.verify(&new_secret).await.unwrap()),
        Denial::InvalidKey
    );
    assert!(store.get_key(&record.id).await.unwrap().is_none());
    assert!(store.list_keys().await.unwrap().is_empty());
    assert!(matches!(
        store.delete_key(&record.id).await,
        Err(super::StoreError::NotFound)
    ));
    assert!(
        scan(&h.wired.dynamo, &h.wired.dynamo.tables.keys)
            .await
            .is_empty(),
        "no pointer left behind"
    );
}

#[tokio::test]
async fn last_use_is_recorded() {
    let h = harness().await;
    let (record, secret) = h.create_key(settings("touch")).await;
    h.wired.verifier.verify(&secret).await.unwrap();
    for _ in 0..100 {
        if let Some(used) = h
            .wired
            .store
            .get_key(&record.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
        {
            assert_eq!(used, "2026-11-25T12:00:00.000Z");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("last_used_at was never written");
}

#[tokio::test]
async fn no_plaintext_key_anywhere_in_the_tables() {
    let h = harness().await;
    let mut secrets = Vec::new();
    for i in 0..5 {
        let (record, secret) = h.create_key(settings(&format!("k{i}"))).await;
        h.wired.verifier.verify(&secret).await.unwrap();
        secrets.push(secret);
        let rotated = lifecycle::rotate_key(h.wired.store.as_ref(), &record, h.clock_now())
            .await
            .unwrap();
        h.wired.verifier.verify(&rotated).await.unwrap();
        secrets.push(rotated);
    }
    let dynamo = &h.wired.dynamo;
    let mut values = Vec::new();
    for table in [
        &dynamo.tables.keys,
        &dynamo.tables.usage,
        &dynamo.tables.pricing,
        &dynamo.tables.models,
    ] {
        for item in scan(dynamo, table).await {
            for (name, value) in item {
                values.push(format!("{name}={value:?}"));
            }
        }
    }
    assert!(values.len() > 50, "the scan saw the items");
    for secret in &secrets {
        // Past the 10-character display prefix nothing of the key may appear.
        let hidden = &secret[10..];
        for value in &values {
            assert!(!value.contains(hidden), "secret material stored: {value}");
            assert!(
                !value.contains(&hidden[..12]),
                "part of a secret stored: {value}"
            );
        }
    }
    assert!(values.iter().any(|v| v.starts_with("key_hash=")));
}

#[tokio::test]
async fn the_master_key_always_works_and_junk_is_refused() {
    let h = harness().await;
    let verifier = &h.wired.verifier;
    assert_eq!(
        allowed_id(&verifier.verify(MASTER).await.unwrap()),
        "master"
    );
    for junk in [
        "",
        "sk-ant-api03-xyz",
        "sk-gw-short",
        &format!("sk-gw-{}", "a".repeat(43)),
    ] {
        assert_eq!(
            denial(verifier.verify(junk).await.unwrap()),
            Denial::InvalidKey,
            "{junk}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_store_is_an_error_not_a_denial() {
    let dead = super::dynamo::local_client("us-east-1", "http://127.0.0.1:1");
    let dynamo = super::Dynamo {
        client: dead,
        tables: super::tables::TableNames::with_prefix("x_"),
    };
    let clock = Arc::new(super::clock::ManualClock::at(
        Date::new(2026, 1, 1).unwrap(),
    ));
    let verifier = Verifier::new(
        Arc::new(dynamo),
        clock,
        Some(MASTER.into()),
        Duration::from_secs(5),
    );
    assert!(
        verifier
            .verify(&super::secret::generate_key())
            .await
            .is_err()
    );
    assert_eq!(
        allowed_id(&verifier.verify(MASTER).await.unwrap()),
        "master"
    );

    let mut config = KeysConfig::for_tests(MASTER);
    config.mode = super::config::StoreMode::DynamoDb {
        endpoint: Some("http://127.0.0.1:1".into()),
    };
    let err = super::wire(&config)
        .await
        .err()
        .expect("wire fails")
        .to_string();
    assert!(err.contains("DynamoDB"), "{err}");
}

fn budget(usd: f64) -> KeySettings {
    KeySettings {
        monthly_budget_usd: Some(usd),
        ..settings("budgeted")
    }
}

#[tokio::test]
async fn a_budget_crossing_refuses_the_next_check_and_marks_the_key() {
    let h = harness().await;
    let (record, secret) = h.create_key(budget(1.0)).await;
    let verifier = &h.wired.verifier;
    assert_eq!(
        allowed_id(&verifier.verify(&secret).await.unwrap()),
        record.id
    );

    // 40k output tokens at $15/MTok = $0.60: still under.
    h.wired
        .usage_sink
        .record(usage_record(&record.id, "req_1", 0, 40_000, Outcome::Ok));
    h.wired.usage_sink.flush().await;
    let Verdict::Allowed(grant) = verifier.verify(&secret).await.unwrap() else {
        panic!("refused under budget")
    };
    assert_eq!(grant.cache_ttl, None);

    // Another $0.60 crosses $1.00; the sink's spend watch drops the cached grant.
    h.wired
        .usage_sink
        .record(usage_record(&record.id, "req_2", 0, 40_000, Outcome::Ok));
    h.wired.usage_sink.flush().await;
    let Denial::NotPermitted(message) = denial(verifier.verify(&secret).await.unwrap()) else {
        panic!("not a 403")
    };
    assert!(message.contains("monthly budget of $1.00"), "{message}");
    assert!(message.contains("$1.20 spent in 2026-11"), "{message}");
    assert!(message.contains("resets on 2026-12-01"), "{message}");
    let marked = h.wired.store.get_key(&record.id).await.unwrap().unwrap();
    assert_eq!(marked.status, KeyStatus::BudgetExceeded);
    assert_eq!(marked.budget_exceeded_month.as_deref(), Some("2026-11"));

    // Raising the budget lets it through again and clears the mark.
    let mut raised = marked.settings.clone();
    raised.monthly_budget_usd = Some(5.0);
    h.wired
        .store
        .update_settings(&record.id, &raised, "t")
        .await
        .unwrap();
    verifier.invalidate_key(&record.id);
    assert_eq!(
        allowed_id(&verifier.verify(&secret).await.unwrap()),
        record.id
    );
    let lifted = h.wired.store.get_key(&record.id).await.unwrap().unwrap();
    assert_eq!(
        (lifted.status, lifted.budget_exceeded_month),
        (KeyStatus::Active, None)
    );
}

#[tokio::test]
async fn the_month_rollover_lifts_the_budget_block() {
    let h = harness().await;
    let (record, secret) = h.create_key(budget(0.5)).await;
    h.wired
        .usage_sink
        .record(usage_record(&record.id, "req_1", 0, 40_000, Outcome::Ok));
    h.wired.usage_sink.flush().await;
    // No grant was cached, so the check itself reads the spend and marks the key.
    assert!(matches!(
        denial(h.wired.verifier.verify(&secret).await.unwrap()),
        Denial::NotPermitted(_)
    ));
    assert_eq!(
        h.wired
            .store
            .get_key(&record.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        KeyStatus::BudgetExceeded
    );

    // Within the month the block holds even after the cache expires.
    h.clock.advance(Duration::from_secs(60));
    assert!(matches!(
        denial(h.wired.verifier.verify(&secret).await.unwrap()),
        Denial::NotPermitted(_)
    ));

    h.clock.set(Date::new(2026, 12, 1).unwrap().start());
    assert_eq!(
        allowed_id(&h.wired.verifier.verify(&secret).await.unwrap()),
        record.id
    );
    assert_eq!(
        h.wired
            .store
            .get_key(&record.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        KeyStatus::Active
    );
    assert_eq!(Date::of(h.clock.now()).month_label(), "2026-12");
}

#[tokio::test]
async fn a_key_near_its_budget_gets_a_short_filter_ttl() {
    let h = harness().await;
    let (record, secret) = h.create_key(budget(0.5)).await;
    let grant = |verdict: Verdict| match verdict {
        Verdict::Allowed(grant) => grant,
        Verdict::Denied(denial) => panic!("refused: {denial:?}"),
    };
    // Granted (and cached) with the filter's default TTL while far from the budget.
    assert_eq!(
        grant(h.wired.verifier.verify(&secret).await.unwrap()).cache_ttl,
        None
    );
    // $0.48 of $0.50: the spend watch drops the cached grant, the next one is short-lived.
    h.wired
        .usage_sink
        .record(usage_record(&record.id, "req_1", 0, 32_000, Outcome::Ok));
    h.wired.usage_sink.flush().await;
    let near = grant(h.wired.verifier.verify(&secret).await.unwrap());
    assert_eq!(near.cache_ttl, Some(Duration::from_secs(1)));
}

#[tokio::test]
async fn the_relay_can_look_up_allowed_models_and_cache_ttl() {
    let h = harness().await;
    let mut s = settings("narrow");
    s.allowed_models = Some(vec!["claude-haiku-4-5".into()]);
    s.cache_ttl = Some(super::record::CacheTtl::OneHour);
    let (record, secret) = h.create_key(s).await;
    let verifier = &h.wired.verifier;
    verifier.verify(&secret).await.unwrap();
    let policy = verifier.policy(&record.id).await.unwrap().unwrap();
    assert!(policy.allows_model("claude-haiku-4-5"));
    assert!(!policy.allows_model("claude-opus-4-5"));
    assert_eq!(policy.cache_ttl, Some(super::record::CacheTtl::OneHour));
    assert_eq!(
        verifier.policy("master").await.unwrap(),
        Some(Default::default())
    );
    assert_eq!(verifier.policy("key_unknown").await.unwrap(), None);

    let mut wider = record.settings.clone();
    wider.allowed_models = None;
    h.wired
        .store
        .update_settings(&record.id, &wider, "t")
        .await
        .unwrap();
    verifier.invalidate_key(&record.id);
    assert!(
        verifier
            .policy(&record.id)
            .await
            .unwrap()
            .unwrap()
            .allows_model("claude-opus-4-5")
    );
}

/// `Auth/Check` over real gRPC with the store behind it: what the gate filter sees.
#[tokio::test]
async fn auth_check_over_grpc_answers_from_the_store() {
    use gateway_proto::auth::v1::CheckRequest;
    use gateway_proto::auth::v1::auth_client::AuthClient;

    let h = harness().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let verifier: Arc<dyn KeyVerifier> = h.wired.verifier.clone();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(crate::auth::auth_service(verifier))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut client = AuthClient::connect(format!("http://{addr}")).await.unwrap();
    let mut check = async |key: &str| {
        let request = CheckRequest {
            api_key: key.into(),
            path: "/v1/messages".into(),
            ..Default::default()
        };
        client.check(request).await.unwrap().into_inner()
    };

    let mut s = budget(0.5);
    s.tier = Tier::Priority;
    let (record, secret) = h.create_key(s).await;
    let allowed = check(&secret).await;
    assert!(allowed.allowed);
    assert_eq!(
        (allowed.key_id.as_str(), allowed.tier.as_str()),
        (record.id.as_str(), "priority")
    );
    assert_eq!(
        (allowed.requests_per_minute, allowed.tokens_per_minute),
        (60, 100_000)
    );

    let unknown = check(&super::secret::generate_key()).await;
    assert_eq!(
        (unknown.allowed, unknown.status, unknown.error_type.as_str()),
        (false, 401, "authentication_error")
    );
    assert_eq!(unknown.message, "invalid API key");

    h.wired
        .usage_sink
        .record(usage_record(&record.id, "req_1", 0, 40_000, Outcome::Ok));
    h.wired.usage_sink.flush().await;
    let over = check(&secret).await;
    assert_eq!(
        (over.allowed, over.status, over.error_type.as_str()),
        (false, 403, "permission_error")
    );
    assert!(
        over.message.contains("monthly budget of $0.50"),
        "{}",
        over.message
    );

    assert!(check(MASTER).await.allowed);
}

/// The real store, counting how often the monthly spend is read.
struct SpendReads {
    inner: Arc<dyn KeyStore>,
    reads: std::sync::atomic::AtomicU64,
}

impl SpendReads {
    fn count(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[tonic::async_trait]
impl KeyStore for SpendReads {
    async fn create_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
        self.inner.create_key(record).await
    }
    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.get_key(id).await
    }
    async fn find_by_hash(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.find_by_hash(hash).await
    }
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.inner.list_keys().await
    }
    async fn update_settings(
        &self,
        id: &str,
        settings: &KeySettings,
        now: &str,
    ) -> Result<(), StoreError> {
        self.inner.update_settings(id, settings, now).await
    }
    async fn set_status(
        &self,
        id: &str,
        status: KeyStatus,
        expected: Option<KeyStatus>,
        exceeded_month: Option<&str>,
        now: &str,
    ) -> Result<bool, StoreError> {
        self.inner
            .set_status(id, status, expected, exceeded_month, now)
            .await
    }
    async fn rotate_key(
        &self,
        record: &KeyRecord,
        new_hash: &str,
        new_prefix: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        self.inner
            .rotate_key(record, new_hash, new_prefix, now)
            .await
    }
    async fn delete_key(&self, id: &str) -> Result<(), StoreError> {
        self.inner.delete_key(id).await
    }
    async fn touch(&self, id: &str, now: &str) -> Result<(), StoreError> {
        self.inner.touch(id, now).await
    }
    async fn month_spend(&self, id: &str, month: &str) -> Result<MonthSpend, StoreError> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.month_spend(id, month).await
    }
}

/// The spend watch reads the counter only once the key is near its budget: far from it, usage
/// writes cost no read; the crossing still refuses the next check and marks the key.
#[tokio::test]
async fn the_spend_watch_reads_the_counter_only_near_the_budget() {
    let h = harness().await;
    let (record, secret) = h.create_key(budget(1.0)).await;
    let store = Arc::new(SpendReads {
        inner: h.wired.store.clone(),
        reads: Default::default(),
    });
    let verifier = Arc::new(Verifier::new(
        store.clone(),
        h.clock.clone(),
        None,
        Duration::from_secs(5),
    ));
    let sink = crate::usage::dynamo::DynamoUsageSink::spawn(
        h.wired.dynamo.clone(),
        h.wired.prices.clone(),
        Some(verifier.clone()),
        h.clock.clone(),
        KeysConfig::for_tests(MASTER).usage,
    );
    assert_eq!(
        allowed_id(&verifier.verify(&secret).await.unwrap()),
        record.id
    );
    assert_eq!(store.count(), 1);

    // $0.30 + $0.30 + $0.15: 75 % of the budget, no read.
    for (id, output) in [("req_1", 20_000), ("req_2", 20_000), ("req_3", 10_000)] {
        sink.record(usage_record(&record.id, id, 0, output, Outcome::Ok));
        sink.flush().await;
    }
    assert_eq!(store.count(), 1);
    assert!(matches!(
        verifier.verify(&secret).await.unwrap(),
        Verdict::Allowed(_)
    ));

    // Another $0.30 ($1.05 in all) crosses it: read, marked, refused at the next check.
    sink.record(usage_record(&record.id, "req_4", 0, 20_000, Outcome::Ok));
    sink.flush().await;
    assert_eq!(store.count(), 2);
    let Denial::NotPermitted(message) = denial(verifier.verify(&secret).await.unwrap()) else {
        panic!("not a 403")
    };
    assert!(message.contains("$1.05 spent in 2026-11"), "{message}");
    let marked = h.wired.store.get_key(&record.id).await.unwrap().unwrap();
    assert_eq!(marked.status, KeyStatus::BudgetExceeded);
}

/// Spend the watch did not see (another replica's) shows at the next check after the verdict
/// expires, which then re-reads the counter.
#[tokio::test]
async fn spend_from_elsewhere_is_seen_at_the_next_check() {
    let h = harness().await;
    let (record, secret) = h.create_key(budget(0.5)).await;
    let verifier = &h.wired.verifier;
    assert!(matches!(
        verifier.verify(&secret).await.unwrap(),
        Verdict::Allowed(_)
    ));
    // Written by another sink (another replica): this verifier's watch knows nothing of it.
    let other = crate::usage::dynamo::DynamoUsageSink::spawn(
        h.wired.dynamo.clone(),
        h.wired.prices.clone(),
        None,
        h.clock.clone(),
        KeysConfig::for_tests(MASTER).usage,
    );
    other.record(usage_record(&record.id, "req_far", 0, 40_000, Outcome::Ok));
    other.flush().await;
    h.clock.advance(Duration::from_secs(6));
    assert!(matches!(
        denial(verifier.verify(&secret).await.unwrap()),
        Denial::NotPermitted(_)
    ));
}
