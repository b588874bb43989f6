use super::*;
use crate::limits::Unit;

fn limit(kind: Kind, n: u64) -> Limit {
    Limit {
        requests_per_unit: n,
        unit: Unit::Minute,
        name: None,
        kind,
    }
}

fn observed(limit: &Limit, remaining: u64, reset_ms: u64, retry_ms: Option<u64>) -> Observed<'_> {
    Observed {
        limit,
        status: Status {
            remaining,
            reset_after_ms: reset_ms,
            retry_after_ms: retry_ms,
        },
        refused: retry_ms.is_some(),
        shadow: false,
    }
}

fn get<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

// 2026-01-01T00:00:00Z
const NOW_MS: u64 = 1_767_225_600_000;

#[test]
fn headers_for_both_kinds_with_rfc3339_reset_rounded_up() {
    let rpm = limit(Kind::Requests, 50);
    let tpm = limit(Kind::Tokens, 1000);
    let headers = ratelimit_headers(
        NOW_MS,
        &[
            observed(&rpm, 49, 1_200, None),
            observed(&tpm, 1000, 0, None),
        ],
    );
    assert_eq!(
        get(&headers, "anthropic-ratelimit-requests-limit"),
        Some("50")
    );
    assert_eq!(
        get(&headers, "anthropic-ratelimit-requests-remaining"),
        Some("49")
    );
    assert_eq!(
        get(&headers, "anthropic-ratelimit-requests-reset"),
        Some("2026-01-01T00:00:02Z")
    );
    assert_eq!(
        get(&headers, "anthropic-ratelimit-tokens-limit"),
        Some("1000")
    );
    assert_eq!(
        get(&headers, "anthropic-ratelimit-tokens-reset"),
        Some("2026-01-01T00:00:00Z")
    );
    assert_eq!(headers.len(), 6);
}

#[test]
fn the_tightest_limit_of_a_kind_is_advertised_and_shadow_ones_are_not() {
    let key = limit(Kind::Requests, 50);
    let tier = limit(Kind::Requests, 100);
    let mut shadow = observed(&tier, 0, 60_000, Some(100));
    shadow.shadow = true;
    shadow.refused = false;
    let headers = ratelimit_headers(
        NOW_MS,
        &[
            observed(&key, 10, 1_000, None),
            observed(&tier, 3, 500, None),
            shadow,
        ],
    );
    assert_eq!(
        get(&headers, "anthropic-ratelimit-requests-limit"),
        Some("100")
    );
    assert_eq!(
        get(&headers, "anthropic-ratelimit-requests-remaining"),
        Some("3")
    );
    assert_eq!(get(&headers, "anthropic-ratelimit-tokens-limit"), None);
}

#[test]
fn no_limited_descriptor_means_no_headers() {
    assert!(ratelimit_headers(NOW_MS, &[]).is_empty());
}

#[test]
fn a_429_body_is_the_anthropic_error_shape_with_retry_after() {
    let rpm = limit(Kind::Requests, 50);
    let tpm = limit(Kind::Tokens, 1000);
    let (headers, body) = over_limit(
        &[
            observed(&rpm, 0, 60_000, Some(1_200)),
            observed(&tpm, 0, 90_000, Some(30_060)),
        ],
        "req_abc",
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["type"], "error");
    assert_eq!(json["error"]["type"], "rate_limit_error");
    assert_eq!(json["request_id"], "req_abc");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("1000 tokens per minute"), "{message}");
    assert!(message.contains("Retry after 31 seconds"), "{message}");
    assert_eq!(get(&headers, "retry-after"), Some("31"));
    assert_eq!(get(&headers, "content-type"), Some("application/json"));
    assert_eq!(get(&headers, "request-id"), Some("req_abc"));
}

#[test]
fn retry_after_is_at_least_one_second_and_named_limits_are_named() {
    let mut named = limit(Kind::Requests, 100);
    named.name = Some("free-tier".to_owned());
    let (headers, body) = over_limit(&[observed(&named, 0, 600, Some(5))], "req_x");
    assert_eq!(get(&headers, "retry-after"), Some("1"));
    assert!(
        body.contains(r#"the rate limit \"free-tier\" of 100 requests per minute"#),
        "{body}"
    );
}

#[test]
fn store_unavailable_is_a_rate_limit_error_too() {
    let (headers, body) = store_unavailable("req_y");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["type"], "rate_limit_error");
    assert_eq!(get(&headers, "retry-after"), Some("1"));
}

#[test]
fn request_ids_have_the_gateway_format() {
    let id = new_request_id();
    assert_eq!(id.len(), 28);
    assert!(id.starts_with("req_"));
    assert!(id[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(id, new_request_id());
}

#[test]
fn rfc3339_matches_a_general_formatter_across_calendar_edges() {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let expected = |seconds: u64| {
        OffsetDateTime::from_unix_timestamp(seconds as i64)
            .unwrap()
            .format(&Rfc3339)
            .unwrap()
    };
    // Epoch, leap days (2000, 2024), a non-leap century year (2100), year ends, and a stride
    // through four centuries.
    let mut seconds: Vec<u64> = vec![
        0,
        59,
        86_399,
        86_400,
        951_782_400,
        951_868_799,
        1_709_164_800,
        1_735_689_599,
        1_735_689_600,
        4_107_456_000,
        4_107_542_399,
        253_402_300_799,
    ];
    seconds.extend((0..200_000u64).map(|i| i * 63_113 + i % 86_400));
    for s in seconds {
        assert_eq!(rfc3339(s * 1_000), expected(s), "{s}");
    }
    // Rounded up to the next whole second.
    assert_eq!(rfc3339(1_001), expected(2));
    assert_eq!(rfc3339(253_402_300_800_000), "", "past year 9999");
}
