use std::sync::atomic::AtomicBool;

use super::*;
use crate::limiter::ManualClock;
use crate::store::{MemoryStore, StoreFuture};

/// A store that fails while `down` is set and otherwise delegates to memory.
#[derive(Default)]
struct FlakyStore {
    down: AtomicBool,
    memory: MemoryStore,
}

impl CounterStore for FlakyStore {
    fn apply<'a>(&'a self, now_ms: u64, ops: &'a [(String, Op)]) -> StoreFuture<'a> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::Redis("connection refused".to_owned())) });
        }
        self.memory.apply(now_ms, ops)
    }

    fn kind(&self) -> &'static str {
        "flaky"
    }
}

struct Fixture {
    checker: Checker,
    clock: ManualClock,
    metrics: Arc<Metrics>,
}

fn fixture_with(store: Arc<dyn CounterStore>, mode: FailureMode, rules: Rules) -> Fixture {
    let clock = ManualClock::new(1_767_225_600_000);
    let metrics = Arc::new(Metrics::new());
    let checker = Checker::new(rules, store, Arc::new(clock.clone()), mode, metrics.clone());
    Fixture {
        checker,
        clock,
        metrics,
    }
}

fn fixture() -> Fixture {
    fixture_with(
        Arc::new(MemoryStore::new()),
        FailureMode::Open,
        Rules::empty(),
    )
}

fn descriptor<'a>(entries: &[(&'a str, &'a str)], hits: Option<u64>) -> DescriptorIn<'a> {
    DescriptorIn {
        entries: entries.to_vec(),
        limit_override: None,
        hits_addend: hits,
        negative: false,
    }
}

fn request<'a>(descriptors: Vec<DescriptorIn<'a>>) -> CheckIn<'a> {
    CheckIn {
        domain: "gateway",
        descriptors,
        hits_addend: 0,
        log_request_id: None,
    }
}

/// What Envoy sends before routing: rpm with the default hit, tpm as a probe (hits 0).
fn admission<'a>(key: &'a str, rpm: &'a str, tpm: &'a str) -> CheckIn<'a> {
    request(vec![
        descriptor(&[("key_id", key), ("rpm", rpm)], None),
        descriptor(&[("key_id", key), ("tpm", tpm)], Some(0)),
    ])
}

/// What Envoy sends when the stream is done: the real token count.
fn charge<'a>(key: &'a str, tpm: &'a str, tokens: u64) -> CheckIn<'a> {
    request(vec![descriptor(
        &[("key_id", key), ("tpm", tpm)],
        Some(tokens),
    )])
}

fn header<'a>(decision: &'a Decision, name: &str) -> Option<&'a str> {
    decision
        .response_headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn the_51st_request_in_a_minute_is_refused_with_an_anthropic_429() {
    let f = fixture();
    for i in 0..50 {
        let decision = f.checker.check(&admission("k1", "50", "0")).await;
        assert!(!decision.over_limit, "request {} refused", i + 1);
        assert_eq!(
            header(&decision, "anthropic-ratelimit-requests-remaining"),
            Some((49 - i).to_string().as_str())
        );
    }
    let refused = f.checker.check(&admission("k1", "50", "0")).await;
    assert!(refused.over_limit);
    assert!(refused.statuses[0].over_limit);
    assert!(!refused.statuses[1].over_limit, "tpm 0 is unlimited");
    assert_eq!(header(&refused, "retry-after"), Some("2"));
    assert_eq!(
        header(&refused, "anthropic-ratelimit-requests-limit"),
        Some("50")
    );
    assert_eq!(header(&refused, "anthropic-ratelimit-tokens-limit"), None);
    let body: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(
        Some(body["request_id"].as_str().unwrap()),
        header(&refused, "request-id")
    );
    // Another key is unaffected.
    assert!(
        !f.checker
            .check(&admission("k2", "50", "0"))
            .await
            .over_limit
    );
    // 1.2 s later one request fits again.
    f.clock.advance_ms(1_200);
    assert!(
        !f.checker
            .check(&admission("k1", "50", "0"))
            .await
            .over_limit
    );
}

#[tokio::test]
async fn tokens_are_charged_after_the_fact_and_refuse_the_next_request() {
    let f = fixture();
    let first = f.checker.check(&admission("k1", "0", "1000")).await;
    assert!(!first.over_limit);
    assert_eq!(
        header(&first, "anthropic-ratelimit-tokens-remaining"),
        Some("1000")
    );
    // Stream done: 1500 tokens, more than the budget. The charge itself always lands.
    let charged = f.checker.check(&charge("k1", "1000", 1_500)).await;
    assert!(!charged.over_limit);
    let next = f.checker.check(&admission("k1", "0", "1000")).await;
    assert!(next.over_limit);
    assert!(next.statuses[1].over_limit);
    assert_eq!(
        header(&next, "anthropic-ratelimit-tokens-remaining"),
        Some("0")
    );
    assert_eq!(header(&next, "retry-after"), Some("31"));
    assert!(next.body.contains("tokens per minute"), "{}", next.body);
    // Refused for tokens, so no request unit was consumed either (rpm unlimited here anyway).
    f.clock.advance_ms(30_060);
    assert!(
        !f.checker
            .check(&admission("k1", "0", "1000"))
            .await
            .over_limit
    );
}

