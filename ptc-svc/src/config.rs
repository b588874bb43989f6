//! The one typed Config of ptc-svc, read from environment variables (or any lookup a test
//! supplies). The only module that reads the environment; a bad value names its variable.

use std::net::SocketAddr;
use std::time::Duration;

/// `LOG_FORMAT`: one type for every service (the shared telemetry set-up takes it as is).
pub use gateway_proto::telemetry::LogFormat;

/// `PTC_PULL_POLICY`: the image is never pulled on the request path; `if_missing` pulls at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Never,
    IfMissing,
}

/// Container hardening and resources (ptc.md section 12).
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxConfig {
    /// `PTC_IMAGE`
    pub image: String,
    /// `PTC_PULL_POLICY`
    pub pull_policy: PullPolicy,
    /// `PTC_RUNTIME`: unset = the engine's default (e.g. `runsc` for gVisor).
    pub runtime: Option<String>,
    /// `PTC_UID`, `PTC_GID`
    pub uid: u32,
    pub gid: u32,
    /// `PTC_MEMORY` (bytes; suffixes k, m, g, KiB, MiB, GiB accepted). Swap is disabled.
    pub memory_bytes: u64,
    /// `PTC_CPUS`
    pub cpus: f64,
    /// `PTC_PIDS`
    pub pids: u32,
    /// `PTC_TMP_BYTES`: size of the tmpfs at /tmp.
    pub tmp_bytes: u64,
    /// `PTC_WORKSPACE_BYTES`: size of the tmpfs at /workspace.
    pub workspace_bytes: u64,
    /// `PTC_INIT`: run the engine's init (docker-init/tini) as PID 1, so processes the code
    /// forks are reaped and cannot pin the pids limit as zombies. Default true.
    pub init: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `PTC_LISTEN`: the gRPC address.
    pub listen: SocketAddr,
    /// `PTC_REPLICA_ID`: labels this replica's containers; default the host name.
    pub replica_id: String,
    /// `PTC_PEERS`: other replicas' gRPC addresses (`host:port`, comma-separated; a DNS name may
    /// resolve to several replicas, e.g. a headless service). Unknown ids are looked up there.
    pub peers: Vec<String>,
    pub sandbox: SandboxConfig,
    /// `PTC_EXECUTION_TIMEOUT_S`: running time per execution (client wait excluded).
    pub execution_timeout: Duration,
    /// `PTC_SESSION_IDLE_S`
    pub session_idle: Duration,
    /// `PTC_SESSION_MAX_LIFETIME_S`
    pub session_max_lifetime: Duration,
    /// `PTC_RUNNER_READY_S`: container start until the runner's ready message.
    pub runner_ready: Duration,
    /// `PTC_BATCH_IDLE_MS`, `PTC_BATCH_MAX_WAIT_MS`, `PTC_BATCH_MAX_CALLS`
    pub batch_idle: Duration,
    pub batch_max_wait: Duration,
    pub batch_max_calls: u32,
    /// `PTC_MAX_CALLS_PER_EXECUTION`
    pub max_calls_per_execution: u32,
    /// `PTC_MAX_STDOUT_BYTES`, `PTC_MAX_STDERR_BYTES`, `PTC_MAX_LINE_BYTES`
    pub max_stdout_bytes: u32,
    pub max_stderr_bytes: u32,
    pub max_line_bytes: usize,
    /// `PTC_MAX_SESSIONS_PER_REPLICA`, `PTC_MAX_SESSIONS_PER_KEY`
    pub max_sessions_per_replica: u32,
    pub max_sessions_per_key: u32,
    /// `PTC_REPLAY_TTL_S`: how long a stored round (and a closed session's last outcome) is kept.
    pub replay_ttl: Duration,
    /// `PTC_DRAIN_S`: at shutdown, how long running executions may finish.
    pub drain: Duration,
    /// `PTC_SWEEP_INTERVAL_S`: how often expired sessions are closed.
    pub sweep_interval: Duration,
    /// `LOG_LEVEL`, `LOG_FORMAT`
    pub log_level: String,
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

fn error(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

pub const DEFAULT_IMAGE: &str = "gateway-ptc-sandbox:latest";

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned());
        Self::from_lookup(|name| match name {
            "HOSTNAME" => std::env::var(name).ok().or_else(|| hostname.clone()),
            _ => std::env::var(name).ok(),
        })
    }

    /// Reads every setting through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&|name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        });
        let sandbox = SandboxConfig {
            image: env
                .get("PTC_IMAGE")
                .unwrap_or_else(|| DEFAULT_IMAGE.to_owned()),
            pull_policy: match env.get("PTC_PULL_POLICY").as_deref() {
                None | Some("never") => PullPolicy::Never,
                Some("if_missing") => PullPolicy::IfMissing,
                Some(other) => {
                    return Err(error(
                        "PTC_PULL_POLICY",
                        format!("{other:?} is not one of: never, if_missing"),
                    ));
                }
            },
            runtime: env.get("PTC_RUNTIME"),
            uid: env.number("PTC_UID", 65534, 1, u32::MAX)?,
            gid: env.number("PTC_GID", 65534, 1, u32::MAX)?,
            memory_bytes: env.bytes("PTC_MEMORY", 256 << 20, 16 << 20)?,
            cpus: env.cpus("PTC_CPUS", 0.5)?,
            pids: env.number("PTC_PIDS", 64, 8, 1 << 20)?,
            tmp_bytes: env.bytes("PTC_TMP_BYTES", 64 << 20, 1 << 20)?,
            workspace_bytes: env.bytes("PTC_WORKSPACE_BYTES", 256 << 20, 1 << 20)?,
            init: env.flag("PTC_INIT", true)?,
        };
        let config = Self {
            listen: env
                .get("PTC_LISTEN")
                .unwrap_or_else(|| "127.0.0.1:50053".to_owned())
                .parse()
                .map_err(|e| error("PTC_LISTEN", format!("not a socket address: {e}")))?,
            replica_id: match env.get("PTC_REPLICA_ID").or_else(|| env.get("HOSTNAME")) {
                Some(id) if valid_label(&id) => id,
                Some(id) => {
                    return Err(error(
                        "PTC_REPLICA_ID",
                        format!("{id:?}: use 1-63 characters of [A-Za-z0-9._-]"),
                    ));
                }
                None => "ptc-0".to_owned(),
            },
            peers: env
                .get("PTC_PEERS")
                .map(|list| parse_peers(&list))
                .transpose()?
                .unwrap_or_default(),
            sandbox,
            execution_timeout: env.seconds("PTC_EXECUTION_TIMEOUT_S", 60)?,
            session_idle: env.seconds("PTC_SESSION_IDLE_S", 270)?,
            session_max_lifetime: env.seconds("PTC_SESSION_MAX_LIFETIME_S", 3600)?,
            runner_ready: env.seconds("PTC_RUNNER_READY_S", 10)?,
            batch_idle: Duration::from_millis(env.number("PTC_BATCH_IDLE_MS", 30, 1, 60_000)?),
            batch_max_wait: Duration::from_millis(env.number(
                "PTC_BATCH_MAX_WAIT_MS",
                500,
                1,
                600_000,
            )?),
            batch_max_calls: env.number("PTC_BATCH_MAX_CALLS", 64, 1, 100_000)?,
            max_calls_per_execution: env.number("PTC_MAX_CALLS_PER_EXECUTION", 1000, 1, 1 << 24)?,
            max_stdout_bytes: env.number("PTC_MAX_STDOUT_BYTES", 64 << 10, 0, 64 << 20)?,
            max_stderr_bytes: env.number("PTC_MAX_STDERR_BYTES", 16 << 10, 0, 64 << 20)?,
            max_line_bytes: env.number("PTC_MAX_LINE_BYTES", 8 << 20, 1024, 1 << 30)?,
            max_sessions_per_replica: env.number("PTC_MAX_SESSIONS_PER_REPLICA", 32, 1, 100_000)?,
            max_sessions_per_key: env.number("PTC_MAX_SESSIONS_PER_KEY", 8, 1, 100_000)?,
            replay_ttl: env.seconds("PTC_REPLAY_TTL_S", 120)?,
            drain: env.seconds("PTC_DRAIN_S", 30)?,
            sweep_interval: env.seconds("PTC_SWEEP_INTERVAL_S", 15)?,
            log_level: env.get("LOG_LEVEL").unwrap_or_else(|| "info".to_owned()),
            log_format: match env.get("LOG_FORMAT").as_deref() {
                None | Some("json") => LogFormat::Json,
                Some("text") => LogFormat::Text,
                Some(other) => {
                    return Err(error(
                        "LOG_FORMAT",
                        format!("{other:?} is not one of: json, text"),
                    ));
                }
            },
        };
        if config.session_max_lifetime < config.session_idle {
            return Err(error(
                "PTC_SESSION_MAX_LIFETIME_S",
                "must not be shorter than PTC_SESSION_IDLE_S",
            ));
        }
        Ok(config)
    }
}

struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    fn number<T>(&self, name: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.parse::<T>() {
            Ok(value) if value >= min && value <= max => Ok(value),
            _ => Err(error(
                name,
                format!("{raw:?} is not a whole number from {min} to {max}"),
            )),
        }
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(error(name, format!("{other:?} is not true or false"))),
        }
    }

    fn seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.number(
            name,
            default,
            1,
            30 * 24 * 3600,
        )?))
    }

    fn bytes(&self, name: &'static str, default: u64, min: u64) -> Result<u64, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match parse_bytes(&raw) {
            Some(value) if value >= min => Ok(value),
            _ => Err(error(
                name,
                format!(
                    "{raw:?} is not a size of at least {min} bytes (e.g. 268435456, 256m, 256MiB)"
                ),
            )),
        }
    }

    fn cpus(&self, name: &'static str, default: f64) -> Result<f64, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.parse::<f64>() {
            Ok(value) if value.is_finite() && (0.01..=1024.0).contains(&value) => Ok(value),
            _ => Err(error(
                name,
                format!("{raw:?} is not a CPU count from 0.01 to 1024"),
            )),
        }
    }
}

/// `268435456`, `256m`, `256MiB`, `1g`, `512k` (binary multiples).
fn parse_bytes(raw: &str) -> Option<u64> {
    let lower = raw.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let number: u64 = digits.parse().ok()?;
    let shift = match unit.trim() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    number.checked_mul(1u64 << shift)
}

