//! The translator's metric catalogue: help texts, the counters that start at zero (so a
//! dashboard shows 0, not "no data", and `rate()` sees the first increment), and the small
//! recording helpers the key store uses. docs/observability.md lists every name and label.

use crate::auth::{Denial, Verdict};
use crate::keys::item::StoreError;

pub const AUTH_CACHE: &str = "translator_auth_cache_lookups_total";
pub const AUTH_CHECKS: &str = "translator_auth_checks_total";
pub const USAGE_WRITES: &str = "translator_usage_writes_total";
pub const USAGE_WRITE_RETRIES: &str = "translator_usage_write_retries_total";

/// Help texts, and zero for every counter whose label values are known in advance.
pub fn describe() {
    use metrics::{describe_counter, describe_histogram};
    for (name, help) in [
        (
            crate::api::HTTP_REQUESTS,
            "HTTP responses by route template, method, status, model and Anthropic error type",
        ),
        (
            "translator_requests_total",
            "Messages requests sent on to Bedrock, by model, API and stream",
        ),
        (
            "translator_tokens_total",
            "Tokens by model and kind (input, output, cache_read, cache_write)",
        ),
        (
            "translator_errors_total",
            "Error responses by Anthropic error type",
        ),
        (
            crate::bedrock::timed::ERRORS,
            "Failed Bedrock calls and mid-stream exceptions, by operation and exception",
        ),
        (
            AUTH_CACHE,
            "Key cache lookups by cache (verdict: Auth/Check, policy: request path) and result",
        ),
        (AUTH_CHECKS, "Auth/Check verdicts by result"),
        (USAGE_WRITES, "Usage records by final result"),
        (
            USAGE_WRITE_RETRIES,
            "Usage write attempts that were retried",
        ),
        (
            "translator_usage_unpriced_total",
            "Usage records of models without a price",
        ),
        (
            "translator_overloaded_total",
            "Requests refused at the concurrency limit",
        ),
        (
            "translator_service_tier_fallback_total",
            "Calls retried on the default tier after a model rejected the tier",
        ),
        (
            "translator_service_tier_served_total",
            "Answered calls by the tier asked for and the tier Bedrock reports running (the one billed)",
        ),
        (
            "translator_disconnect_token_charges_total",
            "Token charges sent to ratelimit-svc directly (abandoned streams, PTC rounds Envoy cannot charge), by result",
        ),
        (
            "translator_client_disconnects_total",
            "Streams the client abandoned (the Bedrock call is cancelled)",
        ),
    ] {
        describe_counter!(name, help);
    }
    for (name, help) in [
        (
            crate::api::HTTP_DURATION,
            "Time to the response head, by route template and method",
        ),
        (
            "translator_request_duration_seconds",
            "Whole Messages request (streams: until the last event), by model, API, stream and outcome",
        ),
        (
            "translator_time_to_first_token_seconds",
            "Time to the first content token, by model and API",
        ),
        (
            crate::bedrock::timed::CALL_DURATION,
            "Bedrock call latency (streams: until the response headers), by operation and outcome",
        ),
    ] {
        describe_histogram!(name, help);
    }
    for cache in ["verdict", "policy"] {
        for result in ["hit", "miss"] {
            metrics::counter!(AUTH_CACHE, "cache" => cache, "result" => result).increment(0);
        }
    }
    for result in ["allowed", "invalid_key", "not_permitted", "error"] {
        metrics::counter!(AUTH_CHECKS, "result" => result).increment(0);
    }
    for result in ["ok", "duplicate", "failed", "dropped"] {
        metrics::counter!(USAGE_WRITES, "result" => result).increment(0);
    }
    for result in ["ok", "error"] {
        metrics::counter!("translator_disconnect_token_charges_total", "result" => result)
            .increment(0);
    }
    // Each tier a key can ask for, run as asked or overflowed to the standard tier.
    for requested in ["flex", "priority", "reserved"] {
        for served in [requested, "default"] {
            metrics::counter!("translator_service_tier_served_total",
                "requested" => requested, "served" => served)
            .increment(0);
        }
    }
    for name in [
        USAGE_WRITE_RETRIES,
        "translator_overloaded_total",
        "translator_service_tier_fallback_total",
        "translator_client_disconnects_total",
    ] {
        metrics::counter!(name).increment(0);
    }
}

/// One lookup in a key cache (`verdict` for Auth/Check, `policy` on the request path).
pub fn auth_cache(cache: &'static str, hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!(AUTH_CACHE, "cache" => cache, "result" => result).increment(1);
}

/// One Auth/Check answer.
pub fn auth_check(result: &Result<Verdict, StoreError>) {
    let label = match result {
        Ok(Verdict::Allowed(_)) => "allowed",
        Ok(Verdict::Denied(Denial::InvalidKey)) => "invalid_key",
        Ok(Verdict::Denied(Denial::NotPermitted(_))) => "not_permitted",
        Err(_) => "error",
    };
    metrics::counter!(AUTH_CHECKS, "result" => label).increment(1);
}
