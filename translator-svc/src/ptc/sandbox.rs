//! The seam to ptc-svc: a small `Sandbox` trait over the `gateway.ptc.v1` calls, its tonic
//! implementation (routing metadata, deadlines, one retry on a deadline), and the one mapping of
//! gRPC statuses to client errors. Tests plug in a real ptc-svc or a fake.

use std::time::Duration;

use futures::future::BoxFuture;
use gateway_proto::ptc::v1::ptc_client::PtcClient;
use gateway_proto::ptc::v1::{
    CreateSessionRequest, CreateSessionResponse, DeliverResultsRequest, ExecuteRequest,
    GetRoundRequest, GetRoundResponse, GetSessionRequest, HealthRequest, HealthResponse, Outcome,
    RenewRoundRequest, RenewRoundResponse, Session, StoreRoundRequest, StoreRoundResponse,
};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::error::ApiError;

/// Routing header: Envoy hashes on it so every call for a container reaches its replica.
pub const CONTAINER_HEADER: &str = "x-gw-container-id";

type Call<'a, T> = BoxFuture<'a, Result<T, Status>>;

/// ptc-svc as translator-svc needs it. `deadline` bounds calls that run code.
pub trait Sandbox: Send + Sync {
    fn create_session(&self, r: CreateSessionRequest) -> Call<'_, CreateSessionResponse>;
    fn execute(&self, r: ExecuteRequest, deadline: Duration) -> Call<'_, Outcome>;
    fn deliver_results(&self, r: DeliverResultsRequest, deadline: Duration) -> Call<'_, Outcome>;
    fn get_session(&self, r: GetSessionRequest) -> Call<'_, Session>;
    fn store_round(&self, r: StoreRoundRequest) -> Call<'_, StoreRoundResponse>;
    fn get_round(&self, r: GetRoundRequest) -> Call<'_, GetRoundResponse>;
    fn renew_round(&self, r: RenewRoundRequest) -> Call<'_, RenewRoundResponse>;
    fn health(&self, r: HealthRequest) -> Call<'_, HealthResponse>;
}

/// ptc-svc over gRPC (directly or through Envoy).
pub struct GrpcSandbox {
    channel: Channel,
}

const SHORT_DEADLINE: Duration = Duration::from_secs(10);
const MAX_MESSAGE_BYTES: usize = 64 << 20;

impl GrpcSandbox {
    /// Connects lazily: a ptc-svc that is down makes PTC requests fail (529), not the start.
    pub fn connect_lazy(endpoint: &str) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| anyhow::anyhow!("PTC_ENDPOINT: {e}"))?
            .connect_timeout(Duration::from_secs(3))
            .connect_lazy();
        Ok(GrpcSandbox { channel })
    }

    fn client(&self) -> PtcClient<Channel> {
        PtcClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

fn request<T>(message: T, container_id: &str, deadline: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(deadline);
    if let Ok(value) = container_id.parse() {
        request.metadata_mut().insert(CONTAINER_HEADER, value);
    }
    // ptc-svc logs the call under the gateway request id and continues its trace.
    crate::telemetry::annotate_call(request.metadata_mut());
    request
}

/// Execute and DeliverResults are idempotent (same execution id / same result ids), so a call
/// that ran into its deadline is repeated once and receives the first call's outcome.
async fn with_retry<T, F, Fut>(mut op: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    match op().await {
        Err(status) if status.code() == Code::DeadlineExceeded => op().await,
        other => other,
    }
}

impl Sandbox for GrpcSandbox {
    fn create_session(&self, r: CreateSessionRequest) -> Call<'_, CreateSessionResponse> {
        Box::pin(async move {
            let id = r.container_id.clone();
            // Container start plus the runner's ready message.
            let req = request(r, &id, Duration::from_secs(30));
            Ok(self.client().create_session(req).await?.into_inner())
        })
    }

    fn execute(&self, r: ExecuteRequest, deadline: Duration) -> Call<'_, Outcome> {
        Box::pin(with_retry(move || {
            let r = r.clone();
            async move {
                let id = r.container_id.clone();
                Ok(self
                    .client()
                    .execute(request(r, &id, deadline))
                    .await?
                    .into_inner())
            }
        }))
    }

    fn deliver_results(&self, r: DeliverResultsRequest, deadline: Duration) -> Call<'_, Outcome> {
        Box::pin(with_retry(move || {
            let r = r.clone();
            async move {
                let id = r.container_id.clone();
                Ok(self
                    .client()
                    .deliver_results(request(r, &id, deadline))
                    .await?
                    .into_inner())
            }
        }))
    }

    fn get_session(&self, r: GetSessionRequest) -> Call<'_, Session> {
        Box::pin(async move {
            let id = r.container_id.clone();
            Ok(self
                .client()
                .get_session(request(r, &id, SHORT_DEADLINE))
                .await?
                .into_inner())
        })
    }

    fn store_round(&self, r: StoreRoundRequest) -> Call<'_, StoreRoundResponse> {
        Box::pin(async move {
            let id = r.container_id.clone();
            Ok(self
                .client()
                .store_round(request(r, &id, SHORT_DEADLINE))
                .await?
                .into_inner())
        })
    }

    fn get_round(&self, r: GetRoundRequest) -> Call<'_, GetRoundResponse> {
        Box::pin(async move {
            let id = r.container_id.clone();
            let deadline = SHORT_DEADLINE + Duration::from_millis(u64::from(r.wait_ms));
            Ok(self
                .client()
                .get_round(request(r, &id, deadline))
                .await?
                .into_inner())
        })
    }

    fn renew_round(&self, r: RenewRoundRequest) -> Call<'_, RenewRoundResponse> {
        Box::pin(async move {
            let id = r.container_id.clone();
            Ok(self
                .client()
                .renew_round(request(r, &id, SHORT_DEADLINE))
                .await?
                .into_inner())
        })
    }

    fn health(&self, r: HealthRequest) -> Call<'_, HealthResponse> {
        Box::pin(async move {
            let req = request(r, "", Duration::from_secs(5));
            Ok(self.client().health(req).await?.into_inner())
        })
    }
}

/// The one mapping of ptc-svc statuses to client errors (ptc.md 5.3, 8, 10).
pub fn to_api_error(status: &Status) -> ApiError {
    let retry_after = status
        .metadata()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    match status.code() {
        Code::NotFound => {
            ApiError::not_found("container not found or expired; the paused execution is lost")
        }
        Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists => {
            ApiError::invalid_request(status.message().to_string())
        }
        Code::ResourceExhausted => ApiError::rate_limit(
            "too many code execution containers for this API key; close or let one expire",
        )
        .with_retry_after(retry_after),
        _ => {
            tracing::warn!(code = ?status.code(), message = %status.message(), "ptc-svc call failed");
            ApiError::overloaded("code execution temporarily unavailable")
                .with_retry_after(retry_after)
        }
    }
}
