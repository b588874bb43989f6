//! The model table and model resolution (spec 6): built-in defaults plus operator entries, the
//! routing decision (family, backend, capabilities) taken from the resolved id, never from the
//! requested string. Pure: no I/O; the operator table is loaded elsewhere and passed in.

mod builtin;
pub mod capabilities;
pub mod family;
pub mod naming;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

pub use capabilities::{Capabilities, CapabilityOverrides, CountTokensMode, ThinkingSupport};
pub use family::{ClaudeTier, ClaudeVersion, Family, parse_claude_version};

/// Which Bedrock API serves a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// InvokeModel with a near-native Anthropic body (Claude only).
    Invoke,
    /// Converse with a fully converted body (every model).
    Converse,
}

impl Backend {
    /// Default per family (spec 6.3): Invoke for Claude, Converse for everything else.
    pub fn default_for(family: Family) -> Backend {
        if family == Family::Claude {
            Backend::Invoke
        } else {
            Backend::Converse
        }
    }
}

/// One row of the model table (spec 6.3). Built-ins and operator entries share this shape.
/// Deserializing fills what the operator left out: family from the id, backend from the family,
/// capabilities from the family with the operator's overrides applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "EntryConfig")]
pub struct ModelEntry {
    pub key: String,
    pub bedrock_id: String,
    pub family: Family,
    pub backend: Backend,
    pub display_name: String,
    /// RFC 3339 UTC.
    pub created_at: Option<String>,
    pub listed: bool,
    pub max_output_tokens: Option<u32>,
    /// Model id for CountTokens when it differs from the geo-stripped resolved id.
    pub count_tokens_id: Option<String>,
    /// The model needs `context-1m-2025-08-07` for its 1M context window.
    pub needs_context_1m: bool,
    pub capabilities: Capabilities,
    /// The operator chose `backend` for this entry; `CLAUDE_API` does not change it.
    #[serde(skip)]
    pub backend_overridden: bool,
}

/// The operator-facing form of an entry: everything but `key` and `bedrock_id` is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryConfig {
    key: String,
    bedrock_id: String,
    family: Option<Family>,
    backend: Option<Backend>,
    display_name: Option<String>,
    created_at: Option<String>,
    listed: Option<bool>,
    max_output_tokens: Option<u32>,
    count_tokens_id: Option<String>,
    #[serde(default)]
    needs_context_1m: bool,
    #[serde(default)]
    capabilities: CapabilityOverrides,
}

impl From<EntryConfig> for ModelEntry {
    fn from(c: EntryConfig) -> Self {
        let family = c.family.unwrap_or_else(|| Family::detect(&c.bedrock_id));
        let mut entry = ModelEntry::with_family(&c.key, &c.bedrock_id, family);
        entry.capabilities = entry.capabilities.with_overrides(&c.capabilities);
        if let Some(backend) = c.backend {
            entry.backend = backend;
            entry.backend_overridden = true;
        }
        if let Some(name) = c.display_name {
            entry.display_name = name;
        }
        if c.created_at.is_some() {
            entry.created_at = c.created_at;
        }
        // Operators add entries to be seen; an alias can opt out with `listed: false`.
        entry.listed = c.listed.unwrap_or(true);
        entry.max_output_tokens = c.max_output_tokens;
        entry.count_tokens_id = c.count_tokens_id;
        entry.needs_context_1m = c.needs_context_1m;
        entry
    }
}

impl ModelEntry {
    /// An entry with every field derived from the key and the id (family detected from the id).
    pub fn derived(key: &str, bedrock_id: &str) -> ModelEntry {
        ModelEntry::with_family(key, bedrock_id, Family::detect(bedrock_id))
    }

    fn with_family(key: &str, bedrock_id: &str, family: Family) -> ModelEntry {
        ModelEntry {
            key: key.to_string(),
            bedrock_id: bedrock_id.to_string(),
            family,
            backend: Backend::default_for(family),
            display_name: naming::display_name(key),
            created_at: naming::created_at_from(&[key, bedrock_id]),
            listed: false,
            max_output_tokens: None,
            count_tokens_id: None,
            needs_context_1m: false,
            capabilities: Capabilities::derive(family, bedrock_id),
            backend_overridden: false,
        }
    }
}

/// The routing decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Exactly what the client sent (echoed in responses).
    pub requested_model: String,
    /// Bedrock model id, inference profile id or ARN used in the URL.
    pub resolved_id: String,
    pub entry: ModelEntry,
    /// The client asked for the 1M context window (`[1m]` suffix).
    pub context_1m: bool,
}

impl Route {
    pub fn family(&self) -> Family {
        self.entry.family
    }

    pub fn backend(&self) -> Backend {
        self.entry.backend
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.entry.capabilities
    }

    pub fn is_claude(&self) -> bool {
        self.entry.family == Family::Claude
    }
}

