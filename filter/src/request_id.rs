//! Request ids: `req_` + 24 base62 characters, derived from a random seed the host supplies
//! (so this module stays pure and testable).

use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const LEN: usize = 24;

/// Expands `seed` with SHA-256 and maps bytes to base62 by rejection sampling (no modulo bias).
pub fn from_seed(seed: &[u8]) -> String {
    let mut id = String::with_capacity(4 + LEN);
    id.push_str("req_");
    let mut round: u32 = 0;
    let mut produced = 0;
    while produced < LEN {
        let block = Sha256::new()
            .chain_update(seed)
            .chain_update(round.to_le_bytes())
            .finalize();
        for byte in block {
            // 248 = 4 * 62: bytes at or above it would bias the first characters.
            if byte < 248 && produced < LEN {
                id.push(char::from(ALPHABET[usize::from(byte % 62)]));
                produced += 1;
            }
        }
        round = round.wrapping_add(1);
    }
    id
}

/// True for a well-formed gateway request id.
pub fn is_valid(id: &str) -> bool {
    id.strip_prefix("req_")
        .is_some_and(|rest| rest.len() == LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_determinism() {
        let a = from_seed(b"seed-1");
        assert!(is_valid(&a), "{a}");
        assert_eq!(a, from_seed(b"seed-1"));
        assert_ne!(a, from_seed(b"seed-2"));
    }

    #[test]
    fn validity() {
        assert!(!is_valid("req_short"));
        assert!(!is_valid("msg_012345678901234567890123"));
        assert!(!is_valid("req_01234567890123456789012-"));
        assert!(is_valid("req_0123456789abcdefABCDEF01"));
    }

    #[test]
    fn many_ids_are_distinct() {
        let ids: std::collections::HashSet<String> =
            (0u32..2000).map(|i| from_seed(&i.to_le_bytes())).collect();
        assert_eq!(ids.len(), 2000);
    }
}
