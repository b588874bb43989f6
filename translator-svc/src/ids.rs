//! Identifier formats (spec section 15): `req_`, `msg_`, `toolu_` + 24 base62 characters, and the
//! stable SHA-256 replacement for tool ids Bedrock would reject.

use rand::Rng;
use sha2::{Digest, Sha256};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` random base62 characters. `rand::rng()` is a ChaCha CSPRNG seeded and reseeded from the
/// OS, so this also serves API key secrets (`keys::secret`).
pub fn base62(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(BASE62[rng.random_range(0..BASE62.len())]))
        .collect()
}

pub fn request_id() -> String {
    format!("req_{}", base62(24))
}

pub fn message_id() -> String {
    format!("msg_{}", base62(24))
}

pub fn tool_use_id() -> String {
    format!("toolu_{}", base62(24))
}

/// True when `id` is acceptable to Bedrock as a tool use id.
pub fn is_valid_tool_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Deterministic replacement for an id Bedrock would reject: `toolu_` + 24 hex of SHA-256.
pub fn sanitize_tool_id(id: &str) -> String {
    if is_valid_tool_id(id) {
        return id.to_string();
    }
    let digest = Sha256::digest(id.as_bytes());
    format!("toolu_{}", &hex::encode(digest)[..24])
}

/// True when `id` looks like one this module generated with the given prefix.
pub fn has_shape(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 24 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(has_shape(&request_id(), "req_"));
        assert!(has_shape(&message_id(), "msg_"));
        assert!(has_shape(&tool_use_id(), "toolu_"));
    }

    #[test]
    fn sanitize_is_stable_and_valid() {
        assert_eq!(sanitize_tool_id("toolu_ok-1"), "toolu_ok-1");
        let a = sanitize_tool_id("call:1/x");
        assert_eq!(a, sanitize_tool_id("call:1/x"));
        assert!(is_valid_tool_id(&a));
        assert_eq!(a.len(), "toolu_".len() + 24);
    }
}
