//! Signing in and out of the portal: the master key in (JSON or form, compared in constant time,
//! braked per client), a session cookie and CSRF token out; `GET /admin/session` for a reloaded
//! page; sign-out deletes the session. Never quotes a presented key back.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::session::{self, csrf_token};
use super::{Sender, check_change, client_addr, disabled, same_origin, secure_cookie};
use crate::admin::{AdminError, AppState};
use crate::error::ApiError;
use crate::keys::clock::rfc3339_millis;

/// Sign-in bodies are tiny; anything larger is not a sign-in.
const SIGN_IN_BODY_LIMIT_BYTES: usize = 16 * 1024;

/// The master key from a JSON (`{"master_key": ...}`) or form (`master_key=...`) body. Errors
/// never quote the body: it may hold a mistyped key.
fn presented_master_key(headers: &HeaderMap, body: &[u8]) -> Result<String, AdminError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let missing = || {
        AdminError(ApiError::invalid_request(
            "master_key: a non-empty string is required",
        ))
    };
    let key = if content_type.starts_with("application/x-www-form-urlencoded") {
        serde_urlencoded_key(body)
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("master_key")?.as_str().map(str::to_string))
    } else {
        return Err(ApiError::invalid_request(
            "send the master key as application/json or application/x-www-form-urlencoded",
        )
        .into());
    };
    key.map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .ok_or_else(missing)
}

/// `master_key` from a form body (`+` and `%XX` decoded).
fn serde_urlencoded_key(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let value = text
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "master_key")?
        .1;
    let mut out = Vec::with_capacity(value.len());
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn session_body(id: &str, session: &session::Session, state: &AppState) -> serde_json::Value {
    let idle = state.portal.config.idle_timeout;
    let at =
        |secs: u64| rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    json!({
        "csrf_token": csrf_token(id),
        "expires_at": at(session.expires),
        "idle_expires_at": at(session.ends_at(idle)),
        "idle_timeout_secs": idle.as_secs(),
    })
}

/// `POST /admin/login`: the master key in, a session cookie and the CSRF token out.
pub async fn sign_in(State(state): State<AppState>, request: Request) -> Response {
    match try_sign_in(&state, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn try_sign_in(state: &AppState, request: Request) -> Result<Response, AdminError> {
    if let Some(e) = disabled(state) {
        return Err(e);
    }
    if !same_origin(&Sender::of(&request), &state.portal.config) {
        return Err(ApiError::permission(
            "sign-in must come from the portal's own page (origin check failed)",
        )
        .into());
    }
    let client = client_addr(&request);
    if let Err(wait) = state.portal.limiter.acquire(client, Instant::now()) {
        tracing::warn!(%client, "admin sign-in rate limited");
        return Err(ApiError::rate_limit(format!(
            "too many sign-in attempts; try again in {wait} s"
        ))
        .with_retry_after(wait)
        .into());
    }
    let secure = secure_cookie(&request, &state.portal.config);
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, SIGN_IN_BODY_LIMIT_BYTES)
        .await
        .map_err(|_| ApiError::too_large("the sign-in body is larger than 16 KiB"))?;
    let presented = presented_master_key(&parts.headers, &body)?;
    let Some(master) = state.master_api_key.as_deref() else {
        return Err(ApiError::authentication("the admin API is disabled").into());
    };
    if !crate::admin::master_key_matches(&presented, master) {
        tracing::warn!(%client, "admin sign-in with a wrong master key");
        return Err(ApiError::authentication("invalid master key").into());
    }
    state.portal.limiter.succeeded(client);
    let (id, session) = state.portal.sessions.create(state.clock.now()).await?;
    tracing::info!(%client, "admin signed in to the portal");
    let cookie = session::set_cookie(&id, state.portal.config.max_lifetime, secure);
    let mut response = (
        StatusCode::OK,
        axum::Json(session_body(&id, &session, state)),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// `GET /admin/session`: whether the cookie holds a live session, and its CSRF token (the page
/// keeps it in memory only, so a reload asks again).
pub async fn current_session(State(state): State<AppState>, request: Request) -> Response {
    if let Some(e) = disabled(&state) {
        return e.into_response();
    }
    let Some(id) = session::cookie_id(request.headers()) else {
        return AdminError(ApiError::authentication("not signed in")).into_response();
    };
    match state.portal.sessions.find(&id, state.clock.now()).await {
        Ok(Some(session)) => (
            StatusCode::OK,
            axum::Json(session_body(&id, &session, &state)),
        )
            .into_response(),
        Ok(None) => AdminError(ApiError::authentication(
            "the session has expired; sign in again",
        ))
        .into_response(),
        Err(e) => AdminError::from(e).into_response(),
    }
}

/// `POST /admin/logout`: ends the session (with its CSRF token) and drops the cookie.
pub async fn sign_out(State(state): State<AppState>, request: Request) -> Response {
    let secure = secure_cookie(&request, &state.portal.config);
    if let Some(id) = session::cookie_id(request.headers()) {
        if let Err(e) = check_change(&Sender::of(&request), &id, &state.portal.config) {
            return e.into_response();
        }
        if let Err(e) = state.portal.sessions.delete(&id).await {
            return AdminError::from(e).into_response();
        }
        tracing::info!("admin signed out of the portal");
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&session::clear_cookie(secure)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
