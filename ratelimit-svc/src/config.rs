//! The one typed Config of ratelimit-svc, read from environment variables (or any lookup a test
//! supplies). The only module that reads the environment; a bad value names its variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::check::FailureMode;

/// `LOG_FORMAT`: one type for every service (the shared telemetry set-up takes it as is).
pub use gateway_proto::telemetry::LogFormat;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `RATELIMIT_LISTEN`: gRPC (Envoy RateLimitService v3 and grpc.health.v1).
    pub listen: SocketAddr,
    /// `RATELIMIT_HTTP_LISTEN`: `/health`, `/ready`, `/metrics`.
    pub http_listen: SocketAddr,
    /// `REDIS_URL`: unset = in-memory counters (one replica only).
    pub redis_url: Option<String>,
    /// `RATELIMIT_REDIS_TIMEOUT_MS`: bound on one Redis call before the failure mode applies.
    pub redis_timeout: Duration,
    /// `RATELIMIT_CONFIG`: YAML rules file; unset = per-key limits only.
    pub rules_path: Option<PathBuf>,
    /// `RATELIMIT_FAILURE_MODE`: open (default) or closed.
    pub failure_mode: FailureMode,
    /// `LOG_LEVEL`: a tracing filter such as `info` or `ratelimit_svc=debug,info`.
    pub log_level: String,
    /// `LOG_FORMAT`: json (default) or text.
    pub log_format: LogFormat,
    /// Spans are exported over OTLP (`OTEL_*`, parsed by `telemetry`; `main` sets this). Every
    /// gRPC call then gets its span, whatever `LOG_LEVEL` says.
    pub export_traces: bool,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads every setting through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        Ok(Self {
            listen: parse_addr(
                "RATELIMIT_LISTEN",
                get("RATELIMIT_LISTEN"),
                "127.0.0.1:50052",
            )?,
            http_listen: parse_addr(
                "RATELIMIT_HTTP_LISTEN",
                get("RATELIMIT_HTTP_LISTEN"),
                "127.0.0.1:9092",
            )?,
            redis_url: get("REDIS_URL")
                .map(|url| validate_redis_url(url.trim()))
                .transpose()?,
            redis_timeout: parse_timeout(get("RATELIMIT_REDIS_TIMEOUT_MS"))?,
            rules_path: get("RATELIMIT_CONFIG").map(PathBuf::from),
            failure_mode: match get("RATELIMIT_FAILURE_MODE").as_deref().map(str::trim) {
                None | Some("open") => FailureMode::Open,
                Some("closed") => FailureMode::Closed,
                Some(other) => {
                    return Err(error(
                        "RATELIMIT_FAILURE_MODE",
                        format!("{other:?} is not one of: open, closed"),
                    ));
                }
            },
            log_level: get("LOG_LEVEL").unwrap_or_else(|| "info".to_owned()),
            log_format: match get("LOG_FORMAT").as_deref().map(str::trim) {
                None | Some("json") => LogFormat::Json,
                Some("text") => LogFormat::Text,
                Some(other) => {
                    return Err(error(
                        "LOG_FORMAT",
                        format!("{other:?} is not one of: json, text"),
                    ));
                }
            },
            export_traces: false,
        })
    }
}

fn parse_addr(
    variable: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    text.trim().parse().map_err(|_| {
        error(
            variable,
            format!("{text:?} is not an address such as 127.0.0.1:50052 or [::]:50052"),
        )
    })
}

fn validate_redis_url(url: &str) -> Result<String, ConfigError> {
    // Checked by the client's own parser so that "redis://:6379" style mistakes fail at start.
    redis::Client::open(url).map_err(|e| {
        error(
            "REDIS_URL",
            format!(
                "{url:?} is not a usable Redis URL (redis://host:port/db or unix:///path): {e}"
            ),
        )
    })?;
    Ok(url.to_owned())
}

fn parse_timeout(value: Option<String>) -> Result<Duration, ConfigError> {
    const VARIABLE: &str = "RATELIMIT_REDIS_TIMEOUT_MS";
    let Some(text) = value else {
        return Ok(Duration::from_millis(50));
    };
    match text.trim().parse::<u64>() {
        Ok(ms) if (1..=10_000).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(error(
            VARIABLE,
            format!("{text:?} is not a whole number of milliseconds between 1 and 10000"),
        )),
    }
}

fn error(variable: &'static str, message: String) -> ConfigError {
    ConfigError { variable, message }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_local_in_memory_and_fail_open() {
        let c = config(&[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:50052".parse().unwrap());
        assert_eq!(c.http_listen, "127.0.0.1:9092".parse().unwrap());
        assert_eq!(c.redis_url, None);
        assert_eq!(c.rules_path, None);
        assert_eq!(c.failure_mode, FailureMode::Open);
        assert_eq!(c.redis_timeout, Duration::from_millis(50));
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn every_setting_is_read() {
        let c = config(&[
            ("RATELIMIT_LISTEN", "0.0.0.0:6000"),
            ("RATELIMIT_HTTP_LISTEN", "[::1]:6001"),
            ("REDIS_URL", "redis://127.0.0.1:6379/2"),
            ("RATELIMIT_REDIS_TIMEOUT_MS", "20"),
            ("RATELIMIT_CONFIG", "/etc/rl.yaml"),
            ("RATELIMIT_FAILURE_MODE", "closed"),
            ("LOG_LEVEL", "debug"),
            ("LOG_FORMAT", "text"),
        ])
        .unwrap();
        assert_eq!(c.listen.port(), 6000);
        assert_eq!(c.http_listen.port(), 6001);
        assert_eq!(c.redis_url.as_deref(), Some("redis://127.0.0.1:6379/2"));
        assert_eq!(c.redis_timeout, Duration::from_millis(20));
        assert_eq!(c.rules_path, Some(PathBuf::from("/etc/rl.yaml")));
        assert_eq!(c.failure_mode, FailureMode::Closed);
        assert_eq!(c.log_level, "debug");
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            ("RATELIMIT_LISTEN", "localhost"),
            ("RATELIMIT_HTTP_LISTEN", "1.2.3.4"),
            ("REDIS_URL", "http://example"),
            ("RATELIMIT_REDIS_TIMEOUT_MS", "0"),
            ("RATELIMIT_REDIS_TIMEOUT_MS", "fast"),
            ("RATELIMIT_FAILURE_MODE", "maybe"),
            ("LOG_FORMAT", "xml"),
        ] {
            let err = config(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable);
            assert!(err.to_string().starts_with(variable), "{err}");
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = config(&[("REDIS_URL", ""), ("RATELIMIT_FAILURE_MODE", " ")]).unwrap();
        assert_eq!(c.redis_url, None);
        assert_eq!(c.failure_mode, FailureMode::Open);
    }
}
