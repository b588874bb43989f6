//! What the client sees, in Anthropic's words: `anthropic-ratelimit-*` headers on every answer,
//! and on refusal the 429 JSON error body with `retry-after`. Pure rendering, no I/O.

use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::json;

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
    for (kind, [limit, remaining, reset]) in [
        (
            Kind::Requests,
            [
                "anthropic-ratelimit-requests-limit",
                "anthropic-ratelimit-requests-remaining",
                "anthropic-ratelimit-requests-reset",
            ],
        ),
        (
            Kind::Tokens,
            [
                "anthropic-ratelimit-tokens-limit",
                "anthropic-ratelimit-tokens-remaining",
                "anthropic-ratelimit-tokens-reset",
            ],
        ),
    ] {
        let tightest = observed
            .iter()
            .filter(|o| o.limit.kind == kind && !o.shadow)
            .min_by_key(|o| (o.status.remaining, u64::MAX - o.status.reset_after_ms));
        if let Some(o) = tightest {
            headers.push((limit.to_owned(), o.limit.requests_per_unit.to_string()));
            headers.push((remaining.to_owned(), o.status.remaining.to_string()));
            headers.push((reset.to_owned(), rfc3339(now_ms + o.status.reset_after_ms)));
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
/// `YYYY-MM-DDTHH:MM:SSZ`, written by hand: two of these go into every answer, and a general
/// date formatter cost more than the rest of the headers together. Empty past year 9999.
fn rfc3339(at_ms: u64) -> String {
    let seconds = at_ms.div_ceil(1_000);
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    if year > 9_999 {
        return String::new();
    }
    let mut out = String::with_capacity(20);
    // `format!` with padded fields cost ten times these pushes.
    for (number, separator) in [
        (year / 100, ""),
        (year % 100, "-"),
        (month, "-"),
        (day, "T"),
        (of_day / 3_600, ":"),
        (of_day % 3_600 / 60, ":"),
        (of_day % 60, "Z"),
    ] {
        out.push(char::from(b'0' + (number / 10) as u8));
        out.push(char::from(b'0' + (number % 10) as u8));
        out.push_str(separator);
    }
    out
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, for days >= 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
