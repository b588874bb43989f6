//! The only module that knows axum and tonic server types: routes, handlers, the SSE writer and
//! the gRPC services, served together on one port (HTTP/1.1 and h2c). Business rules live in
//! `relay.rs`; handlers here only parse, delegate and render.

mod context;
mod health;
mod http_metrics;
mod messages;
mod models;
mod sse;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::relay::Relay;

pub use context::{Ctx, Failure};
pub use health::Readiness;
pub use http_metrics::{DURATION as HTTP_DURATION, REQUESTS as HTTP_REQUESTS};
pub use models::model_object;

/// Everything a handler may touch.
pub struct AppState {
    pub config: Arc<Config>,
    pub relay: Relay,
    pub metrics: PrometheusHandle,
    pub readiness: Readiness,
    /// `/admin/v1/...` (built by `keys::wire`), served behind the same request-id layer.
    pub admin: Router,
    /// Programmatic Tool Calling, for `/health/ptc`; `None` when disabled.
    pub ptc: Option<Arc<crate::ptc::Ptc>>,
}

/// Every HTTP route and layer, in order. gRPC services are merged in by `serve`.
pub fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route(
            "/v1/messages",
            post(messages::create).fallback(context::method_not_allowed),
        )
        .route(
            "/v1/messages/",
            post(messages::create).fallback(context::method_not_allowed),
        )
        .route(
            "/v1/messages/count_tokens",
            post(messages::count_tokens).fallback(context::method_not_allowed),
        )
        .route(
            "/v1/messages/count_tokens/",
            post(messages::count_tokens).fallback(context::method_not_allowed),
        )
        .route(
            "/v1/models",
            get(models::list).fallback(context::method_not_allowed),
        )
        .route(
            "/v1/models/",
            get(models::list).fallback(context::method_not_allowed),
        )
        .route(
            "/v1/models/{*model_id}",
            get(models::show).fallback(context::method_not_allowed),
        )
        .route(
            "/api/event_logging/batch",
            post(health::discard).fallback(context::method_not_allowed),
        )
        // Only requests that came through Envoy (carrying the internal secret) reach these.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            context::require_gateway,
        ));

    Router::new()
        .route(
            "/health",
            get(health::health).fallback(context::method_not_allowed),
        )
        .route(
            "/health/ptc",
            get(health::ptc).fallback(context::method_not_allowed),
        )
        .route(
            "/ready",
            get(health::ready).fallback(context::method_not_allowed),
        )
        .route("/", any(health::hello))
        .route("/api/hello", any(health::hello))
        .route(
            "/metrics",
            get(health::metrics).fallback(context::method_not_allowed),
        )
        .merge(v1)
        .with_state(state.clone())
        // The admin router carries its own state; merged as is, its path parameters stay its own.
        .merge(state.admin.clone().layer(axum::Extension(
            crate::admin::BuiltinModels::from_config(&state.config),
        )))
        .fallback(context::not_found)
        // Bodies are read with our own limit so an oversize body gets the Anthropic 413.
        .layer(DefaultBodyLimit::disable())
        // Per route (Router::layer wraps each route and the fallback), so the template is known.
        .layer(axum::middleware::from_fn(http_metrics::record))
        .layer(axum::middleware::from_fn_with_state(
            state,
            context::request_id,
        ))
}

/// Serve HTTP and gRPC on one listener until `shutdown` resolves, then drain in-flight streams.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    grpc: tonic::service::Routes,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // tonic's router carries its own fallback, so ours becomes the fallback of the gRPC router.
    let app = grpc.into_axum_router().fallback_service(router(state));
    // Without TCP_NODELAY the last SSE frames of a stream wait ~40 ms for Nagle's algorithm.
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    // The peer address feeds the admin portal's sign-in brake (direct, non-Envoy callers).
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