/// Built-in defaults plus operator entries, and the resolution order of spec 6.1.
#[derive(Debug, Clone)]
pub struct ModelTable {
    operator: Vec<ModelEntry>,
    builtin: Vec<ModelEntry>,
    default_profile: String,
    derive_claude_ids: bool,
    /// `CLAUDE_API`: the backend of Claude entries that do not choose their own.
    claude_backend: Backend,
}

impl ModelTable {
    /// The spec 6.2 table for `default_profile` (`global`, `us`, `eu`, `jp`, `apac`).
    pub fn builtin(default_profile: &str, derive_claude_ids: bool) -> Self {
        ModelTable {
            operator: Vec::new(),
            builtin: builtin::entries(default_profile),
            default_profile: default_profile.to_string(),
            derive_claude_ids,
            claude_backend: Backend::Invoke,
        }
    }

    /// Serves Claude through `backend` (`CLAUDE_API`), except entries with their own `backend`.
    pub fn with_claude_backend(mut self, backend: Backend) -> Self {
        self.claude_backend = backend;
        self
    }

    /// Replaces the operator entries; they are matched before the built-ins.
    pub fn with_overrides(mut self, entries: Vec<ModelEntry>) -> Self {
        self.operator = entries;
        self
    }

    fn entries(&self) -> impl Iterator<Item = &ModelEntry> {
        self.operator.iter().chain(self.builtin.iter())
    }

    fn by_key(&self, key: &str) -> Option<&ModelEntry> {
        self.entries().find(|e| e.key == key)
    }

    /// The entry for a Bedrock id: exact id first, then the same model under another geo prefix
    /// (so `us.anthropic...` keeps the built-in's limits), else one derived from the id itself.
    fn for_bedrock_id(&self, name: &str, id: &str) -> ModelEntry {
        if let Some(e) = self.entries().find(|e| e.bedrock_id == id) {
            return e.clone();
        }
        let bare = naming::strip_geo_prefix(id);
        let same_model = (!naming::is_arn(id))
            .then(|| {
                self.entries()
                    .find(|e| naming::strip_geo_prefix(&e.bedrock_id) == bare)
            })
            .flatten();
        match same_model {
            Some(e) => ModelEntry {
                key: name.to_string(),
                bedrock_id: id.to_string(),
                listed: false,
                ..e.clone()
            },
            None => ModelEntry::derived(name, id),
        }
    }

    /// Resolves a requested model name (spec 6.1). Unknown names are a 404 without a Bedrock call.
    pub fn resolve(&self, requested: &str) -> Result<Route, ApiError> {
        let (name, context_1m) = naming::strip_context_1m(requested);
        let entry = if let Some(e) = self.by_key(name) {
            Some(e.clone())
        } else if naming::is_bedrock_shaped(name) {
            Some(self.for_bedrock_id(name, name))
        } else if self.derive_claude_ids {
            naming::derive_claude_id(name, &self.default_profile)
                .map(|id| self.for_bedrock_id(name, &id))
        } else {
            None
        };
        let mut entry =
            entry.ok_or_else(|| ApiError::not_found(format!("model: {requested} not found")))?;
        if entry.family == Family::Claude && !entry.backend_overridden {
            entry.backend = self.claude_backend;
        }
        Ok(Route {
            requested_model: requested.to_string(),
            resolved_id: entry.bedrock_id.clone(),
            entry,
            context_1m,
        })
    }

    /// Entries for `GET /v1/models`: listed keys, operator entries shadowing built-ins by key.
    pub fn listed(&self) -> Vec<&ModelEntry> {
        let mut out: Vec<&ModelEntry> = Vec::new();
        for e in self.entries() {
            if !out.iter().any(|seen| seen.key == e.key) {
                out.push(e);
            }
        }
        out.retain(|e| e.listed);
        out
    }

    /// The built-in names that resolve to the same Bedrock model as the built-in `key` without
    /// being listed themselves (`claude-sonnet-4-5` for `claude-sonnet-4-5-20250929`), so an
    /// operator can see every name a client may send.
    pub fn builtin_aliases(&self, key: &str) -> Vec<&str> {
        let Some(canonical) = self.builtin.iter().find(|e| e.key == key) else {
            return Vec::new();
        };
        self.builtin
            .iter()
            .filter(|e| !e.listed && e.key != key && e.bedrock_id == canonical.bedrock_id)
            .map(|e| e.key.as_str())
            .collect()
    }

    /// One entry for `GET /v1/models/{id}`: by key or alias, by Bedrock id, or by the derive rule.
    pub fn lookup(&self, id_or_alias: &str) -> Option<ModelEntry> {
        if let Some(e) = self.by_key(id_or_alias) {
            return Some(e.clone());
        }
        if let Some(e) = self.entries().find(|e| e.bedrock_id == id_or_alias) {
            return Some(e.clone());
        }
        if !self.derive_claude_ids {
            return None;
        }
        naming::derive_claude_id(id_or_alias, &self.default_profile)
            .map(|id| self.for_bedrock_id(id_or_alias, &id))
    }
}

#[cfg(test)]
mod tests;
