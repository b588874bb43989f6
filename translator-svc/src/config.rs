//! The one typed configuration of translator-svc, read once at start from a replaceable source
//! (the environment in production, a map in tests). Nothing else reads the environment; a bad
//! value stops the service with a message naming the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which Bedrock API Claude models use unless a model entry says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaudeApi {
    Invoke,
    Converse,
}

/// `LOG_FORMAT`: one type for every service (the shared telemetry set-up takes it as is).
pub use gateway_proto::telemetry::LogFormat;

#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP (axum) and gRPC (tonic) on one port, h2c and HTTP/1.1.
    pub listen: SocketAddr,
    /// Shared secret Envoy adds as `x-gw-internal-secret`; `/v1/*` requests without it are refused.
    pub internal_secret: String,

    pub aws_region: String,
    pub bedrock_endpoint_url: Option<String>,
    pub bedrock_role_arn: Option<String>,
    pub bedrock_region: Option<String>,
    pub bedrock_connect_timeout: Duration,
    pub bedrock_max_attempts: u32,

    pub claude_api: ClaudeApi,
    pub model_default_profile: String,
    pub model_derive_claude_ids: bool,
    /// Operator model entries (JSON array) from a file and/or inline.
    pub model_map_file: Option<PathBuf>,
    pub model_map_json: Option<String>,
    pub models_list_bedrock_ids: bool,

    pub beta_flags_rename: Option<String>,
    pub beta_flags_drop: Option<String>,
    pub beta_flags_allow: Option<String>,
    pub beta_flags_unknown: Option<String>,

    pub server_tools_strip: bool,
    pub context_edits_allowed: Vec<String>,
    pub tool_types_pass: Vec<String>,
    /// `TOOL_TYPE_RENAME`: JSON map of client tool type -> Bedrock tool type.
    pub tool_type_rename: std::collections::HashMap<String, String>,
    /// `INVOKE_TOP_LEVEL_ALLOW`: top-level keys kept in an InvokeModel body.
    pub invoke_top_level_allow: Vec<String>,
    pub strip_billing_header_block: bool,
    pub media_fetch_enabled: bool,
    pub media_fetch_allow_http: bool,
    /// Allow URL sources on private addresses (internal media hosts); off by default (SSRF).
    pub media_fetch_allow_private: bool,
    pub adaptive_fallback_budget: u32,

    pub sse_ping_interval: Duration,
    pub upstream_idle_timeout: Duration,
    /// How long a ConverseStream `message_delta` waits for Bedrock's `metadata` after `messageStop`.
    pub metadata_wait: Duration,
    pub default_service_tier: Option<String>,
    pub max_concurrent_calls: usize,
    pub max_body_bytes: usize,

    pub log_format: LogFormat,
    /// `LOG_LEVEL` and the OpenTelemetry export (`OTEL_*`, off by default).
    pub telemetry: crate::telemetry::TelemetryConfig,

    /// Key store, usage sink and admin API.
    pub keys: crate::keys::KeysConfig,
    /// Programmatic Tool Calling (`PTC_ENDPOINT`, `PTC_*`).
    pub ptc: crate::ptc::PtcConfig,
    /// `RATELIMIT_ENDPOINT`, `RATELIMIT_DOMAIN`: where disconnected streams' tokens are charged.
    pub ratelimit: crate::ratelimit::ChargeConfig,
}

/// A source of settings by name: the environment, or a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

pub struct Env;

impl Source for Env {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<S: std::hash::BuildHasher> Source for std::collections::HashMap<&str, &str, S> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).map(|v| v.to_string())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {name}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

/// A `ConfigError` naming the variable (shared by every settings module of the service).
pub(crate) fn bad(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        reason: reason.into(),
    }
}

/// `name` parsed as `T`, or `default` when unset.
pub(crate) fn number<T: std::str::FromStr>(
    src: &dyn Source,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match src.get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|e| bad(name, format!("{v:?}: {e}"))),
    }
}

/// A boolean setting: 1/true/yes/on or 0/false/no/off.
pub(crate) fn flag(
    src: &dyn Source,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match src.get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(false),
        Some(v) => Err(bad(name, format!("{v:?} is not a boolean"))),
    }
}

