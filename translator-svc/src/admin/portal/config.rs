//! Settings of the admin portal (sign-in sessions, cookie, origins, sign-in rate), parsed from the
//! same replaceable source as the rest of the service. No I/O.

use std::time::Duration;

use crate::config::{ConfigError, Source, bad, flag, number};

/// Whether the session cookie carries `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieSecure {
    /// `Secure` unless the browser reached the portal on a loopback host (`localhost`,
    /// `127.0.0.1`, `[::1]`), where plain HTTP is the usual local run.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// `ADMIN_PORTAL_ENABLED`: serve the web portal under `/admin/` (the JSON API is separate).
    pub enabled: bool,
    /// A session unused this long is over.
    pub idle_timeout: Duration,
    /// A session is over this long after sign-in, used or not.
    pub max_lifetime: Duration,
    pub cookie_secure: CookieSecure,
    /// Origins (`https://admin.example.com`) accepted besides the request's own host, for
    /// deployments where a proxy in front rewrites `Host`.
    pub allowed_origins: Vec<String>,
    /// Sign-in attempts per minute per client address (bursts up to this many); all clients
    /// together get ten times as many.
    pub sign_ins_per_minute: u32,
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            enabled: true,
            idle_timeout: Duration::from_secs(30 * 60),
            max_lifetime: Duration::from_secs(12 * 3600),
            cookie_secure: CookieSecure::Auto,
            allowed_origins: Vec::new(),
            sign_ins_per_minute: 5,
        }
    }
}

fn whole_secs(src: &dyn Source, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    match number::<u64>(src, name, default)? {
        0 => Err(bad(name, "must be at least 1 second")),
        v if v > 31 * 86_400 => Err(bad(name, "must be at most 31 days")),
        v => Ok(Duration::from_secs(v)),
    }
}

impl PortalConfig {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let defaults = PortalConfig::default();
        let idle_timeout = whole_secs(
            src,
            "ADMIN_SESSION_IDLE_SECS",
            defaults.idle_timeout.as_secs(),
        )?;
        let max_lifetime = whole_secs(
            src,
            "ADMIN_SESSION_MAX_SECS",
            defaults.max_lifetime.as_secs(),
        )?;
        if max_lifetime < idle_timeout {
            return Err(bad(
                "ADMIN_SESSION_MAX_SECS",
                "must be at least ADMIN_SESSION_IDLE_SECS",
            ));
        }
        let cookie_secure = match src
            .get("ADMIN_COOKIE_SECURE")
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => CookieSecure::Auto,
            Some(v) if v == "auto" => CookieSecure::Auto,
            Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => CookieSecure::Always,
            Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => CookieSecure::Never,
            Some(v) => {
                return Err(bad(
                    "ADMIN_COOKIE_SECURE",
                    format!("{v:?}: expected auto, true or false"),
                ));
            }
        };
        let mut allowed_origins = Vec::new();
        for origin in src
            .get("ADMIN_ALLOWED_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
        {
            let valid = origin.split_once("://").is_some_and(|(scheme, host)| {
                matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains('/')
            });
            if !valid {
                return Err(bad(
                    "ADMIN_ALLOWED_ORIGINS",
                    format!("{origin:?} is not an origin like https://admin.example.com"),
                ));
            }
            allowed_origins.push(origin.to_ascii_lowercase());
        }
        let sign_ins_per_minute = match number::<u32>(
            src,
            "ADMIN_SIGN_INS_PER_MINUTE",
            defaults.sign_ins_per_minute,
        )? {
            0 => return Err(bad("ADMIN_SIGN_INS_PER_MINUTE", "must be at least 1")),
            n => n,
        };
        Ok(PortalConfig {
            enabled: flag(src, "ADMIN_PORTAL_ENABLED", true)?,
            idle_timeout,
            max_lifetime,
            cookie_secure,
            allowed_origins,
            sign_ins_per_minute,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn defaults_and_errors_name_the_variable() {
        let config = PortalConfig::from_source(&HashMap::<&str, &str>::new()).unwrap();
        assert!(config.enabled);
        assert_eq!(config.cookie_secure, CookieSecure::Auto);
        assert_eq!(config.idle_timeout, Duration::from_secs(1800));
        let src = HashMap::from([
            ("ADMIN_COOKIE_SECURE", "false"),
            (
                "ADMIN_ALLOWED_ORIGINS",
                "https://Admin.example.com, http://10.0.0.5:8080",
            ),
        ]);
        let config = PortalConfig::from_source(&src).unwrap();
        assert_eq!(config.cookie_secure, CookieSecure::Never);
        assert_eq!(
            config.allowed_origins,
            ["https://admin.example.com", "http://10.0.0.5:8080"]
        );
        for (name, value) in [
            ("ADMIN_SESSION_IDLE_SECS", "0"),
            ("ADMIN_SESSION_MAX_SECS", "60"),
            ("ADMIN_COOKIE_SECURE", "sometimes"),
            ("ADMIN_ALLOWED_ORIGINS", "admin.example.com"),
            ("ADMIN_SIGN_INS_PER_MINUTE", "0"),
            ("ADMIN_PORTAL_ENABLED", "maybe"),
        ] {
            let err = PortalConfig::from_source(&HashMap::from([(name, value)])).unwrap_err();
            assert_eq!(err.name, name, "{err}");
        }
    }
}
