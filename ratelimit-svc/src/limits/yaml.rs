//! The YAML rule file: the subset of envoyproxy/ratelimit's format we accept (`domain`,
//! nested `descriptors` with `key`, `value`, `rate_limit {unit, requests_per_unit, unlimited,
//! name}`, `shadow_mode`), validated into descriptor trees. Fields outside it are errors, never
//! silently ignored: a limit an operator wrote but we dropped would be worse than a refusal to start.

use std::collections::HashMap;

use serde::Deserialize;

use super::{Branches, Node, RuleLimit, Unit};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitsError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("invalid YAML in document {document}: {message}")]
    Syntax { document: usize, message: String },
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainYaml {
    domain: Option<String>,
    #[serde(default)]
    descriptors: Vec<DescriptorYaml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DescriptorYaml {
    key: Option<String>,
    value: Option<String>,
    rate_limit: Option<RateLimitYaml>,
    #[serde(default)]
    descriptors: Vec<DescriptorYaml>,
    #[serde(default)]
    shadow_mode: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitYaml {
    unit: Option<String>,
    requests_per_unit: Option<u64>,
    #[serde(default)]
    unlimited: bool,
    name: Option<String>,
}

pub(super) fn parse(text: &str) -> Result<HashMap<String, Node>, LimitsError> {
    let mut domains = HashMap::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let document_number = index + 1;
        let value = serde_yaml::Value::deserialize(document).map_err(|e| LimitsError::Syntax {
            document: document_number,
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue; // an empty document, e.g. a trailing `---`
        }
        let parsed: DomainYaml =
            serde_yaml::from_value(value).map_err(|e| LimitsError::Syntax {
                document: document_number,
                message: e.to_string(),
            })?;
        let domain = parsed.domain.unwrap_or_default();
        if domain.is_empty() {
            return Err(invalid(
                format!("document {document_number}"),
                "domain must be set and non-empty",
            ));
        }
        let at = format!("domain {domain:?}");
        let root = Node {
            limit: None,
            shadow: false,
            children: build_children(&parsed.descriptors, &at)?,
        };
        if domains.insert(domain, root).is_some() {
            return Err(invalid(at, "domain is defined twice"));
        }
    }
    Ok(domains)
}

fn build_children(
    descriptors: &[DescriptorYaml],
    parent: &str,
) -> Result<HashMap<String, Branches>, LimitsError> {
    let mut children: HashMap<String, Branches> = HashMap::new();
    for (index, descriptor) in descriptors.iter().enumerate() {
        let key = descriptor.key.clone().unwrap_or_default();
        let at = format!(
            "{parent} > descriptors[{index}] (key {key:?}{})",
            descriptor
                .value
                .as_ref()
                .map(|v| format!(", value {v:?}"))
                .unwrap_or_default()
        );
        if key.is_empty() {
            return Err(invalid(at, "key must be set and non-empty"));
        }
        let node = Node {
            limit: descriptor
                .rate_limit
                .as_ref()
                .map(|r| rule_limit(r, &at))
                .transpose()?,
            shadow: descriptor.shadow_mode,
            children: build_children(&descriptor.descriptors, &at)?,
        };
        let branches = children.entry(key).or_default();
        let duplicate = match descriptor.value.as_deref() {
            None => branches.any.replace(node).is_some(),
            Some(value) => match value.strip_suffix('*') {
                Some(prefix) if !prefix.contains('*') => {
                    let taken = branches.by_prefix.iter().any(|(p, _)| p == prefix);
                    branches.by_prefix.push((prefix.to_owned(), node));
                    taken
                }
                _ if value.contains('*') => {
                    return Err(invalid(
                        at,
                        "a wildcard `*` is only allowed at the end of value",
                    ));
                }
                _ => branches.by_value.insert(value.to_owned(), node).is_some(),
            },
        };
        if duplicate {
            return Err(invalid(
                at,
                "duplicate descriptor (same key and value at this level)",
            ));
        }
    }
    Ok(children)
}

fn rule_limit(yaml: &RateLimitYaml, at: &str) -> Result<RuleLimit, LimitsError> {
    if yaml.unlimited {
        if yaml.unit.is_some() || yaml.requests_per_unit.is_some() {
            return Err(invalid(
                at.to_owned(),
                "rate_limit: unlimited cannot be combined with unit or requests_per_unit",
            ));
        }
        return Ok(RuleLimit::Unlimited);
    }
    let unit_text = yaml.unit.as_deref().unwrap_or_default();
    let unit = Unit::parse(unit_text).ok_or_else(|| {
        invalid(
            at.to_owned(),
            format!(
                "rate_limit: unit {unit_text:?} is not one of second, minute, hour, day, week, month, year"
            ),
        )
    })?;
    match yaml.requests_per_unit {
        Some(requests_per_unit) if requests_per_unit > 0 => Ok(RuleLimit::Limited {
            requests_per_unit,
            unit,
            name: yaml.name.clone(),
        }),
        _ => Err(invalid(
            at.to_owned(),
            "rate_limit: requests_per_unit must be a whole number above 0 (or use unlimited: true)",
        )),
    }
}

fn invalid(at: String, message: impl Into<String>) -> LimitsError {
    LimitsError::Invalid {
        at,
        message: message.into(),
    }
}