#[tokio::test]
async fn hits_addend_zero_at_request_level_means_one_and_descriptor_hits_override() {
    let f = fixture();
    let mut heavy = request(vec![descriptor(&[("key_id", "k"), ("rpm", "10")], None)]);
    heavy.hits_addend = 4;
    let decision = f.checker.check(&heavy).await;
    assert_eq!(decision.statuses[0].remaining, 6);
    let default_hit = request(vec![descriptor(&[("key_id", "k"), ("rpm", "10")], None)]);
    assert_eq!(f.checker.check(&default_hit).await.statuses[0].remaining, 5);
    let overridden = request(vec![descriptor(&[("key_id", "k"), ("rpm", "10")], Some(5))]);
    assert_eq!(f.checker.check(&overridden).await.statuses[0].remaining, 0);
}

#[tokio::test]
async fn negative_hits_refund_units() {
    let f = fixture();
    let take = request(vec![descriptor(&[("key_id", "k"), ("rpm", "10")], Some(6))]);
    f.checker.check(&take).await;
    let mut give = request(vec![descriptor(&[("key_id", "k"), ("rpm", "10")], Some(2))]);
    give.descriptors[0].negative = true;
    assert_eq!(f.checker.check(&give).await.statuses[0].remaining, 6);
}

#[tokio::test]
async fn a_request_id_descriptor_names_the_429_and_is_not_a_limit() {
    let f = fixture();
    let mut over = request(vec![
        descriptor(
            &[
                ("route", "messages"),
                ("request_id", "req_fromthefilter00000000"),
            ],
            None,
        ),
        descriptor(&[("key_id", "k"), ("rpm", "1")], Some(2)),
    ]);
    over.hits_addend = 1;
    let decision = f.checker.check(&over).await;
    assert!(decision.over_limit);
    assert_eq!(decision.statuses.len(), 2);
    assert!(!decision.statuses[0].over_limit);
    assert_eq!(
        header(&decision, "request-id"),
        Some("req_fromthefilter00000000")
    );
    assert!(decision.body.contains("req_fromthefilter00000000"));
}

#[tokio::test]
async fn descriptors_without_a_limit_are_admitted_without_headers() {
    let f = fixture();
    let decision = f
        .checker
        .check(&request(vec![
            descriptor(&[("key_id", "k")], None),
            descriptor(&[("key_id", "k"), ("rpm", "0")], None),
            descriptor(&[("key_id", "k"), ("tpm", "garbage")], None),
        ]))
        .await;
    assert!(!decision.over_limit);
    assert!(decision.response_headers.is_empty());
    assert_eq!(decision.statuses.len(), 3);
    let text = f.metrics.render();
    assert!(text.contains(r#"result="invalid""#), "{text}");
}

#[tokio::test]
async fn yaml_rules_apply_with_their_names() {
    let rules = Rules::from_yaml(
        "domain: gateway\ndescriptors:\n- {key: tier, value: free, rate_limit: {name: free-tier, unit: second, requests_per_unit: 1}}\n",
    )
    .unwrap();
    let f = fixture_with(Arc::new(MemoryStore::new()), FailureMode::Open, rules);
    let tier = || request(vec![descriptor(&[("tier", "free")], None)]);
    assert!(!f.checker.check(&tier()).await.over_limit);
    let refused = f.checker.check(&tier()).await;
    assert!(refused.over_limit);
    assert!(refused.body.contains("free-tier"), "{}", refused.body);
    assert_eq!(
        refused.statuses[0]
            .limit
            .as_ref()
            .unwrap()
            .requests_per_unit,
        1
    );
}

#[tokio::test]
async fn store_down_fails_open_by_default_and_recovers() {
    let store = Arc::new(FlakyStore::default());
    let f = fixture_with(store.clone(), FailureMode::Open, Rules::empty());
    store.down.store(true, Ordering::SeqCst);
    let decision = f.checker.check(&admission("k", "1", "0")).await;
    assert!(!decision.over_limit);
    assert!(!f.checker.store_healthy());
    assert!(
        f.metrics
            .render()
            .contains("ratelimit_store_errors_total 1")
    );
    store.down.store(false, Ordering::SeqCst);
    assert!(!f.checker.check(&admission("k", "1", "0")).await.over_limit);
    assert!(f.checker.store_healthy());
    assert!(f.checker.check(&admission("k", "1", "0")).await.over_limit);
}

#[tokio::test]
async fn store_down_fails_closed_when_configured() {
    let store = Arc::new(FlakyStore::default());
    let f = fixture_with(store.clone(), FailureMode::Closed, Rules::empty());
    store.down.store(true, Ordering::SeqCst);
    let decision = f.checker.check(&admission("k", "100", "0")).await;
    assert!(decision.over_limit);
    assert_eq!(header(&decision, "retry-after"), Some("1"));
    assert!(decision.body.contains("rate_limit_error"));
    // Without a limited descriptor there is nothing to check, so nothing to refuse.
    let free = request(vec![descriptor(&[("key_id", "k")], None)]);
    assert!(!f.checker.check(&free).await.over_limit);
    store.down.store(false, Ordering::SeqCst);
    assert!(
        !f.checker
            .check(&admission("k", "100", "0"))
            .await
            .over_limit
    );
}
