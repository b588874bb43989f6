//! Typed settings of the key store, usage sink and admin API, parsed once from the same
//! replaceable source as the service `Config` (the environment, or a map in tests).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ConfigError, Source, bad, flag, number};
use crate::pricing::TierMultipliers;

/// Where the DynamoDB tables live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreMode {
    /// In-process dynoxide on loopback; SQLite file under the data directory.
    Embedded { data_dir: PathBuf },
    /// In-process dynoxide, in memory (tests, throwaway runs).
    Memory,
    /// Another DynamoDB-compatible endpoint (`AWS_ENDPOINT_URL_DYNAMODB`), or AWS itself (`None`).
    DynamoDb { endpoint: Option<String> },
}

#[derive(Debug, Clone)]
pub struct UsageSettings {
    /// Records waiting to be written; past this a record is logged and counted, never blocking.
    pub queue_capacity: usize,
    /// Writes in flight at once.
    pub concurrency: usize,
    /// Attempts per record before it is given up (logged in full, counted).
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Per-request items expire after this long (DynamoDB TTL on `expires_at`); `None` keeps them.
    pub retention: Option<Duration>,
    /// Records written in one transaction at most (capped at 33: three actions each at worst,
    /// 100 per transaction).
    pub batch_max_records: usize,
    /// How long a batch waits for more records after its first one before it is written.
    pub batch_linger: Duration,
}

impl Default for UsageSettings {
    fn default() -> Self {
        UsageSettings {
            queue_capacity: 100_000,
            concurrency: 8,
            max_attempts: 8,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            retention: None,
            batch_max_records: 25,
            batch_linger: Duration::from_millis(5),
        }
    }
}

#[derive(Debug, Clone)]
pub struct KeysConfig {
    pub mode: StoreMode,
    pub table_prefix: String,
    pub create_tables: bool,
    pub region: String,
    pub master_api_key: Option<String>,
    /// How long this service caches a verdict (the gate filter caches on top of it).
    pub cache_ttl: Duration,
    /// How often pricing and model-mapping overrides are re-read from the store.
    pub refresh_interval: Duration,
    pub tier_multipliers: TierMultipliers,
    pub usage: UsageSettings,
    /// The admin web portal (`ADMIN_*`): sessions, cookie, origins, sign-in rate.
    pub portal: crate::admin::portal::PortalConfig,
}

