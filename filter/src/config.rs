//! Plugin configuration: the JSON in Envoy's `plugin_config.configuration`, every key optional.
//! Parsing only; unknown keys are rejected so a typo fails the Envoy config load loudly.

use serde::Deserialize;

/// Anthropic's request body limit (32 MiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Envoy cluster that serves `gateway.auth.v1.Auth` (HTTP/2).
    pub auth_cluster: String,
    /// Deadline of one `Auth/Check` call.
    pub auth_timeout_ms: u64,
    /// How long an allowed verdict is cached when the service does not say.
    pub cache_positive_ttl_ms: u64,
    /// How long a denied verdict is cached when the service does not say.
    pub cache_negative_ttl_ms: u64,
    /// Verdicts kept per worker; 0 disables the cache.
    pub cache_capacity: usize,
    /// Larger request bodies are answered 413 `request_too_large`.
    pub max_body_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            auth_cluster: "translator_grpc".to_owned(),
            auth_timeout_ms: 2_000,
            cache_positive_ttl_ms: 10_000,
            cache_negative_ttl_ms: 2_000,
            cache_capacity: 10_000,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl Config {
    /// Parses the plugin configuration; empty or whitespace-only input means all defaults.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let config: Self =
            serde_json::from_slice(bytes).map_err(|e| format!("gate plugin configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.auth_cluster.trim().is_empty() {
            return Err("gate plugin configuration: auth_cluster must not be empty".to_owned());
        }
        if self.auth_timeout_ms == 0 {
            return Err("gate plugin configuration: auth_timeout_ms must be > 0".to_owned());
        }
        if self.max_body_bytes == 0 {
            return Err("gate plugin configuration: max_body_bytes must be > 0".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_defaults() {
        assert_eq!(Config::parse(b"").unwrap(), Config::default());
        assert_eq!(Config::parse(b" \n").unwrap(), Config::default());
        assert_eq!(Config::parse(b"{}").unwrap(), Config::default());
        let d = Config::default();
        assert_eq!(d.auth_cluster, "translator_grpc");
        assert_eq!(d.cache_positive_ttl_ms, 10_000);
        assert_eq!(d.cache_negative_ttl_ms, 2_000);
        assert_eq!(d.max_body_bytes, 33_554_432);
    }

    #[test]
    fn every_key_is_read() {
        let c = Config::parse(
            br#"{"auth_cluster":"auth","auth_timeout_ms":500,"cache_positive_ttl_ms":1,
                 "cache_negative_ttl_ms":2,"cache_capacity":3,"max_body_bytes":4}"#,
        )
        .unwrap();
        assert_eq!(
            c,
            Config {
                auth_cluster: "auth".into(),
                auth_timeout_ms: 500,
                cache_positive_ttl_ms: 1,
                cache_negative_ttl_ms: 2,
                cache_capacity: 3,
                max_body_bytes: 4,
            }
        );
    }

    #[test]
    fn bad_input_is_rejected_with_a_reason() {
        assert!(
            Config::parse(b"{\"auth_clster\":\"x\"}")
                .unwrap_err()
                .contains("auth_clster")
        );
        assert!(Config::parse(b"[1]").is_err());
        assert!(Config::parse(b"{\"auth_cluster\":\"\"}").is_err());
        assert!(Config::parse(b"{\"auth_timeout_ms\":0}").is_err());
        assert!(Config::parse(b"{\"max_body_bytes\":0}").is_err());
        assert!(Config::parse(b"{\"cache_capacity\":-1}").is_err());
    }
}
