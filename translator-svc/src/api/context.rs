//! Per-request context: the request id every response carries, and the gateway headers
//! (`x-gw-*`) that are trusted only when the request carries Envoy's internal secret.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, SizeHint};
use subtle::ConstantTimeEq;
use tracing::Instrument;
use tracing::field::Empty;

use super::AppState;
use crate::error::ApiError;
use crate::{ids, telemetry};

pub const INTERNAL_SECRET_HEADER: &str = "x-gw-internal-secret";

/// What the gateway (Envoy and the gate filter) told us about this request.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub request_id: String,
    /// True when the internal secret matched; the fields below are empty otherwise.
    pub trusted: bool,
    pub key_id: Option<String>,
    pub tier: Option<String>,
}

impl Ctx {
    pub fn fail(&self, error: ApiError) -> Failure {
        Failure {
            error,
            request_id: self.request_id.clone(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Ctx>()
            .cloned()
            .unwrap_or_else(|| Ctx {
                request_id: ids::request_id(),
                trusted: false,
                key_id: None,
                tier: None,
            }))
    }
}

/// An error on its way to the client, rendered in the one Anthropic envelope.
#[derive(Debug)]
pub struct Failure {
    pub error: ApiError,
    pub request_id: String,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = self.error.status;
        let body = self.error.to_body(&self.request_id).to_string();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let retry = if self.error.error_type.retryable() {
            "true"
        } else {
            "false"
        };
        headers.insert("x-should-retry", HeaderValue::from_static(retry));
        if let Some(secs) = self.error.retry_after_secs {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        metrics::counter!("translator_errors_total", "type" => self.error.metric_label())
            .increment(1);
        response
            .extensions_mut()
            .insert(super::http_metrics::ErrorTypeLabel(
                self.error.metric_label(),
            ));
        response
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn secret_matches(headers: &HeaderMap, secret: &str) -> bool {
    header(headers, INTERNAL_SECRET_HEADER)
        .is_some_and(|presented| bool::from(presented.as_bytes().ct_eq(secret.as_bytes())))
}

/// Outermost layer: decide the request id, build the `Ctx`, open the request's span (every log
/// line of the request carries its fields), and stamp `request-id` on the response.
pub async fn request_id(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let trusted = secret_matches(headers, &state.config.internal_secret);
    let gateway_id = header(headers, "x-gw-request-id").filter(|id| ids::has_shape(id, "req_"));
    let ctx = Ctx {
        request_id: match (trusted, gateway_id) {
            (true, Some(id)) => id.to_string(),
            _ => ids::request_id(),
        },
        trusted,
        key_id: trusted
            .then(|| header(headers, "x-gw-key-id").map(str::to_string))
            .flatten(),
        tier: trusted
            .then(|| header(headers, "x-gw-tier").map(str::to_string))
            .flatten(),
    };
    let request_id = ctx.request_id.clone();
    // The key id is not a secret (the key is); model is recorded once the body is read.
    macro_rules! request_span {
        ($level:ident) => {
            tracing::$level!(
                "request",
                request_id = %request_id,
                method = %request.method(),
                path = %request.uri().path(),
                key_id = ctx.key_id.as_deref(),
                model = Empty,
                status = Empty,
                otel.name = format!("{} {}", request.method(), request.uri().path()),
                otel.kind = "server",
            )
        };
    }
    // Probes and scrapes arrive every few seconds: their spans stay out of exported traces.
    let probe = matches!(
        request.uri().path(),
        "/health" | "/health/ptc" | "/ready" | "/metrics"
    );
    let span = if probe {
        request_span!(debug_span)
    } else {
        request_span!(info_span)
    };
    telemetry::continue_trace(&span, request.headers());
    // The secret has done its job; nothing downstream needs it.
    request.headers_mut().remove(INTERNAL_SECRET_HEADER);
    request.extensions_mut().insert(ctx);
    let id: Arc<str> = Arc::from(request_id.as_str());
    let mut response = telemetry::in_request_async(id.clone(), next.run(request))
        .instrument(span.clone())
        .await;
    span.record("status", response.status().as_u16());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("request-id", value);
    }
    // A streamed body is produced after the handler returned: it stays in the request's span.
    response.map(|body| {
        Body::new(InRequest {
            body,
            span,
            request_id: id,
        })
    })
}

/// A response body polled inside its request's span and request id.
struct InRequest {
    body: Body,
    span: tracing::Span,
    request_id: Arc<str>,
}

impl hyper::body::Body for InRequest {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        telemetry::in_request(&this.request_id, || Pin::new(&mut this.body).poll_frame(cx))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for InRequest {
    /// A client that goes away drops the body mid-stream: what that drop logs (the usage of a
    /// cut stream) still belongs to the request.
    fn drop(&mut self) {
        let _entered = self.span.enter();
        let body = std::mem::replace(&mut self.body, Body::empty());
        telemetry::in_request(&self.request_id, || drop(body));
    }
}

/// Route layer on `/v1/*`: only the gateway may call these.
pub async fn require_gateway(ctx: Ctx, request: Request, next: Next) -> Response {
    if !ctx.trusted {
        return ctx
            .fail(ApiError::authentication(
                "requests must come through the gateway: the internal gateway credential is missing or wrong",
            ))
            .into_response();
    }
    next.run(request).await
}

pub async fn not_found(ctx: Ctx, request: Request) -> Response {
    let path = request.uri().path().to_string();
    ctx.fail(ApiError::not_found(format!("no route for {path}")))
        .into_response()
}

pub async fn method_not_allowed(ctx: Ctx) -> Response {
    ctx.fail(ApiError::method_not_allowed()).into_response()
}

/// Read the whole body under the Anthropic 32 MiB limit and parse it as a JSON object.
pub async fn read_json_body(
    ctx: &Ctx,
    body: axum::body::Body,
    limit: usize,
) -> Result<serde_json::Value, Failure> {
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ctx.fail(ApiError::too_large(format!(
            "request body exceeds the {} MiB limit",
            limit / (1024 * 1024)
        )))
    })?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        ctx.fail(ApiError::invalid_request(format!(
            "request body is not valid JSON: {e}"
        )))
    })?;
    if !value.is_object() {
        return Err(ctx.fail(ApiError::invalid_request(
            "request body must be a JSON object",
        )));
    }
    Ok(value)
}

/// `anthropic-beta` values in order, across repeated header lines (spec section 4).
pub fn beta_header_values(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}