fn parse_peers(list: &str) -> Result<Vec<String>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|peer| !peer.is_empty())
        .map(|peer| match peer.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(peer.to_owned())
            }
            _ => Err(error("PTC_PEERS", format!("{peer:?} is not host:port"))),
        })
        .collect()
}

/// Docker label values and our replica ids: short, printable, no separators that need quoting.
fn valid_label(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_spec() {
        let config = load(&[]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:50053".parse().unwrap());
        assert_eq!(config.replica_id, "ptc-0");
        assert_eq!(config.sandbox.image, DEFAULT_IMAGE);
        assert_eq!(config.sandbox.memory_bytes, 268_435_456);
        assert_eq!((config.sandbox.uid, config.sandbox.gid), (65534, 65534));
        assert_eq!(config.sandbox.pids, 64);
        assert!((config.sandbox.cpus - 0.5).abs() < f64::EPSILON);
        assert_eq!(config.execution_timeout, Duration::from_secs(60));
        assert_eq!(config.session_idle, Duration::from_secs(270));
        assert_eq!(config.batch_idle, Duration::from_millis(30));
        assert_eq!(config.max_stdout_bytes, 65536);
        assert_eq!(config.max_line_bytes, 8 << 20);
        assert_eq!(config.max_sessions_per_replica, 32);
        assert!(config.peers.is_empty());
    }

    #[test]
    fn parses_sizes_and_lists() {
        let config = load(&[
            ("PTC_MEMORY", "512MiB"),
            ("PTC_PEERS", "ptc-1:50053, 10.0.0.2:50053"),
            ("PTC_REPLICA_ID", "ptc-2"),
            ("PTC_PULL_POLICY", "if_missing"),
        ])
        .unwrap();
        assert_eq!(config.sandbox.memory_bytes, 512 << 20);
        assert_eq!(config.peers, ["ptc-1:50053", "10.0.0.2:50053"]);
        assert_eq!(config.replica_id, "ptc-2");
        assert_eq!(config.sandbox.pull_policy, PullPolicy::IfMissing);
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("12x"), None);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (name, value) in [
            ("PTC_LISTEN", "nope"),
            ("PTC_MEMORY", "lots"),
            ("PTC_CPUS", "0"),
            ("PTC_PIDS", "-1"),
            ("PTC_EXECUTION_TIMEOUT_S", "0"),
            ("PTC_PEERS", "no-port"),
            ("PTC_REPLICA_ID", "a b"),
            ("PTC_PULL_POLICY", "always"),
            ("LOG_FORMAT", "xml"),
            ("PTC_INIT", "maybe"),
        ] {
            let err = load(&[(name, value)]).unwrap_err();
            assert_eq!(err.variable, name, "{err}");
        }
        let err = load(&[
            ("PTC_SESSION_IDLE_S", "100"),
            ("PTC_SESSION_MAX_LIFETIME_S", "50"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "PTC_SESSION_MAX_LIFETIME_S");
    }
}
