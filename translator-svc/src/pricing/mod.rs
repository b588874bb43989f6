//! Prices per model (USD per million tokens: input, output, cache read, cache write 5m and 1h),
//! service-tier multipliers, and the cost of one request in nano-USD (integers, so the usage
//! counters sum exactly). Operator prices from the pricing table sit on top of built-in defaults.

pub mod store;

use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::convert::response::TokenUsage;
use crate::error::ApiError;

const NANOS_PER_USD: f64 = 1e9;

pub fn usd_to_nanos(usd: f64) -> u64 {
    (usd * NANOS_PER_USD).round().max(0.0) as u64
}

pub fn nanos_to_usd(nanos: u64) -> f64 {
    nanos as f64 / NANOS_PER_USD
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write_5m: f64,
    pub cache_write_1h: f64,
}

impl Price {
    /// Anthropic's cache ratios: reads 0.1x input, 5-minute writes 1.25x, 1-hour writes 2x.
    pub const fn from_input_output(input: f64, output: f64) -> Price {
        Price {
            input,
            output,
            cache_read: input * 0.1,
            cache_write_5m: input * 1.25,
            cache_write_1h: input * 2.0,
        }
    }

    pub fn validate(&self) -> Result<(), ApiError> {
        let fields = [
            ("input", self.input),
            ("output", self.output),
            ("cache_read", self.cache_read),
            ("cache_write_5m", self.cache_write_5m),
            ("cache_write_1h", self.cache_write_1h),
        ];
        for (name, value) in fields {
            if !(value.is_finite() && (0.0..1e6).contains(&value)) {
                return Err(ApiError::invalid_at(
                    name,
                    "must be a USD price per million tokens, 0 or more",
                ));
            }
        }
        Ok(())
    }
}

/// Tokens of one request, split the way they are priced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
}

impl Tokens {
    /// `cache_write_1h` of the usage's cache writes were 1-hour writes (the relay takes the split
    /// from Bedrock's per-TTL report); the rest are 5-minute writes.
    pub fn from_usage(usage: &TokenUsage, cache_write_1h: u64) -> Tokens {
        let cache_write_1h = cache_write_1h.min(usage.cache_creation_input_tokens);
        Tokens {
            input: usage.input_tokens,
            output: usage.output_tokens,
            cache_read: usage.cache_read_input_tokens,
            cache_write_5m: usage.cache_creation_input_tokens - cache_write_1h,
            cache_write_1h,
        }
    }

    pub fn cache_write(&self) -> u64 {
        self.cache_write_5m + self.cache_write_1h
    }
}

/// Cost of one request in nano-USD.
pub fn cost_nanos(price: &Price, tokens: &Tokens, multiplier: f64) -> u64 {
    let usd_per_mtok = tokens.input as f64 * price.input
        + tokens.output as f64 * price.output
        + tokens.cache_read as f64 * price.cache_read
        + tokens.cache_write_5m as f64 * price.cache_write_5m
        + tokens.cache_write_1h as f64 * price.cache_write_1h;
    // USD/MTok * tokens / 1e6 * 1e9 nano-USD per USD.
    (usd_per_mtok * 1000.0 * multiplier).round().max(0.0) as u64
}

/// Price factor per service tier (Bedrock: flex is discounted, priority costs more).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TierMultipliers {
    pub default: f64,
    pub flex: f64,
    pub priority: f64,
    pub reserved: f64,
}

impl Default for TierMultipliers {
    fn default() -> Self {
        TierMultipliers {
            default: 1.0,
            flex: 0.5,
            priority: 1.75,
            reserved: 1.0,
        }
    }
}

impl TierMultipliers {
    /// `flex=0.5,priority=1.75`: named tiers change, the others keep their defaults.
    pub fn parse(text: &str) -> Result<TierMultipliers, String> {
        let mut m = TierMultipliers::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (tier, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected tier=multiplier"))?;
            let value: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("{part:?}: the multiplier must be a number, 0 or more"))?;
            match tier.trim() {
                "default" => m.default = value,
                "flex" => m.flex = value,
                "priority" => m.priority = value,
                "reserved" => m.reserved = value,
                other => {
                    return Err(format!(
                        "{other:?}: expected default, flex, priority or reserved"
                    ));
                }
            }
        }
        Ok(m)
    }

    pub fn for_tier(&self, tier: Option<&str>) -> f64 {
        match tier {
            Some("flex") => self.flex,
            Some("priority") => self.priority,
            Some("reserved") => self.reserved,
            _ => self.default,
        }
    }
}

