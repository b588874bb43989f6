//! PTC settings of translator-svc (ptc.md section 17), parsed from the same replaceable source as
//! the rest of `Config`. Only the orchestration side, plus the per-session limits sent with
//! `CreateSession` (ptc-svc applies them when they are tighter than its own).

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
    pub max_stderr_bytes: u64,
    pub max_calls_per_execution: u64,
    pub max_model_calls: u32,
    /// `PTC_ROUND_BUDGET_S`: wall time one round may spend in model calls and code before it
    /// answers `pause_turn` (fractional seconds accepted).
    pub round_budget: Duration,
    /// `PTC_MEMORY`, `PTC_CPUS`, `PTC_PIDS` when set here too: the container resources asked for
    /// each session (unset: ptc-svc's own values, which a request can lower but never raise).
    pub memory_bytes: Option<u64>,
    pub milli_cpus: Option<u32>,
    pub pids: Option<u32>,
}

/// A positive integer setting.
fn number(src: &dyn Source, name: &'static str, default: u64) -> Result<u64, ConfigError> {
    match crate::config::number(src, name, default)? {
        0 => Err(bad(name, "must be a positive integer")),
        n => Ok(n),
    }
}

/// A positive number of seconds (fractions allowed, for tests).
fn seconds(src: &dyn Source, name: &'static str, default: f64) -> Result<Duration, ConfigError> {
    let v: f64 = crate::config::number(src, name, default)?;
    if !(v.is_finite() && v > 0.0) {
        return Err(bad(name, "must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// `PTC_MEMORY` as ptc-svc reads it: `268435456`, `256m`, `256MiB`, `1g` (binary multiples).
fn memory(src: &dyn Source) -> Result<Option<u64>, ConfigError> {
    let Some(raw) = src.get("PTC_MEMORY") else {
        return Ok(None);
    };
    let lower = raw.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let shift = match unit.trim() {
        "" | "b" => Some(0),
        "k" | "kb" | "kib" => Some(10),
        "m" | "mb" | "mib" => Some(20),
        "g" | "gb" | "gib" => Some(30),
        _ => None,
    };
    match (digits.parse::<u64>().ok(), shift) {
        (Some(n), Some(shift)) if n.checked_mul(1 << shift).is_some_and(|b| b >= 16 << 20) => {
            Ok(Some(n << shift))
        }
        _ => Err(bad(
            "PTC_MEMORY",
            format!("{raw:?}: expected a size of at least 16 MiB (e.g. 268435456, 256m, 256MiB)"),
        )),
    }
}

/// `PTC_CPUS` (0.01 to 1024) in thousandths of a CPU.
fn cpus(src: &dyn Source) -> Result<Option<u32>, ConfigError> {
    let Some(raw) = src.get("PTC_CPUS") else {
        return Ok(None);
    };
    match raw.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.01..=1024.0).contains(&v) => {
            Ok(Some((v * 1000.0).round() as u32))
        }
        _ => Err(bad(
            "PTC_CPUS",
            format!("{raw:?}: expected a CPU count from 0.01 to 1024"),
        )),
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
            max_stderr_bytes: number(src, "PTC_MAX_STDERR_BYTES", 16384)?,
            max_calls_per_execution: number(src, "PTC_MAX_CALLS_PER_EXECUTION", 1000)?,
            max_model_calls: u32::try_from(number(src, "PTC_MAX_MODEL_CALLS", 16)?)
                .map_err(|_| bad("PTC_MAX_MODEL_CALLS", "too large"))?,
            round_budget: seconds(src, "PTC_ROUND_BUDGET_S", 540.0)?,
            memory_bytes: memory(src)?,
            milli_cpus: cpus(src)?,
            pids: src
                .get("PTC_PIDS")
                .map(|raw| match raw.trim().parse::<u32>() {
                    Ok(n) if n >= 8 => Ok(n),
                    _ => Err(bad(
                        "PTC_PIDS",
                        format!("{raw:?}: expected an integer >= 8"),
                    )),
                })
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::collections::HashMap;

    use super::*;

    fn parse(pairs: &[(&'static str, &'static str)]) -> Result<PtcConfig, ConfigError> {
        let src: HashMap<&str, &str> = pairs.iter().copied().collect();
        PtcConfig::from_source(&src)
    }

    #[test]
    fn defaults_leave_container_resources_to_ptc_svc() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.round_budget, Duration::from_secs(540));
        assert_eq!(c.max_stderr_bytes, 16384);
        assert_eq!(c.max_calls_per_execution, 1000);
        assert_eq!((c.memory_bytes, c.milli_cpus, c.pids), (None, None, None));
    }

    #[test]
    fn limits_and_budget_parse_and_bad_values_name_the_variable() {
        let c = parse(&[
            ("PTC_ROUND_BUDGET_S", "1.5"),
            ("PTC_MEMORY", "128MiB"),
            ("PTC_CPUS", "0.25"),
            ("PTC_PIDS", "32"),
        ])
        .unwrap();
        assert_eq!(c.round_budget, Duration::from_millis(1500));
        assert_eq!(c.memory_bytes, Some(128 << 20));
        assert_eq!(c.milli_cpus, Some(250));
        assert_eq!(c.pids, Some(32));
        assert_eq!(
            parse(&[("PTC_MEMORY", "268435456")]).unwrap().memory_bytes,
            Some(256 << 20)
        );
        for (name, value) in [
            ("PTC_ROUND_BUDGET_S", "0"),
            ("PTC_MEMORY", "1m"),
            ("PTC_MEMORY", "lots"),
            ("PTC_CPUS", "0"),
            ("PTC_PIDS", "2"),
        ] {
            let error = parse(&[(name, value)]).unwrap_err();
            assert_eq!(error.name, name);
        }
    }
}
