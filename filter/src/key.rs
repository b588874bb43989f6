//! API key extraction: `x-api-key`, else `Authorization: Bearer <key>`. Never logs or stores keys.

use crate::headers::{self, HeaderList};

/// The presented key, if any. `x-api-key` wins over `Authorization`; empty values are absent;
/// the `Bearer` scheme is case-insensitive.
pub fn extract(headers: &HeaderList) -> Option<&str> {
    let from_x_api_key = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(headers::X_API_KEY))
        .map(|(_, v)| v.trim())
        .find(|v| !v.is_empty());
    if from_x_api_key.is_some() {
        return from_x_api_key;
    }
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(headers::AUTHORIZATION))
        .find_map(|(_, v)| bearer(v))
}

fn bearer(value: &str) -> Option<&str> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let key = rest.trim();
    (!key.is_empty()).then_some(key)
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
    fn x_api_key() {
        assert_eq!(extract(&h(&[("x-api-key", "sk-1")])), Some("sk-1"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let v = format!("{scheme} sk-2");
            assert_eq!(extract(&h(&[("authorization", &v)])), Some("sk-2"));
        }
    }

    #[test]
    fn x_api_key_wins_over_authorization() {
        let headers = h(&[
            ("authorization", "Bearer from-auth"),
            ("x-api-key", "from-x"),
        ]);
        assert_eq!(extract(&headers), Some("from-x"));
    }

    #[test]
    fn empty_values_are_absent() {
        assert_eq!(extract(&h(&[("x-api-key", "")])), None);
        assert_eq!(extract(&h(&[("x-api-key", "  ")])), None);
        assert_eq!(extract(&h(&[("authorization", "Bearer ")])), None);
        assert_eq!(extract(&h(&[("authorization", "Bearer")])), None);
        let headers = h(&[("x-api-key", ""), ("authorization", "Bearer b")]);
        assert_eq!(extract(&headers), Some("b"));
    }

    #[test]
    fn other_schemes_are_not_keys() {
        assert_eq!(
            extract(&h(&[("authorization", "Basic dXNlcjpwYXNz")])),
            None
        );
        assert_eq!(extract(&h(&[("authorization", "Bearerx sk")])), None);
        assert_eq!(extract(&h(&[])), None);
    }
}