/// Built-in list prices (USD/MTok), matched as substrings of the model id. Operators override
/// them (and price other models) through the pricing table; check them against your contract.
const BUILTIN: &[(&str, Price)] = &[
    ("claude-opus-4-5", Price::from_input_output(5.0, 25.0)),
    ("claude-opus-4", Price::from_input_output(15.0, 75.0)),
    ("claude-sonnet-4", Price::from_input_output(3.0, 15.0)),
    ("claude-3-7-sonnet", Price::from_input_output(3.0, 15.0)),
    ("claude-3-5-sonnet", Price::from_input_output(3.0, 15.0)),
    ("claude-haiku-4-5", Price::from_input_output(1.0, 5.0)),
    ("claude-3-5-haiku", Price::from_input_output(0.8, 4.0)),
    ("claude-3-haiku", Price::from_input_output(0.25, 1.25)),
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceEntry {
    pub model: String,
    #[serde(flatten)]
    pub price: Price,
    /// `table` (operator) or `builtin`.
    pub source: &'static str,
}

/// The prices in force: operator entries over built-ins, refreshed from the table.
pub struct PriceBook {
    overrides: RwLock<Vec<(String, Price)>>,
    pub multipliers: TierMultipliers,
}

/// Exact match on either name first, then the longest pattern contained in either.
fn find<'a>(
    entries: impl Iterator<Item = (&'a str, &'a Price)> + Clone,
    names: &[&str],
) -> Option<Price> {
    for name in names {
        if let Some((_, price)) = entries.clone().find(|(model, _)| model == name) {
            return Some(*price);
        }
    }
    entries
        .filter(|(model, _)| names.iter().any(|name| name.contains(model)))
        .max_by_key(|(model, _)| model.len())
        .map(|(_, price)| *price)
}

impl PriceBook {
    pub fn new(multipliers: TierMultipliers) -> PriceBook {
        PriceBook {
            overrides: RwLock::new(Vec::new()),
            multipliers,
        }
    }

    pub fn replace_overrides(&self, entries: Vec<(String, Price)>) {
        if let Ok(mut overrides) = self.overrides.write() {
            *overrides = entries;
        }
    }

    /// The price for a request, by its resolved (Bedrock) and requested model names.
    pub fn lookup(&self, resolved: &str, requested: &str) -> Option<Price> {
        let names = [resolved, requested];
        let from_table = self
            .overrides
            .read()
            .ok()
            .and_then(|o| find(o.iter().map(|(m, p)| (m.as_str(), p)), &names));
        from_table.or_else(|| find(BUILTIN.iter().map(|(m, p)| (*m, p)), &names))
    }

    /// Cost in nano-USD, or `None` when no price matches (the request is still recorded).
    pub fn cost(
        &self,
        resolved: &str,
        requested: &str,
        tier: Option<&str>,
        tokens: &Tokens,
    ) -> Option<u64> {
        let price = self.lookup(resolved, requested)?;
        Some(cost_nanos(&price, tokens, self.multipliers.for_tier(tier)))
    }

    /// Every price in force, operator entries first.
    pub fn entries(&self) -> Vec<PriceEntry> {
        let mut all: Vec<PriceEntry> = self
            .overrides
            .read()
            .map(|o| {
                o.iter()
                    .map(|(model, price)| PriceEntry {
                        model: model.clone(),
                        price: *price,
                        source: "table",
                    })
                    .collect()
            })
            .unwrap_or_default();
        all.extend(BUILTIN.iter().map(|(model, price)| PriceEntry {
            model: model.to_string(),
            price: *price,
            source: "builtin",
        }));
        all
    }
}

#[cfg(test)]
mod tests;