fn secs(src: &dyn Source, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    let v: f64 = number(src, name, default as f64)?;
    if !(v.is_finite() && v > 0.0) {
        return Err(bad(name, "must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn list(src: &dyn Source, name: &'static str, default: &[&str]) -> Vec<String> {
    match src.get(name) {
        None => default.iter().map(|s| s.to_string()).collect(),
        Some(v) => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&Env)
    }

    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let internal_secret = src.get("GATEWAY_INTERNAL_SECRET").ok_or_else(|| {
            bad(
                "GATEWAY_INTERNAL_SECRET",
                "required: the shared secret Envoy adds to every routed request",
            )
        })?;
        if internal_secret.len() < 16 {
            return Err(bad(
                "GATEWAY_INTERNAL_SECRET",
                "must be at least 16 characters",
            ));
        }
        let claude_api = match src.get("CLAUDE_API").as_deref().map(str::trim) {
            None | Some("invoke") => ClaudeApi::Invoke,
            Some("converse") => ClaudeApi::Converse,
            Some(other) => {
                return Err(bad(
                    "CLAUDE_API",
                    format!("{other:?}: expected invoke or converse"),
                ));
            }
        };
        let model_default_profile = src
            .get("MODEL_DEFAULT_PROFILE")
            .unwrap_or_else(|| "global".into());
        if !["global", "us", "eu", "jp", "apac", "au", "ca", "us-gov"]
            .contains(&model_default_profile.as_str())
        {
            return Err(bad(
                "MODEL_DEFAULT_PROFILE",
                format!("{model_default_profile:?} is not a known geo profile"),
            ));
        }
        let server_tools_strip = match src.get("SERVER_TOOLS").as_deref() {
            None | Some("reject") => false,
            Some("strip") => true,
            Some(other) => {
                return Err(bad(
                    "SERVER_TOOLS",
                    format!("{other:?}: expected reject or strip"),
                ));
            }
        };
        let log_format = match src.get("LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(bad(
                    "LOG_FORMAT",
                    format!("{other:?}: expected json or text"),
                ));
            }
        };
        let default_service_tier = match src.get("DEFAULT_SERVICE_TIER").as_deref() {
            None | Some("default") => None,
            Some(t @ ("flex" | "priority" | "reserved")) => Some(t.to_string()),
            Some(other) => {
                return Err(bad(
                    "DEFAULT_SERVICE_TIER",
                    format!("{other:?}: expected default, flex, priority or reserved"),
                ));
            }
        };
        let sse_ping_interval = secs(src, "SSE_PING_INTERVAL_SECS", 15)?;
        let upstream_idle_timeout = secs(src, "UPSTREAM_IDLE_TIMEOUT_SECS", 600)?;
        if upstream_idle_timeout <= sse_ping_interval {
            return Err(bad(
                "UPSTREAM_IDLE_TIMEOUT_SECS",
                "must exceed SSE_PING_INTERVAL_SECS",
            ));
        }
        let max_concurrent_calls: usize = number(src, "MAX_CONCURRENT_CALLS", 256)?;
        if max_concurrent_calls == 0 {
            return Err(bad("MAX_CONCURRENT_CALLS", "must be at least 1"));
        }
        Ok(Config {
            listen: number(
                src,
                "TRANSLATOR_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 50051)),
            )?,
            internal_secret,
            aws_region: src
                .get("AWS_REGION")
                .or_else(|| src.get("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            bedrock_endpoint_url: src.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME"),
            bedrock_role_arn: src.get("BEDROCK_ROLE_ARN"),
            bedrock_region: src.get("BEDROCK_REGION"),
            bedrock_connect_timeout: secs(src, "BEDROCK_CONNECT_TIMEOUT_SECS", 10)?,
            bedrock_max_attempts: number(src, "BEDROCK_MAX_ATTEMPTS", 2)?,
            claude_api,
            model_default_profile,
            model_derive_claude_ids: flag(src, "MODEL_DERIVE_CLAUDE_IDS", true)?,
            model_map_file: src.get("MODEL_MAP_FILE").map(PathBuf::from),
            model_map_json: src.get("MODEL_MAP"),
            models_list_bedrock_ids: flag(src, "MODELS_LIST_BEDROCK_IDS", false)?,
            beta_flags_rename: src.get("BETA_FLAGS_RENAME"),
            beta_flags_drop: src.get("BETA_FLAGS_DROP"),
            beta_flags_allow: src.get("BETA_FLAGS_ALLOW"),
            beta_flags_unknown: src.get("BETA_FLAGS_UNKNOWN"),
            server_tools_strip,
            context_edits_allowed: list(
                src,
                "CONTEXT_EDITS_ALLOWED",
                crate::convert::options::DEFAULT_CONTEXT_EDITS_ALLOWED,
            ),
            tool_types_pass: list(
                src,
                "TOOL_TYPES_PASS",
                &[
                    "bash_20250124",
                    "text_editor_20250728",
                    "text_editor_20250429",
                    "computer_20250124",
                    "memory_20250818",
                ],
            ),
            tool_type_rename: match src.get("TOOL_TYPE_RENAME") {
                None => crate::convert::options::DEFAULT_TOOL_TYPE_RENAME
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
                Some(json) => serde_json::from_str(&json).map_err(|e| {
                    bad(
                        "TOOL_TYPE_RENAME",
                        format!("not a JSON object of strings: {e}"),
                    )
                })?,
            },
            invoke_top_level_allow: list(
                src,
                "INVOKE_TOP_LEVEL_ALLOW",
                crate::convert::options::DEFAULT_INVOKE_TOP_LEVEL_ALLOW,
            ),
            strip_billing_header_block: flag(src, "STRIP_BILLING_HEADER_BLOCK", false)?,
            media_fetch_enabled: flag(src, "MEDIA_FETCH_ENABLED", true)?,
            media_fetch_allow_http: flag(src, "MEDIA_FETCH_ALLOW_HTTP", false)?,
            media_fetch_allow_private: flag(src, "MEDIA_FETCH_ALLOW_PRIVATE", false)?,
            adaptive_fallback_budget: number(src, "ADAPTIVE_FALLBACK_BUDGET", 16000)?,
            sse_ping_interval,
            upstream_idle_timeout,
            metadata_wait: secs(src, "METADATA_WAIT_SECS", 5)?,
            default_service_tier,
            max_concurrent_calls,
            max_body_bytes: number(src, "MAX_BODY_BYTES", 32 * 1024 * 1024)?,
            log_format,
            telemetry: crate::telemetry::TelemetryConfig::from_source(src)?,
            keys: crate::keys::KeysConfig::from_source(src)?,
            ptc: crate::ptc::PtcConfig::from_source(src)?,
            ratelimit: crate::ratelimit::ChargeConfig::from_source(src)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123";

    #[test]
    fn defaults() {
        let src = HashMap::from([("GATEWAY_INTERNAL_SECRET", SECRET)]);
        let c = Config::from_source(&src).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(c.claude_api, ClaudeApi::Invoke);
        assert_eq!(c.sse_ping_interval, Duration::from_secs(15));
        assert_eq!(c.upstream_idle_timeout, Duration::from_secs(600));
        assert_eq!(c.max_body_bytes, 32 * 1024 * 1024);
        assert_eq!(c.model_default_profile, "global");
    }

    #[test]
    fn errors_name_the_variable() {
        let err = Config::from_source(&HashMap::new()).unwrap_err();
        assert_eq!(err.name, "GATEWAY_INTERNAL_SECRET");
        for (name, value) in [
            ("TRANSLATOR_LISTEN", "nope"),
            ("CLAUDE_API", "grpc"),
            ("SSE_PING_INTERVAL_SECS", "-1"),
            ("MODEL_DERIVE_CLAUDE_IDS", "maybe"),
            ("DEFAULT_SERVICE_TIER", "gold"),
            ("MAX_CONCURRENT_CALLS", "0"),
        ] {
            let src = HashMap::from([("GATEWAY_INTERNAL_SECRET", SECRET), (name, value)]);
            let err = Config::from_source(&src).unwrap_err();
            assert_eq!(err.name, name, "{value}");
        }
    }
}
