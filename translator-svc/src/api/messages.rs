//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: parse, hand to the relay, render.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::context::{Ctx, beta_header_values, read_json_body};
use super::http_metrics::ModelLabel;
use super::{AppState, sse};
use crate::beta::BetaPolicy;
use crate::relay::{CallContext, Outcome};

fn call_context(ctx: &Ctx, headers: &HeaderMap) -> CallContext {
    CallContext {
        request_id: ctx.request_id.clone(),
        key_id: ctx.key_id.clone(),
        tier: ctx.tier.clone(),
        client_betas: BetaPolicy::parse_header_values(&beta_header_values(headers)),
        session_id: headers
            .get("x-claude-code-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        ptc: None,
        // Trusted like every x-gw-* header: only with Envoy's internal secret.
        tpm: ctx
            .trusted
            .then(|| headers.get("x-gw-tpm")?.to_str().ok()?.trim().parse().ok())
            .flatten(),
    }
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request = match read_json_body(&ctx, body, state.config.max_body_bytes).await {
        Ok(request) => request,
        Err(failure) => {
            let mut response = failure.into_response();
            response.extensions_mut().insert(ModelLabel::unknown());
            return response;
        }
    };
    let model = ModelLabel::of(&state.relay, &request);
    let mut response = match state
        .relay
        .messages(call_context(&ctx, &headers), request)
        .await
    {
        Ok(Outcome::Message { message, usage }) => {
            let mut response = Json(message).into_response();
            response
                .headers_mut()
                .insert(sse::USAGE_TOKENS_HEADER, sse::usage_tokens(&usage));
            response
        }
        Ok(Outcome::Stream(stream)) => sse::response(stream),
        Err(error) => ctx.fail(error).into_response(),
    };
    response.extensions_mut().insert(model);
    response
}

pub async fn count_tokens(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request = match read_json_body(&ctx, body, state.config.max_body_bytes).await {
        Ok(request) => request,
        Err(failure) => {
            let mut response = failure.into_response();
            response.extensions_mut().insert(ModelLabel::unknown());
            return response;
        }
    };
    let model = ModelLabel::of(&state.relay, &request);
    let mut response = match state
        .relay
        .count_tokens(call_context(&ctx, &headers), request)
        .await
    {
        Ok(count) => {
            let mut response = Json(json!({"input_tokens": count.input_tokens})).into_response();
            if count.estimated {
                response.headers_mut().insert(
                    "x-gateway-token-estimate",
                    http::HeaderValue::from_static("true"),
                );
            }
            response
        }
        Err(error) => ctx.fail(error).into_response(),
    };
    response.extensions_mut().insert(model);
    response
}
