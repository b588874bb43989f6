//! Issuing and rotating secrets: the only code that sees a full key, which it returns once to
//! the caller and never stores or logs.

use std::time::SystemTime;

use super::clock::rfc3339_millis;
use super::item::StoreError;
use super::record::{KeyRecord, KeySettings, KeyStatus};
use super::secret::{display_prefix, generate_key, generate_key_id, hash_key};
use super::store::KeyStore;

/// Create an active key; returns the record and the secret (shown once).
pub async fn create_key(
    store: &dyn KeyStore,
    settings: KeySettings,
    now: SystemTime,
) -> Result<(KeyRecord, String), StoreError> {
    let secret = generate_key();
    let at = rfc3339_millis(now);
    let record = KeyRecord {
        id: generate_key_id(),
        settings,
        key_prefix: display_prefix(&secret),
        key_hash: hash_key(&secret),
        status: KeyStatus::Active,
        created_at: at.clone(),
        updated_at: at,
        last_used_at: None,
        budget_exceeded_month: None,
    };
    store.create_key(&record).await?;
    tracing::info!(key_id = %record.id, name = %record.settings.name, "API key created");
    Ok((record, secret))
}

/// Give a key a new secret; the old one stops working at once (and on other replicas within
/// their cache TTL). Returns the new secret.
pub async fn rotate_key(
    store: &dyn KeyStore,
    record: &KeyRecord,
    now: SystemTime,
) -> Result<String, StoreError> {
    let secret = generate_key();
    store
        .rotate_key(
            record,
            &hash_key(&secret),
            &display_prefix(&secret),
            &rfc3339_millis(now),
        )
        .await?;
    tracing::info!(key_id = %record.id, "API key rotated");
    Ok(secret)
}
