//! `gateway.auth.v1.Auth`: the gate filter's key check. A [`KeyVerifier`] decides; the gRPC face
//! in `service.rs` only maps verdicts to `CheckResponse`. Keys are compared by hash, never logged.
//! Today the master key is the only key ([`MasterKeyVerifier`]); the key store plugs in later as
//! another `KeyVerifier`.

mod master;
mod service;

use std::time::Duration;

pub use master::{MASTER_KEY_ID, MasterKeyVerifier};
pub use service::{AuthService, auth_service};

/// Service tier of a key (spec 10.6), as stored with the key and reported to the gate filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    #[default]
    Default,
    Flex,
    Priority,
    Reserved,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Default, Tier::Flex, Tier::Priority, Tier::Reserved];

    pub fn parse(text: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Default => "default",
            Tier::Flex => "flex",
            Tier::Priority => "priority",
            Tier::Reserved => "reserved",
        }
    }
}

/// What an accepted key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    /// Stable, non-secret identifier (rate-limit descriptor, usage records).
    pub key_id: String,
    pub tier: Tier,
    /// 0 = unlimited.
    pub requests_per_minute: u32,
    /// 0 = unlimited.
    pub tokens_per_minute: u32,
    /// How long the filter may cache this grant; `None` = the filter's default.
    pub cache_ttl: Option<Duration>,
}

/// Why a key is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// Unknown, revoked or disabled: 401 `authentication_error` "invalid API key".
    InvalidKey,
    /// A valid key that may not be used now (budget exhausted, disabled model access):
    /// 403 `permission_error` with this message.
    NotPermitted(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed(KeyGrant),
    Denied(Denial),
}

/// The verifier could not decide (key store unreachable). Distinct from a denial: the filter
/// answers 529 and caches nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError(pub String);

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key verification unavailable: {}", self.0)
    }
}

impl std::error::Error for VerifyError {}

/// Decides whether a presented key may pass. Implementations compare hashes, never raw keys,
/// and never log the key.
#[tonic::async_trait]
pub trait KeyVerifier: Send + Sync + 'static {
    async fn verify(&self, presented_key: &str) -> Result<Verdict, VerifyError>;
}

#[cfg(test)]
mod tests;
