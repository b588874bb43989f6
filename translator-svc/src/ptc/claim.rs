//! The claim of the request serving a continuation round (ptc.md 5.6): its owner name, the lease
//! it keeps renewed in ptc-svc while the round runs, and the release when the round ends without
//! a stored response. No round logic here.

use std::sync::Arc;
use std::time::Duration;

use gateway_proto::ptc::v1::{RenewRoundRequest, StoreRoundRequest};
use tracing::Instrument;

use super::round::Round;
use super::sandbox::Sandbox;

/// How long ptc-svc keeps a round claimed for its owner without a renewal, and how often the owner
/// renews. A lease rather than ptc-svc watching the owner's connection: between calls (a model
/// call on Bedrock can last minutes) the owner holds no call open, and a crashed translator sends
/// no release. Renewals run in a task of their own, so they continue while the round waits on
/// Bedrock or the code; a dead owner stops them and an identical retry takes the round over
/// within one lease instead of waiting out the round (up to 590 s). A quarter of the lease
/// between renewals tolerates three lost ones (a slow ptc-svc, an Envoy hiccup).
pub const ROUND_LEASE_MS: u32 = 20_000;
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// The round a delivery opened, held by the request serving it. Dropped without a stored
/// response (the round failed, or the task was cancelled), it releases the round in ptc-svc, so
/// an identical retry takes it over from the delivery's outcome instead of getting a 400.
pub struct Claim {
    sandbox: Arc<dyn Sandbox>,
    request: Option<StoreRoundRequest>,
    /// Renews the lease while the claim lives (aborted on drop).
    renewal: tokio::task::JoinHandle<()>,
}

impl Claim {
    pub fn new(round: &Round<'_>, container: &str, ids: &[String]) -> Self {
        let owner = format!("{}:{:016x}", round.call.request_id, rand::random::<u64>());
        let renewal = tokio::spawn(
            renew(
                Arc::clone(&round.ptc.sandbox),
                RenewRoundRequest {
                    container_id: container.to_string(),
                    key_id: round.key_id.clone(),
                    tool_use_ids: ids.to_vec(),
                    round_owner: owner.clone(),
                    lease_ms: ROUND_LEASE_MS,
                },
            )
            .instrument(tracing::Span::current()),
        );
        Claim {
            renewal,
            sandbox: Arc::clone(&round.ptc.sandbox),
            request: Some(StoreRoundRequest {
                container_id: container.to_string(),
                key_id: round.key_id.clone(),
                tool_use_ids: ids.to_vec(),
                abandoned: true,
                round_owner: owner,
                ..Default::default()
            }),
        }
    }

    pub fn owner(&self) -> String {
        self.request
            .as_ref()
            .map(|r| r.round_owner.clone())
            .unwrap_or_default()
    }

    /// Nothing to release: the round is stored, or was never ours.
    pub fn disarm(mut self) {
        self.request = None;
    }
}

/// Renews the owner's lease every `RENEW_EVERY` until aborted. A refusal is not fatal: before the
/// delivery opens the round there is nothing to renew yet.
async fn renew(sandbox: Arc<dyn Sandbox>, request: RenewRoundRequest) {
    let mut ticks = tokio::time::interval(RENEW_EVERY);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match sandbox.renew_round(request.clone()).await {
            Ok(renewed) if !renewed.held => {
                tracing::debug!(container = %request.container_id, "the PTC round lease was not renewed (not held)");
            }
            Ok(_) => {}
            Err(status) => {
                tracing::warn!(code = ?status.code(), "cannot renew the PTC round lease");
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.renewal.abort();
        let (Some(request), Ok(runtime)) =
            (self.request.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let sandbox = Arc::clone(&self.sandbox);
        runtime.spawn(async move {
            if let Err(status) = sandbox.store_round(request).await {
                tracing::warn!(code = ?status.code(), "cannot release an unfinished PTC round");
            }
        });
    }
}
