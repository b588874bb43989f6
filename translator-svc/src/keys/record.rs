//! The key record and the settings an operator gives a key (limits, tier, budget, allowed models,
//! cache TTL preference), with their validation. No storage or transport code here.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Disabled,
    /// Spent its monthly budget; lifted when the month rolls over or the budget is raised.
    BudgetExceeded,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Disabled => "disabled",
            KeyStatus::BudgetExceeded => "budget_exceeded",
        }
    }

    pub fn parse(text: &str) -> Option<KeyStatus> {
        [
            KeyStatus::Active,
            KeyStatus::Disabled,
            KeyStatus::BudgetExceeded,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// Bedrock service tier used for a key's requests: the same type the Auth service reports.
pub use crate::auth::Tier;

/// The key's preferred prompt-cache TTL (applied by the relay where the client sets none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CacheTtl {
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "1h")]
    OneHour,
}

impl CacheTtl {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheTtl::FiveMinutes => "5m",
            CacheTtl::OneHour => "1h",
        }
    }

    pub fn parse(text: &str) -> Option<CacheTtl> {
        match text {
            "5m" => Some(CacheTtl::FiveMinutes),
            "1h" => Some(CacheTtl::OneHour),
            _ => None,
        }
    }
}

/// What an operator may set on a key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeySettings {
    pub name: String,
    pub owner: Option<String>,
    /// Requests per minute; 0 = unlimited.
    pub requests_per_minute: u32,
    /// Input + output tokens per minute; 0 = unlimited.
    pub tokens_per_minute: u32,
    pub tier: Tier,
    /// Monthly budget in USD (UTC calendar month); `None` = no budget.
    pub monthly_budget_usd: Option<f64>,
    /// Models this key may call (requested names); `None` = all.
    pub allowed_models: Option<Vec<String>>,
    pub cache_ttl: Option<CacheTtl>,
}

/// A stored key. The secret itself is never part of it: only its hash and display prefix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRecord {
    pub id: String,
    #[serde(flatten)]
    pub settings: KeySettings,
    /// `sk-gw-AbCd`: the first characters of the key, for display.
    pub key_prefix: String,
    #[serde(skip)]
    pub key_hash: String,
    pub status: KeyStatus,
    pub created_at: String,
    pub updated_at: String,
    pub last_used_at: Option<String>,
    /// The month (`YYYY-MM`) in which the key was marked `budget_exceeded`.
    pub budget_exceeded_month: Option<String>,
}

/// `POST /admin/v1/keys`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default, alias = "rpm")]
    pub requests_per_minute: u32,
    #[serde(default, alias = "tpm")]
    pub tokens_per_minute: u32,
    #[serde(default)]
    pub tier: Tier,
    #[serde(default, alias = "budget")]
    pub monthly_budget_usd: Option<f64>,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default)]
    pub cache_ttl: Option<CacheTtl>,
}

impl NewKey {
    pub fn into_settings(self) -> Result<KeySettings, ApiError> {
        let settings = KeySettings {
            name: self.name,
            owner: self.owner,
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            tier: self.tier,
            monthly_budget_usd: self.monthly_budget_usd,
            allowed_models: self.allowed_models,
            cache_ttl: self.cache_ttl,
        };
        validate(&settings)?;
        Ok(settings)
    }
}

/// `PATCH /admin/v1/keys/{id}`: absent fields stay; `null` clears an optional one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUpdate {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub owner: Option<Option<String>>,
    #[serde(alias = "rpm")]
    pub requests_per_minute: Option<u32>,
    #[serde(alias = "tpm")]
    pub tokens_per_minute: Option<u32>,
    pub tier: Option<Tier>,
    #[serde(default, alias = "budget", deserialize_with = "present")]
    pub monthly_budget_usd: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    pub allowed_models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub cache_ttl: Option<Option<CacheTtl>>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl KeyUpdate {
    pub fn apply(self, current: &KeySettings) -> Result<KeySettings, ApiError> {
        let mut s = current.clone();
        if let Some(name) = self.name {
            s.name = name;
        }
        if let Some(owner) = self.owner {
            s.owner = owner;
        }
        if let Some(rpm) = self.requests_per_minute {
            s.requests_per_minute = rpm;
        }
        if let Some(tpm) = self.tokens_per_minute {
            s.tokens_per_minute = tpm;
        }
        if let Some(tier) = self.tier {
            s.tier = tier;
        }
        if let Some(budget) = self.monthly_budget_usd {
            s.monthly_budget_usd = budget;
        }
        if let Some(models) = self.allowed_models {
            s.allowed_models = models;
        }
        if let Some(ttl) = self.cache_ttl {
            s.cache_ttl = ttl;
        }
        validate(&s)?;
        Ok(s)
    }
}

pub fn validate(s: &KeySettings) -> Result<(), ApiError> {
    let name = s.name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(ApiError::invalid_at("name", "must be 1 to 128 characters"));
    }
    if s.owner.as_deref().is_some_and(|o| o.chars().count() > 128) {
        return Err(ApiError::invalid_at(
            "owner",
            "must be at most 128 characters",
        ));
    }
    if let Some(budget) = s.monthly_budget_usd
        && !(budget.is_finite() && budget > 0.0 && budget < 1e9)
    {
        return Err(ApiError::invalid_at(
            "monthly_budget_usd",
            "must be a positive number of USD (null removes the budget)",
        ));
    }
    if let Some(models) = &s.allowed_models
        && (models.is_empty() || models.len() > 100 || models.iter().any(|m| m.trim().is_empty()))
    {
        return Err(ApiError::invalid_at(
            "allowed_models",
            "must be 1 to 100 non-empty model names (null allows every model)",
        ));
    }
    Ok(())
}

/// What the relay enforces per key beyond the gate: allowed models and the cache TTL default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPolicy {
    pub allowed_models: Option<Vec<String>>,
    pub cache_ttl: Option<CacheTtl>,
}

impl KeyPolicy {
    /// Whether this key may call `model` (the name the client sent).
    pub fn allows_model(&self, model: &str) -> bool {
        self.allowed_models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == model))
    }
}

impl KeyRecord {
    pub fn policy(&self) -> KeyPolicy {
        KeyPolicy {
            allowed_models: self.settings.allowed_models.clone(),
            cache_ttl: self.settings.cache_ttl,
        }
    }

    /// The monthly budget in nano-USD, the unit of the usage counters.
    pub fn budget_nanos(&self) -> Option<u64> {
        self.settings
            .monthly_budget_usd
            .map(crate::pricing::usd_to_nanos)
    }
}
