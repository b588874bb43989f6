//! Which limit applies to a descriptor: rules from the YAML file (a subset of envoyproxy/ratelimit's
//! format), else a per-key limit carried in the descriptor itself (`rpm` / `tpm` entries set by the
//! gateway filter from the key record). Pure lookup: no storage, no time.

mod yaml;

use std::collections::HashMap;
use std::path::Path;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

pub use yaml::LimitsError;

/// Entry key whose value is the key's requests-per-minute limit (0 = unlimited).
pub const RPM_KEY: &str = "rpm";
/// Entry key whose value is the key's tokens-per-minute limit (0 = unlimited).
pub const TPM_KEY: &str = "tpm";

/// Units of envoyproxy/ratelimit (month = 30 days, year = 365 days, as there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    pub fn period_ms(self) -> u64 {
        const SECOND: u64 = 1_000;
        const DAY: u64 = 86_400 * SECOND;
        match self {
            Self::Second => SECOND,
            Self::Minute => 60 * SECOND,
            Self::Hour => 3_600 * SECOND,
            Self::Day => DAY,
            Self::Week => 7 * DAY,
            Self::Month => 30 * DAY,
            Self::Year => 365 * DAY,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Year => "year",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Second,
            Self::Minute,
            Self::Hour,
            Self::Day,
            Self::Week,
            Self::Month,
            Self::Year,
        ]
        .into_iter()
        .find(|unit| unit.name().eq_ignore_ascii_case(text))
    }
}

/// What a limit counts. Tokens are charged after the fact and may go into debt; they feed the
/// `anthropic-ratelimit-tokens-*` headers, everything else the `-requests-*` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Requests,
    Tokens,
}

/// Where a limit came from (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Rule,
    PerKey,
    Override,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Self::Rule => "rule",
            Self::PerKey => "per_key",
            Self::Override => "override",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub requests_per_unit: u64,
    pub unit: Unit,
    pub name: Option<String>,
    pub kind: Kind,
}

/// A limit bound to the bucket that counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub limit: Limit,
    pub shadow: bool,
    /// Store key: domain plus every entry. A per-key limit leaves out its own value so that
    /// changing a key's limit keeps its history instead of starting a fresh bucket.
    pub bucket: String,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Limited(Resolved),
    Unlimited,
    /// No rule and no per-key entry: Envoy's convention is to allow.
    NoRule,
    /// A per-key entry whose value is not a number: allowed (a filter bug must not take the
    /// gateway down) but logged and counted.
    Invalid(String),
}

/// A limit as written in a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RuleLimit {
    Limited {
        requests_per_unit: u64,
        unit: Unit,
        name: Option<String>,
    },
    Unlimited,
}

/// One level of a domain's descriptor tree.
#[derive(Debug, Default, Clone)]
struct Node {
    limit: Option<RuleLimit>,
    shadow: bool,
    children: HashMap<String, Branches>,
}

/// The children of a node that share one entry key.
#[derive(Debug, Default, Clone)]
struct Branches {
    by_value: HashMap<String, Node>,
    /// `value: "prefix*"`, tried in file order after an exact value.
    by_prefix: Vec<(String, Node)>,
    /// No `value`: any value, each value counted in its own bucket.
    any: Option<Node>,
}

impl Branches {
    fn find(&self, value: &str) -> Option<&Node> {
        self.by_value
            .get(value)
            .or_else(|| {
                self.by_prefix
                    .iter()
                    .find(|(prefix, _)| value.starts_with(prefix.as_str()))
                    .map(|(_, node)| node)
            })
            .or(self.any.as_ref())
    }
}

/// All rules, by domain.
#[derive(Debug, Default, Clone)]
pub struct Rules {
    domains: HashMap<String, Node>,
}

