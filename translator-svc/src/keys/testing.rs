//! Test helpers shared by the key, usage and admin tests: an in-memory embedded store on a
//! manual clock, usage records, and a raw scan of any table.

use std::sync::Arc;
use std::time::Duration;

use super::clock::{Date, ManualClock};
use super::item::Item;
use super::record::KeySettings;
use super::{Dynamo, KeyRecord, KeysConfig, Wired, lifecycle, wire_with_clock};
use crate::convert::response::TokenUsage;
use crate::usage::{Outcome, UsageRecord};

pub const MASTER: &str = "sk-gw-test-master-key-0123456789";

pub struct Harness {
    pub wired: Wired,
    pub clock: Arc<ManualClock>,
}

/// A fresh in-memory store whose clock stands at 2026-11-25 12:00 UTC.
pub async fn harness() -> Harness {
    harness_with(KeysConfig::for_tests(MASTER)).await
}

/// `KEYS_TEST_DYNAMODB_ENDPOINT` (e.g. a local `moto_server`) runs the same tests against
/// another DynamoDB implementation, each test on its own table prefix.
pub async fn harness_with(mut config: KeysConfig) -> Harness {
    if let Ok(endpoint) = std::env::var("KEYS_TEST_DYNAMODB_ENDPOINT") {
        config.mode = super::config::StoreMode::DynamoDb {
            endpoint: Some(endpoint),
        };
        config.table_prefix = unique_prefix("t");
        if let Ok(n) = std::env::var("KEYS_TEST_USAGE_CONCURRENCY") {
            config.usage.concurrency = n.parse().expect("KEYS_TEST_USAGE_CONCURRENCY");
        }
    }
    let clock = Arc::new(ManualClock::at(Date::new(2026, 11, 25).expect("date")));
    clock.advance(Duration::from_secs(12 * 3600));
    let wired = wire_with_clock(&config, clock.clone())
        .await
        .expect("wire the key store");
    Harness { wired, clock }
}

impl Harness {
    pub async fn create_key(&self, settings: KeySettings) -> (KeyRecord, String) {
        lifecycle::create_key(self.wired.store.as_ref(), settings, self.clock_now())
            .await
            .expect("create key")
    }

    pub fn clock_now(&self) -> std::time::SystemTime {
        use super::clock::Clock;
        self.clock.now()
    }
}

/// A table prefix no other test (or earlier run against the same server) uses.
pub fn unique_prefix(stem: &str) -> String {
    format!(
        "{stem}{}_",
        super::secret::generate_key_id().trim_start_matches("key_")
    )
}

pub fn settings(name: &str) -> KeySettings {
    KeySettings {
        name: name.into(),
        requests_per_minute: 60,
        tokens_per_minute: 100_000,
        ..KeySettings::default()
    }
}

/// A Sonnet 4.5 request: $3/MTok input, $15/MTok output at the default tier.
pub fn usage_record(
    key_id: &str,
    request_id: &str,
    input: u64,
    output: u64,
    outcome: Outcome,
) -> UsageRecord {
    UsageRecord {
        request_id: request_id.into(),
        key_id: Some(key_id.into()),
        requested_model: "claude-sonnet-4-5".into(),
        resolved_model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
        api: "invoke",
        tier: None,
        stream: true,
        usage: TokenUsage {
            input_tokens: input,
            output_tokens: output,
            cache_read_input_tokens: 0,
            cache_creation_input_tokens: 0,
        },
        cache_write_1h_tokens: 0,
        latency: Duration::from_millis(120),
        time_to_first_token: Some(Duration::from_millis(40)),
        outcome,
        ptc: None,
    }
}

/// Every item of a table.
pub async fn scan(dynamo: &Dynamo, table: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = dynamo
            .client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        items.extend(out.items().iter().cloned());
        match out.last_evaluated_key {
            Some(next) if !next.is_empty() => start = Some(next),
            _ => return items,
        }
    }
}
