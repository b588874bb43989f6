//! What the client sees, in Anthropic's words: `anthropic-ratelimit-*` headers on every answer,
//! and on refusal the 429 JSON error body with `retry-after`. Pure rendering, no I/O.

use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::limiter::Status;
use crate::limits::{Kind, Limit};

/// One limited descriptor as the client should learn about it.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    pub limit: &'a Limit,
    pub status: Status,
    /// Refused and enforced (not shadow).
    pub refused: bool,
    pub shadow: bool,
}

pub type Headers = Vec<(String, String)>;

/// `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` from the most constraining
/// descriptor of each kind (fewest remaining). Shadow limits are not advertised.
pub fn ratelimit_headers(now_ms: u64, observed: &[Observed<'_>]) -> Headers {
    let mut headers = Headers::new();
    for (kind, prefix) in [
        (Kind::Requests, "anthropic-ratelimit-requests"),
        (Kind::Tokens, "anthropic-ratelimit-tokens"),
    ] {
        let tightest = observed
            .iter()
            .filter(|o| o.limit.kind == kind && !o.shadow)
            .min_by_key(|o| (o.status.remaining, u64::MAX - o.status.reset_after_ms));
        if let Some(o) = tightest {
            headers.push((
                format!("{prefix}-limit"),
                o.limit.requests_per_unit.to_string(),
            ));
            headers.push((
                format!("{prefix}-remaining"),
                o.status.remaining.to_string(),
            ));
            headers.push((
                format!("{prefix}-reset"),
                rfc3339(now_ms + o.status.reset_after_ms),
            ));
        }
    }
    headers
}

/// The body and extra headers of a 429 for the refused descriptor that waits longest.
pub fn over_limit(observed: &[Observed<'_>], request_id: &str) -> (Headers, String) {
    let worst = observed
        .iter()
        .filter(|o| o.refused)
        .max_by_key(|o| o.status.retry_after_ms.unwrap_or(0));
    let retry_after_s = worst
        .and_then(|o| o.status.retry_after_ms)
        .map_or(1, |ms| ms.div_ceil(1_000).max(1));
    let message = match worst {
        Some(o) => refusal_message(o.limit, retry_after_s),
        None => "This request would exceed a rate limit.".to_owned(),
    };
    rate_limit_error(&message, retry_after_s, request_id)
}

/// Fail-closed answer while the counter store is unreachable.
pub fn store_unavailable(request_id: &str) -> (Headers, String) {
    rate_limit_error(
        "Rate limits cannot be checked right now, so this request was not admitted. Retry shortly.",
        1,
        request_id,
    )
}

fn refusal_message(limit: &Limit, retry_after_s: u64) -> String {
    let owner = match &limit.name {
        Some(name) => format!("the rate limit {name:?}"),
        None => "this API key's rate limit".to_owned(),
    };
    let what = match limit.kind {
        Kind::Requests => "requests",
        Kind::Tokens => "tokens",
    };
    let spent = match limit.kind {
        Kind::Tokens => " (the token budget is spent)",
        Kind::Requests => "",
    };
    format!(
        "This request would exceed {owner} of {} {what} per {}{spent}. Retry after {retry_after_s} seconds.",
        limit.requests_per_unit,
        limit.unit.name()
    )
}

fn rate_limit_error(message: &str, retry_after_s: u64, request_id: &str) -> (Headers, String) {
    let body = json!({
        "type": "error",
        "error": {"type": "rate_limit_error", "message": message},
        "request_id": request_id,
    })
    .to_string();
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("retry-after".to_owned(), retry_after_s.to_string()),
        ("request-id".to_owned(), request_id.to_owned()),
        // Both Anthropic SDKs honour this before their status heuristics.
        ("x-should-retry".to_owned(), "true".to_owned()),
    ];
    (headers, body)
}

/// `req_` + 24 base62 characters, the gateway's request id format.
pub fn new_request_id() -> String {
    let suffix: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("req_{suffix}")
}

/// Whole seconds, rounded up: a reset time must never be earlier than the real one.
fn rfc3339(at_ms: u64) -> String {
    let seconds = i64::try_from(at_ms.div_ceil(1_000)).unwrap_or(i64::MAX);
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
