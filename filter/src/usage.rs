//! The token count translator-svc reports for a response (`x-gw-usage-tokens`: a header on JSON
//! responses, an HTTP/2 trailer at the end of SSE streams), handed to Envoy's rate-limit filter
//! for the stream-done TPM charge. Pure: `host` reads and removes the header and stores the count.
//!
//! Envoy evaluates a `hits_addend.format` with the request headers and stream info only, never
//! the response, so the count travels as filter state: `set_property` with one path element,
//! which Envoy stores under `wasm.<name>`, read as `%FILTER_STATE(wasm.gw_usage_tokens:PLAIN)%`.

/// The response header / trailer translator-svc sets; removed before the client sees it.
pub const USAGE_TOKENS: &str = "x-gw-usage-tokens";
/// The filter state name the count is stored under (Envoy's key: `wasm.gw_usage_tokens`).
pub const USAGE_TOKENS_STATE: &str = "gw_usage_tokens";

/// The count to charge, or `None` when the value is not a non-negative integer (no charge then,
/// as for a response without a count).
pub fn tokens(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_charged_anything_else_is_not() {
        assert_eq!(tokens(b"1500"), Some(1500));
        assert_eq!(tokens(b" 0 "), Some(0));
        for bad in [
            &b""[..],
            b"-3",
            b"1.5",
            b"x",
            b"\xff",
            b"18446744073709551616",
        ] {
            assert_eq!(tokens(bad), None, "{bad:?}");
        }
    }
}