fn secs(
    src: &dyn Source,
    name: &'static str,
    default: f64,
    allow_zero: bool,
) -> Result<Duration, ConfigError> {
    let v: f64 = number(src, name, default)?;
    if !(v.is_finite() && (v > 0.0 || (allow_zero && v == 0.0)) && v < 1e9) {
        return Err(bad(name, "must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn positive(src: &dyn Source, name: &'static str, default: usize) -> Result<usize, ConfigError> {
    match number(src, name, default)? {
        0 => Err(bad(name, "must be at least 1")),
        v => Ok(v),
    }
}

impl KeysConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&crate::config::Env)
    }

    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let endpoint = src.get("AWS_ENDPOINT_URL_DYNAMODB");
        let mode = match (src.get("KEY_STORE").as_deref().map(str::trim), endpoint) {
            (None | Some("dynamodb"), Some(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(bad(
                        "AWS_ENDPOINT_URL_DYNAMODB",
                        format!("{url:?} is not an http(s) URL"),
                    ));
                }
                StoreMode::DynamoDb {
                    endpoint: Some(url),
                }
            }
            (Some("dynamodb"), None) => StoreMode::DynamoDb { endpoint: None },
            (None | Some("embedded"), None) => StoreMode::Embedded {
                data_dir: PathBuf::from(
                    src.get("GATEWAY_DATA_DIR")
                        .unwrap_or_else(|| ".gateway".into()),
                ),
            },
            (Some("memory"), None) => StoreMode::Memory,
            (Some(mode @ ("embedded" | "memory")), Some(_)) => {
                return Err(bad(
                    "KEY_STORE",
                    format!(
                        "{mode:?} conflicts with AWS_ENDPOINT_URL_DYNAMODB (unset one of them)"
                    ),
                ));
            }
            (Some(other), _) => {
                return Err(bad(
                    "KEY_STORE",
                    format!("{other:?}: expected embedded, memory or dynamodb"),
                ));
            }
        };
        let table_prefix = src
            .get("DYNAMODB_TABLE_PREFIX")
            .unwrap_or_else(|| "gateway_".into());
        if table_prefix.len() > 200
            || !table_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(bad(
                "DYNAMODB_TABLE_PREFIX",
                "only letters, digits, '_', '-' and '.' (at most 200 characters)",
            ));
        }
        let master_api_key = src.get("MASTER_API_KEY");
        if master_api_key
            .as_deref()
            .is_some_and(|k| k.trim().len() < 16)
        {
            return Err(bad("MASTER_API_KEY", "must be at least 16 characters"));
        }
        let tier_multipliers = match src.get("PRICING_TIER_MULTIPLIERS") {
            None => TierMultipliers::default(),
            Some(v) => {
                TierMultipliers::parse(&v).map_err(|e| bad("PRICING_TIER_MULTIPLIERS", e))?
            }
        };
        let retention_days: u32 = number(src, "USAGE_RETENTION_DAYS", 0)?;
        let defaults = UsageSettings::default();
        Ok(KeysConfig {
            mode,
            table_prefix,
            create_tables: flag(src, "DYNAMODB_CREATE_TABLES", true)?,
            region: src.get("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
            master_api_key,
            cache_ttl: secs(src, "KEYS_CACHE_TTL_SECS", 5.0, true)?,
            refresh_interval: secs(src, "STORE_REFRESH_SECS", 30.0, false)?,
            tier_multipliers,
            usage: UsageSettings {
                queue_capacity: positive(src, "USAGE_QUEUE_CAPACITY", defaults.queue_capacity)?,
                concurrency: positive(src, "USAGE_WRITE_CONCURRENCY", defaults.concurrency)?,
                max_attempts: positive(
                    src,
                    "USAGE_WRITE_MAX_ATTEMPTS",
                    defaults.max_attempts as usize,
                )? as u32,
                retention: (retention_days > 0)
                    .then(|| Duration::from_secs(u64::from(retention_days) * 86_400)),
                ..defaults
            },
            portal: crate::admin::portal::PortalConfig::from_source(src)?,
        })
    }

    /// An in-memory embedded store with a master key: what tests start.
    pub fn for_tests(master_api_key: &str) -> KeysConfig {
        KeysConfig {
            mode: StoreMode::Memory,
            table_prefix: "test_".into(),
            create_tables: true,
            region: "us-east-1".into(),
            master_api_key: Some(master_api_key.into()),
            cache_ttl: Duration::from_secs(5),
            refresh_interval: Duration::from_secs(30),
            tier_multipliers: TierMultipliers::default(),
            usage: UsageSettings {
                backoff_base: Duration::from_millis(5),
                ..UsageSettings::default()
            },
            portal: crate::admin::portal::PortalConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn defaults_to_the_embedded_store() {
        let config = KeysConfig::from_source(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(
            config.mode,
            StoreMode::Embedded {
                data_dir: ".gateway".into()
            }
        );
        assert_eq!(config.table_prefix, "gateway_");
        assert_eq!(config.cache_ttl, Duration::from_secs(5));
        assert!(config.usage.retention.is_none());
    }

    #[test]
    fn an_endpoint_selects_another_store() {
        let src = HashMap::from([("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000")]);
        let config = KeysConfig::from_source(&src).unwrap();
        assert_eq!(
            config.mode,
            StoreMode::DynamoDb {
                endpoint: Some("http://127.0.0.1:8000".into())
            }
        );
        let src = HashMap::from([("KEY_STORE", "dynamodb")]);
        assert_eq!(
            KeysConfig::from_source(&src).unwrap().mode,
            StoreMode::DynamoDb { endpoint: None }
        );
    }

    #[test]
    fn errors_name_the_variable() {
        for (name, value) in [
            ("KEY_STORE", "redis"),
            ("DYNAMODB_TABLE_PREFIX", "bad prefix"),
            ("KEYS_CACHE_TTL_SECS", "-1"),
            ("USAGE_WRITE_CONCURRENCY", "0"),
            ("PRICING_TIER_MULTIPLIERS", "flex=cheap"),
            ("MASTER_API_KEY", "short"),
            ("DYNAMODB_CREATE_TABLES", "maybe"),
        ] {
            let err = KeysConfig::from_source(&HashMap::from([(name, value)])).unwrap_err();
            assert_eq!(err.name, name, "{err}");
        }
        let both = HashMap::from([
            ("KEY_STORE", "memory"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1"),
        ]);
        assert_eq!(
            KeysConfig::from_source(&both).unwrap_err().name,
            "KEY_STORE"
        );
    }
}
