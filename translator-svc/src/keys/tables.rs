//! Table names (one prefix for all) and the item layout every store in this crate shares. The
//! same layout is documented for infrastructure-as-code in `docs/dynamodb.md`.

/// Partition key attribute of every table; `sk` is the sort key of the usage table.
pub const PK: &str = "pk";
pub const SK: &str = "sk";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// Key records (`key#<id>`) and hash pointers (`hash#<sha256>`).
    pub keys: String,
    /// Per-request usage items, monthly key counters and daily aggregates.
    pub usage: String,
    /// Per-model prices (`pk` = model name or pattern).
    pub pricing: String,
    /// Run-time model mapping entries (`pk` = the model name clients send).
    pub models: String,
}

impl TableNames {
    pub fn with_prefix(prefix: &str) -> TableNames {
        TableNames {
            keys: format!("{prefix}keys"),
            usage: format!("{prefix}usage"),
            pricing: format!("{prefix}pricing"),
            models: format!("{prefix}models"),
        }
    }

    /// `(name, has sort key)` for every table.
    pub fn all(&self) -> [(&str, bool); 4] {
        [
            (&self.keys, false),
            (&self.usage, true),
            (&self.pricing, false),
            (&self.models, false),
        ]
    }
}

pub fn key_pk(key_id: &str) -> String {
    format!("key#{key_id}")
}

/// A portal sign-in session (keys table), by the SHA-256 of its id.
pub fn session_pk(id_hash: &str) -> String {
    format!("session#{id_hash}")
}

pub fn hash_pk(hash: &str) -> String {
    format!("hash#{hash}")
}

/// Usage partition of one key (requests and monthly counters).
pub fn usage_pk(key_id: &str) -> String {
    format!("key#{key_id}")
}

/// Unique per request: time first (range queries), then the request id (two requests in the same
/// millisecond never collide).
pub fn request_sk(time_rfc3339: &str, request_id: &str) -> String {
    format!("req#{time_rfc3339}#{request_id}")
}

pub fn month_sk(month: &str) -> String {
    format!("month#{month}")
}

/// Daily aggregate partition: every key and model that had traffic on `day` (`YYYY-MM-DD`).
pub fn day_pk(day: &str) -> String {
    format!("day#{day}")
}

pub fn day_sk(key_id: &str, model: &str) -> String {
    format!("key#{key_id}#model#{model}")
}
