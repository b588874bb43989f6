//! The master key as the only valid key: SHA-256 of the presented key compared in constant time
//! with the hash of the configured one. No key configured means every key is refused.

/// The key id granted to the master key (the admin API trusts it from the gateway).
pub const MASTER_KEY_ID: &str = "master";

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Denial, KeyGrant, KeyVerifier, Tier, Verdict, VerifyError};

pub struct MasterKeyVerifier {
    /// `None`: no master key configured.
    hash: Option<[u8; 32]>,
}

impl MasterKeyVerifier {
    /// An empty key counts as not configured.
    pub fn new(master_key: Option<String>) -> Self {
        let hash = master_key
            .filter(|key| !key.is_empty())
            .map(|key| Sha256::digest(key.as_bytes()).into());
        Self { hash }
    }
}

#[tonic::async_trait]
impl KeyVerifier for MasterKeyVerifier {
    async fn verify(&self, presented_key: &str) -> Result<Verdict, VerifyError> {
        let Some(expected) = &self.hash else {
            return Ok(Verdict::Denied(Denial::InvalidKey));
        };
        let presented: [u8; 32] = Sha256::digest(presented_key.as_bytes()).into();
        if bool::from(presented.ct_eq(expected)) {
            Ok(Verdict::Allowed(KeyGrant {
                key_id: MASTER_KEY_ID.to_owned(),
                tier: Tier::Default,
                requests_per_minute: 0,
                tokens_per_minute: 0,
                cache_ttl: None,
            }))
        } else {
            Ok(Verdict::Denied(Denial::InvalidKey))
        }
    }
}
