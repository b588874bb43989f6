//! API keys, their verification, and the DynamoDB store behind keys, usage, pricing and model
//! mapping (embedded dynoxide by default). `wire` builds everything the service needs from
//! `KeysConfig`; the request path only sees `auth::KeyVerifier` and `usage::UsageSink`.

pub mod cache;
pub mod clock;
pub mod config;
pub mod dynamo;
pub mod embedded_client;
pub mod item;
mod key_items;
pub mod lifecycle;
pub mod models;
pub mod record;
pub mod secret;
pub mod store;
pub mod tables;
pub mod verifier;

use std::sync::Arc;

pub use config::KeysConfig;
pub use dynamo::{Dynamo, Embedded};
pub use item::StoreError;
pub use models::ModelSource;
pub use record::{KeyPolicy, KeyRecord, KeySettings, KeyStatus, Tier};
pub use store::KeyStore;
pub use verifier::Verifier;

/// What the relay needs from the key store on each request: the key's model allow-list and its
/// prompt-cache TTL preference. `None`: the key does not exist (any more).
pub trait KeyPolicies: Send + Sync {
    fn policy<'a>(
        &'a self,
        key_id: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Option<KeyPolicy>, StoreError>>;
}

impl KeyPolicies for Verifier {
    fn policy<'a>(
        &'a self,
        key_id: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Option<KeyPolicy>, StoreError>> {
        Box::pin(Verifier::policy(self, key_id))
    }
}

use crate::admin::{self, AdminState};
use crate::pricing::PriceBook;
use crate::usage::dynamo::DynamoUsageSink;
use clock::{Clock, SystemClock};

/// Everything the key store provides to the service.
pub struct Wired {
    /// For `auth::auth_service` (as `Arc<dyn auth::KeyVerifier>`).
    pub verifier: Arc<Verifier>,
    /// For the relay (as `Arc<dyn usage::UsageSink>`); `flush()` it on graceful shutdown.
    pub usage_sink: Arc<DynamoUsageSink>,
    /// `/admin/v1/...`, to merge into the HTTP router.
    pub admin_router: axum::Router,
    /// Operator model entries; the relay polls `model_overrides()`.
    pub model_source: Arc<ModelSource>,
    pub store: Arc<dyn KeyStore>,
    pub prices: Arc<PriceBook>,
    pub dynamo: Dynamo,
    /// The embedded DynamoDB server, when used: keep `Wired` alive as long as the service.
    pub embedded: Option<Embedded>,
}

pub async fn wire(config: &KeysConfig) -> anyhow::Result<Wired> {
    wire_with_clock(config, Arc::new(SystemClock)).await
}

/// `wire` with an injected clock (tests move it across month boundaries).
pub async fn wire_with_clock(config: &KeysConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Wired> {
    let (dynamo, embedded) = dynamo::connect(config).await?;
    let store: Arc<dyn KeyStore> = Arc::new(dynamo.clone());
    let verifier = Arc::new(Verifier::new(
        store.clone(),
        clock.clone(),
        config.master_api_key.clone(),
        config.cache_ttl,
    ));
    let prices = Arc::new(PriceBook::new(config.tier_multipliers));
    crate::pricing::store::refresh(&dynamo, &prices)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the pricing table: {e}"))?;
    spawn_price_refresh(
        dynamo.clone(),
        Arc::downgrade(&prices),
        config.refresh_interval,
    );
    let usage_sink = Arc::new(DynamoUsageSink::spawn(
        dynamo.clone(),
        prices.clone(),
        Some(verifier.clone()),
        clock.clone(),
        config.usage.clone(),
    ));
    let model_source = Arc::new(ModelSource::new(dynamo.clone()));
    let admin_router = admin::router(Arc::new(AdminState {
        store: store.clone(),
        dynamo: dynamo.clone(),
        verifier: verifier.clone(),
        prices: prices.clone(),
        clock,
        master_api_key: config.master_api_key.clone(),
        portal: admin::portal::Portal::new(config.portal.clone(), dynamo.clone()),
    }));
    Ok(Wired {
        verifier,
        usage_sink,
        admin_router,
        model_source,
        store,
        prices,
        dynamo,
        embedded,
    })
}

/// Re-read operator prices until the book is dropped (other replicas' edits show up here).
fn spawn_price_refresh(
    dynamo: Dynamo,
    book: std::sync::Weak<PriceBook>,
    every: std::time::Duration,
) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(book) = book.upgrade() else {
                return;
            };
            if let Err(e) = crate::pricing::store::refresh(&dynamo, &book).await {
                tracing::warn!(error = %e, "cannot refresh prices; keeping the current ones");
            }
        }
    });
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