impl Rules {
    /// No YAML rules: only per-key limits apply.
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn load(path: &Path) -> Result<Self, LimitsError> {
        let text = std::fs::read_to_string(path).map_err(|e| LimitsError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_yaml(&text)
    }

    /// Parses one or more YAML documents, one domain each.
    pub fn from_yaml(text: &str) -> Result<Self, LimitsError> {
        yaml::parse(text).map(|domains| Self { domains })
    }

    pub fn domain_count(&self) -> usize {
        self.domains.len()
    }

    /// The limit for one descriptor. Precedence: an explicit `limit` override sent by Envoy,
    /// then the most specific YAML rule, then a trailing `rpm`/`tpm` entry.
    pub fn resolve(
        &self,
        domain: &str,
        entries: &[(&str, &str)],
        limit_override: Option<(u64, Unit)>,
    ) -> Resolution {
        if let Some((requests_per_unit, unit)) = limit_override {
            if requests_per_unit == 0 {
                return Resolution::Unlimited;
            }
            let suffix = format!("|@{requests_per_unit}/{}", unit.name());
            return Resolution::Limited(Resolved {
                limit: Limit {
                    requests_per_unit,
                    unit,
                    name: None,
                    kind: Kind::Requests,
                },
                shadow: false,
                bucket: bucket_key(domain, entries, false) + &suffix,
                source: Source::Override,
            });
        }
        match self.match_rule(domain, entries) {
            Some(resolution) => resolution,
            None => per_key(domain, entries),
        }
    }

    fn match_rule(&self, domain: &str, entries: &[(&str, &str)]) -> Option<Resolution> {
        let mut node = self.domains.get(domain)?;
        for (key, value) in entries {
            node = node.children.get(*key)?.find(value)?;
        }
        Some(match node.limit.as_ref()? {
            RuleLimit::Unlimited => Resolution::Unlimited,
            RuleLimit::Limited {
                requests_per_unit,
                unit,
                name,
            } => Resolution::Limited(Resolved {
                limit: Limit {
                    requests_per_unit: *requests_per_unit,
                    unit: *unit,
                    name: name.clone(),
                    kind: Kind::Requests,
                },
                shadow: node.shadow,
                bucket: bucket_key(domain, entries, false),
                source: Source::Rule,
            }),
        })
    }
}

fn per_key(domain: &str, entries: &[(&str, &str)]) -> Resolution {
    let Some((key, value)) = entries.last() else {
        return Resolution::NoRule;
    };
    let kind = match *key {
        RPM_KEY => Kind::Requests,
        TPM_KEY => Kind::Tokens,
        _ => return Resolution::NoRule,
    };
    match value.trim().parse::<u64>() {
        Ok(0) => Resolution::Unlimited,
        Ok(requests_per_unit) => Resolution::Limited(Resolved {
            limit: Limit {
                requests_per_unit,
                unit: Unit::Minute,
                name: None,
                kind,
            },
            shadow: false,
            bucket: bucket_key(domain, entries, true),
            source: Source::PerKey,
        }),
        Err(_) => Resolution::Invalid(format!("{key} value {value:?} is not a whole number")),
    }
}

/// Characters escaped in keys and values so that no value can forge another bucket's name.
const KEY_ESCAPES: &AsciiSet = &CONTROLS.add(b'|').add(b'=').add(b'%').add(b' ');

/// `rl|<domain>|<key>=<value>|...`; with `drop_last_value`, the last entry is just `|<key>`.
fn bucket_key(domain: &str, entries: &[(&str, &str)], drop_last_value: bool) -> String {
    let length = entries
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum::<usize>();
    let mut out = String::with_capacity(3 + domain.len() + length);
    out.push_str("rl|");
    push_escaped(&mut out, domain);
    for (i, (key, value)) in entries.iter().enumerate() {
        out.push('|');
        push_escaped(&mut out, key);
        if !(drop_last_value && i + 1 == entries.len()) {
            out.push('=');
            push_escaped(&mut out, value);
        }
    }
    out
}

/// Keys and values almost never need escaping: copy those whole instead of char by char.
fn push_escaped(out: &mut String, text: &str) {
    let plain = |b: &u8| b.is_ascii_graphic() && !matches!(b, b'|' | b'=' | b'%');
    if text.as_bytes().iter().all(plain) {
        out.push_str(text);
    } else {
        out.extend(utf8_percent_encode(text, KEY_ESCAPES));
    }
}

#[cfg(test)]
mod tests;
