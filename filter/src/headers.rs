//! Header names the gate reads and writes, and header hygiene (which client headers must go).
//! Names are lowercase, as Envoy presents them.

/// Prefix of every internal header; clients may never send one.
pub const INTERNAL_PREFIX: &str = "x-gw-";

/// Gateway request id (`req_` + 24 base62), echoed by the translator as `request-id`.
pub const REQUEST_ID: &str = "x-gw-request-id";
/// Non-secret key identifier (rate-limit descriptor, usage records).
pub const KEY_ID: &str = "x-gw-key-id";
/// Service tier of the key: default | flex | priority | reserved.
pub const TIER: &str = "x-gw-tier";
/// Requested model from the body (messages endpoints only).
pub const MODEL: &str = "x-gw-model";
/// `true` when the body asks for SSE (messages endpoints only).
pub const STREAM: &str = "x-gw-stream";
/// Per-key requests-per-minute limit for the rate limiter (0 = unlimited).
pub const RPM: &str = "x-gw-rpm";
/// Per-key tokens-per-minute limit for the rate limiter (0 = unlimited).
pub const TPM: &str = "x-gw-tpm";
/// Set on the request right before the gate sends its own local reply, so Envoy's
/// `local_reply_config` mappers (which see request headers) leave that reply alone.
pub const LOCAL_REPLY: &str = "x-gw-local-reply";

/// Client credential headers; removed before the request leaves Envoy.
pub const X_API_KEY: &str = "x-api-key";
pub const AUTHORIZATION: &str = "authorization";

/// Request headers as the host lists them: lowercase names, in arrival order.
pub type HeaderList = [(String, String)];

/// The first value of `name` (case-insensitive).
pub fn get<'a>(headers: &'a HeaderList, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Names of client-supplied `x-gw-*` headers, each once, in arrival order.
pub fn internal_header_names(headers: &HeaderList) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (name, _) in headers {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with(INTERNAL_PREFIX) && !names.contains(&lower) {
            names.push(lower);
        }
    }
    names
}

/// A value safe to place in a header: visible ASCII and spaces only.
pub fn is_header_safe(value: &str) -> bool {
    value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

/// Replaces anything not header-safe with `_` (used for values from the auth service).
pub fn header_safe(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn finds_every_internal_header_once() {
        let headers = h(&[
            ("x-gw-key-id", "spoof"),
            ("content-type", "application/json"),
            ("X-GW-Tier", "priority"),
            ("x-gw-key-id", "again"),
            ("x-gwfoo", "not internal"),
        ]);
        assert_eq!(
            internal_header_names(&headers),
            vec!["x-gw-key-id", "x-gw-tier"]
        );
    }

    #[test]
    fn get_is_case_insensitive_and_takes_the_first() {
        let headers = h(&[("X-Api-Key", "a"), ("x-api-key", "b")]);
        assert_eq!(get(&headers, "x-api-key"), Some("a"));
        assert_eq!(get(&headers, "authorization"), None);
    }

    #[test]
    fn header_safety() {
        assert!(is_header_safe("claude-sonnet-4-5 v1:0"));
        assert!(!is_header_safe("a\nb"));
        assert!(!is_header_safe("modèle"));
        assert_eq!(header_safe("a\r\nb"), "a__b");
    }
}
