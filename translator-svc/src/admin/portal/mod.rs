//! The admin web portal under `/admin/`: the page and its embedded assets, sign-in with the
//! master key (a server-side session in an HttpOnly cookie), sign-out, and the session check
//! the JSON API accepts instead of the master key (with a CSRF token and an origin check on every
//! change). Never echoes the master key, never takes a credential from the URL.

mod assets;
pub mod config;
pub mod limiter;
pub mod session;
mod sign_in;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub use config::{CookieSecure, PortalConfig};
use limiter::SignInLimiter;
use session::{SessionStore, csrf_matches};

use super::{AdminError, AppState};
use crate::error::ApiError;
use crate::keys::Dynamo;

/// Scripts and styles only from this origin (no inline code), no framing, no plugins; the page
/// talks only to its own origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the portal keeps for the service's lifetime.
pub struct Portal {
    pub config: PortalConfig,
    pub sessions: SessionStore,
    limiter: SignInLimiter,
}

impl Portal {
    pub fn new(config: PortalConfig, dynamo: Dynamo) -> Portal {
        let sessions = SessionStore::new(dynamo, config.idle_timeout, config.max_lifetime);
        let limiter = SignInLimiter::new(config.sign_ins_per_minute, Instant::now());
        Portal {
            config,
            sessions,
            limiter,
        }
    }
}

/// The portal's routes (merged into the admin router, which adds the security headers).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route("/admin/", get(page))
        .route("/admin/login", get(page).post(sign_in::sign_in))
        .route("/admin/logout", post(sign_in::sign_out))
        .route("/admin/session", get(sign_in::current_session))
        .route("/admin/assets/{file}", get(assets::serve))
}

/// Headers every `/admin` response carries: a strict CSP, no framing, no sniffing, no referrer,
/// and no caching unless the handler chose otherwise (static assets).
pub async fn harden(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn disabled(state: &AppState) -> Option<AdminError> {
    if !state.portal.config.enabled {
        return Some(
            ApiError::not_found("the admin portal is disabled (ADMIN_PORTAL_ENABLED=false)").into(),
        );
    }
    if state.master_api_key.is_none() {
        return Some(
            ApiError::authentication(
                "the admin API is disabled: set MASTER_API_KEY on translator-svc",
            )
            .into(),
        );
    }
    None
}

async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.portal.config.enabled {
        return AdminError(ApiError::not_found(
            "the admin portal is disabled (ADMIN_PORTAL_ENABLED=false)",
        ))
        .into_response();
    }
    assets::serve_page(&headers)
}

/// What the CSRF and origin checks look at, taken from the request up front (a `&Request` is not
/// `Send`, so it cannot be held across the session lookup).
pub struct Sender {
    method: Method,
    headers: HeaderMap,
    host: Option<String>,
}

impl Sender {
    pub fn of(request: &Request) -> Sender {
        Sender {
            method: request.method().clone(),
            headers: request.headers().clone(),
            host: request_host(request),
        }
    }
}

/// The host the browser addressed (`Host`, or the HTTP/2 authority).
fn request_host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .map(|h| h.trim().to_ascii_lowercase())
}

/// Whether a request that changes something was sent by the portal's own pages: `Origin` (when
/// the browser sends one, which it does for every such fetch) names this host or an allowed
/// origin, and `Sec-Fetch-Site` (when present) does not say another site.
pub fn same_origin(sender: &Sender, config: &PortalConfig) -> bool {
    let headers = &sender.headers;
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && matches!(site, "cross-site" | "same-site")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str().map(|o| o.trim().to_ascii_lowercase()) else {
        return false;
    };
    if config.allowed_origins.contains(&origin) {
        return true;
    }
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    authority.is_some() && authority.map(str::to_string) == sender.host
}

/// Whether the session cookie gets `Secure`.
fn secure_cookie(request: &Request, config: &PortalConfig) -> bool {
    match config.cookie_secure {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        CookieSecure::Auto => {
            let host = request_host(request).unwrap_or_default();
            let name = match host.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or_default().to_string(),
                None => host.split(':').next().unwrap_or_default().to_string(),
            };
            let loopback = name == "localhost"
                || name.ends_with(".localhost")
                || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            !loopback
        }
    }
}

/// The client's address: through Envoy (trusted context) the last `x-forwarded-for` entry, which
/// Envoy itself appended; otherwise the peer of the connection.
fn client_addr(request: &Request) -> IpAddr {
    let trusted = request
        .extensions()
        .get::<crate::api::Ctx>()
        .is_some_and(|ctx| ctx.trusted);
    if trusted
        && let Some(ip) = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// A request that changes something must come from the portal's page and carry the session's
/// CSRF token.
fn check_change(sender: &Sender, id: &str, config: &PortalConfig) -> Result<(), AdminError> {
    if matches!(sender.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    if !same_origin(sender, config) {
        return Err(
            ApiError::permission("cross-origin request refused (origin check failed)").into(),
        );
    }
    let presented = sender
        .headers
        .get(session::CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !csrf_matches(id, presented.trim()) {
        return Err(ApiError::permission(format!(
            "missing or invalid CSRF token (send the {} header the sign-in returned)",
            session::CSRF_HEADER
        ))
        .into());
    }
    Ok(())
}

/// The JSON API's alternative to the master key: `None` when the request has no session cookie
/// (the caller then asks for the key); otherwise whether the session admits this request.
pub async fn authorize_session(
    state: &AppState,
    sender: &Sender,
) -> Option<Result<(), AdminError>> {
    let id = session::cookie_id(&sender.headers)?;
    if !state.portal.config.enabled || state.master_api_key.is_none() {
        return Some(Err(ApiError::authentication(
            "portal sessions are disabled on this gateway (ADMIN_PORTAL_ENABLED, MASTER_API_KEY)",
        )
        .into()));
    }
    Some(
        match state.portal.sessions.find(&id, state.clock.now()).await {
            Ok(Some(_)) => check_change(sender, &id, &state.portal.config),
            Ok(None) => {
                Err(ApiError::authentication("the admin session has expired; sign in again").into())
            }
            Err(e) => Err(e.into()),
        },
    )
}

#[cfg(test)]
mod tests;
