//! PTC settings of translator-svc (ptc.md section 17), parsed from the same replaceable source as
//! the rest of `Config`. Only the orchestration side: sandbox limits belong to ptc-svc.

use std::time::Duration;

use crate::config::{ConfigError, Source, bad, flag};

#[derive(Debug, Clone)]
pub struct PtcConfig {
    /// `PTC_ENDPOINT`, e.g. `http://127.0.0.1:50053`; unset = PTC disabled.
    pub endpoint: Option<String>,
    /// `PTC_ENABLED`: default true when an endpoint is configured.
    pub enabled: bool,
    pub tool_types: Vec<String>,
    pub require_beta: bool,
    pub code_tool_name: String,
    /// Per-execution running time (rendered in the guide, bounds gRPC deadlines).
    pub execution_timeout: Duration,
    pub max_stdout_bytes: u64,
    pub max_model_calls: u32,
}

/// A positive integer setting.
fn number(src: &dyn Source, name: &'static str, default: u64) -> Result<u64, ConfigError> {
    match crate::config::number(src, name, default)? {
        0 => Err(bad(name, "must be a positive integer")),
        n => Ok(n),
    }
}

impl PtcConfig {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let endpoint = src.get("PTC_ENDPOINT").map(|v| v.trim().to_string());
        if let Some(e) = &endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(bad(
                "PTC_ENDPOINT",
                format!("{e:?}: expected http://host:port"),
            ));
        }
        let tool_types: Vec<String> = src
            .get("PTC_TOOL_TYPES")
            .unwrap_or_else(|| "code_execution_20250825".into())
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if tool_types.is_empty() {
            return Err(bad("PTC_TOOL_TYPES", "at least one tool type is required"));
        }
        let code_tool_name = src
            .get("PTC_CODE_TOOL_NAME")
            .unwrap_or_else(|| "execute_code".into());
        if !code_tool_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad("PTC_CODE_TOOL_NAME", "only [A-Za-z0-9_-] allowed"));
        }
        Ok(PtcConfig {
            enabled: flag(src, "PTC_ENABLED", endpoint.is_some())? && endpoint.is_some(),
            endpoint,
            tool_types,
            require_beta: flag(src, "PTC_REQUIRE_BETA", true)?,
            code_tool_name,
            execution_timeout: Duration::from_secs(number(src, "PTC_EXECUTION_TIMEOUT_S", 60)?),
            max_stdout_bytes: number(src, "PTC_MAX_STDOUT_BYTES", 65536)?,
            max_model_calls: u32::try_from(number(src, "PTC_MAX_MODEL_CALLS", 16)?)
                .map_err(|_| bad("PTC_MAX_MODEL_CALLS", "too large"))?,
        })
    }
}
