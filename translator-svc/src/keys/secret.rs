//! API key material: generation from the thread CSPRNG, the SHA-256 form stored at rest, and the
//! short display prefix. The full key exists only in the create/rotate response; never log it.

use crate::ids::base62;
use sha2::{Digest, Sha256};

/// Every gateway key starts with this; anything else is refused without a store lookup.
pub const KEY_PREFIX: &str = "sk-gw-";
/// 43 base62 characters carry 256 bits of entropy (62^43 > 2^256).
const SECRET_CHARS: usize = 43;
/// How much of the key (after `sk-gw-`) is kept for display: `sk-gw-AbCd`.
const DISPLAY_CHARS: usize = 4;
/// A new secret key: `sk-gw-` + 43 base62 characters.
pub fn generate_key() -> String {
    format!("{KEY_PREFIX}{}", base62(SECRET_CHARS))
}

/// A new stable, non-secret key id (the rate-limit descriptor value and usage partition).
pub fn generate_key_id() -> String {
    format!("key_{}", base62(16))
}

/// Lower-case hex SHA-256 of the key as presented: what the store keeps and looks up.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// `sk-gw-AbCd`: enough to tell keys apart in a list, far too little to guess the rest.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(KEY_PREFIX.len() + DISPLAY_CHARS).collect()
}

/// Whether a presented string could be a gateway key at all.
pub fn looks_like_key(key: &str) -> bool {
    key.len() == KEY_PREFIX.len() + SECRET_CHARS
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape() {
        let key = generate_key();
        assert!(looks_like_key(&key), "{key}");
        assert_eq!(display_prefix(&key).len(), 10);
        assert!(key.starts_with(&display_prefix(&key)));
        assert_ne!(generate_key(), key);
        assert!(!looks_like_key("sk-ant-api03-abc"));
        assert!(!looks_like_key(&format!("{key}!")));
        assert!(generate_key_id().starts_with("key_"));
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
