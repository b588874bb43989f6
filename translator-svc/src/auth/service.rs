//! The tonic face of `gateway.auth.v1.Auth`: request in, verdict from the [`KeyVerifier`],
//! `CheckResponse` out. A verifier failure is a gRPC `UNAVAILABLE`, never a denial or a pass.

use std::sync::Arc;

use gateway_proto::auth::v1::auth_server::{Auth, AuthServer};
use gateway_proto::auth::v1::{CheckRequest, CheckResponse};
use tonic::{Request, Response, Status};

use super::{Denial, KeyVerifier, Verdict};

pub struct AuthService {
    verifier: Arc<dyn KeyVerifier>,
}

/// The gRPC server for `gateway.auth.v1.Auth` backed by `verifier`.
pub fn auth_service(verifier: Arc<dyn KeyVerifier>) -> AuthServer<AuthService> {
    AuthServer::new(AuthService { verifier })
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let request = request.into_inner();
        if request.api_key.is_empty() {
            return Ok(Response::new(to_check_response(Verdict::Denied(
                Denial::InvalidKey,
            ))));
        }
        // The gate sends its request id: the check's lines (key store calls included) carry it.
        let request_id = crate::ids::has_shape(&request.request_id, "req_")
            .then_some(request.request_id.as_str());
        let span = tracing::info_span!("auth", request_id, otel.kind = "server");
        let verdict =
            tracing::Instrument::instrument(self.verifier.verify(&request.api_key), span).await;
        match verdict {
            Ok(verdict) => {
                if let Verdict::Denied(denial) = &verdict {
                    tracing::debug!(request_id = %request.request_id, path = %request.path, ?denial, "key refused");
                }
                Ok(Response::new(to_check_response(verdict)))
            }
            Err(error) => {
                tracing::warn!(request_id = %request.request_id, %error, "Auth/Check could not verify a key");
                Err(Status::unavailable("key verification unavailable"))
            }
        }
    }
}

/// The wire form of a verdict.
pub fn to_check_response(verdict: Verdict) -> CheckResponse {
    match verdict {
        Verdict::Allowed(grant) => CheckResponse {
            allowed: true,
            key_id: grant.key_id,
            tier: grant.tier.as_str().to_owned(),
            requests_per_minute: grant.requests_per_minute,
            tokens_per_minute: grant.tokens_per_minute,
            cache_ttl_ms: grant
                .cache_ttl
                .map_or(0, |ttl| u32::try_from(ttl.as_millis()).unwrap_or(u32::MAX)),
            ..CheckResponse::default()
        },
        Verdict::Denied(Denial::InvalidKey) => CheckResponse {
            allowed: false,
            status: 401,
            error_type: "authentication_error".to_owned(),
            message: "invalid API key".to_owned(),
            ..CheckResponse::default()
        },
        Verdict::Denied(Denial::NotPermitted(message)) => CheckResponse {
            allowed: false,
            status: 403,
            error_type: "permission_error".to_owned(),
            message,
            ..CheckResponse::default()
        },
    }
}
