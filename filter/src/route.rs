//! What kind of request this is, from method, path and whether a key is presented: public
//! probes, the admin portal, the two messages endpoints whose body the gate checks, or anything
//! else (authenticated, body untouched).

use crate::headers::{self, HeaderList};
use crate::key;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Health, readiness, connectivity probes and CORS preflight: no key needed.
    Public,
    /// `/admin` and below without an API key: the admin portal's page, assets, sign-in and its
    /// cookie-authenticated API calls. Passed on without a key; translator-svc admits only a
    /// valid session (cookie + CSRF token) there and trusts nothing else the client sends.
    Portal,
    /// `POST /v1/messages`: body checked, `max_tokens` required.
    Messages,
    /// `POST /v1/messages/count_tokens`: body checked, no `max_tokens`.
    CountTokens,
    /// Every other request: key needed, body passed through.
    Other,
}

impl Route {
    pub fn checks_body(self) -> bool {
        matches!(self, Route::Messages | Route::CountTokens)
    }

    /// Whether the gate verifies an API key before passing the request on.
    pub fn needs_key(self) -> bool {
        !matches!(self, Route::Public | Route::Portal)
    }
}

/// The path without query string or fragment and without a trailing `/` (but `/` stays `/`).
pub fn normalize_path(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    let path = &path[..end];
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
}

pub fn classify(method: &str, path: &str, headers: &HeaderList) -> Route {
    let path = normalize_path(path);
    let method = method.to_ascii_uppercase();
    let get_or_head = method == "GET" || method == "HEAD";
    let preflight =
        method == "OPTIONS" && headers::get(headers, "access-control-request-method").is_some();
    match path {
        _ if preflight => Route::Public,
        "/health" | "/ready" | "/health/ptc" => Route::Public,
        "/" | "/api/hello" if get_or_head => Route::Public,
        // With a key (gatewayctl, scripts) the admin API is verified like any other path.
        p if is_admin(p) && key::extract(headers).is_none() => Route::Portal,
        "/v1/messages" if method == "POST" => Route::Messages,
        "/v1/messages/count_tokens" if method == "POST" => Route::CountTokens,
        _ => Route::Other,
    }
}

/// `/admin` or anything below it (not `/administrator`).
fn is_admin(path: &str) -> bool {
    path.strip_prefix("/admin")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(method: &str, path: &str) -> Route {
        classify(method, path, &[])
    }

    #[test]
    fn normalizes_query_and_trailing_slash() {
        assert_eq!(normalize_path("/v1/messages?beta=true"), "/v1/messages");
        assert_eq!(normalize_path("/v1/messages/"), "/v1/messages");
        assert_eq!(normalize_path("/v1/messages/?beta=true"), "/v1/messages");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("/?x=1"), "/");
        assert_eq!(normalize_path(""), "/");
    }

    #[test]
    fn messages_endpoints() {
        assert_eq!(c("POST", "/v1/messages"), Route::Messages);
        assert_eq!(c("POST", "/v1/messages/?beta=true"), Route::Messages);
        assert_eq!(
            c("POST", "/v1/messages/count_tokens?beta=true"),
            Route::CountTokens
        );
        assert_eq!(c("POST", "/v1/messages/count_tokens/"), Route::CountTokens);
        assert_eq!(c("GET", "/v1/messages"), Route::Other);
        assert_eq!(c("POST", "/v1/messages/batches"), Route::Other);
        assert!(Route::Messages.checks_body() && Route::CountTokens.checks_body());
        assert!(!Route::Other.checks_body() && !Route::Public.checks_body());
    }

    #[test]
    fn public_probes() {
        for path in ["/health", "/ready", "/health/ptc", "/health/", "/ready?x=1"] {
            assert_eq!(c("GET", path), Route::Public, "{path}");
        }
        assert_eq!(c("HEAD", "/health"), Route::Public);
        assert_eq!(c("HEAD", "/"), Route::Public);
        assert_eq!(c("GET", "/"), Route::Public);
        assert_eq!(c("GET", "/api/hello"), Route::Public);
        assert_eq!(c("HEAD", "/api/hello"), Route::Public);
        assert_eq!(c("POST", "/"), Route::Other);
        assert_eq!(c("POST", "/api/hello"), Route::Other);
        assert_eq!(c("GET", "/v1/models"), Route::Other);
    }

    #[test]
    fn the_admin_portal_passes_without_a_key_the_api_with_a_key_is_verified() {
        for (method, path) in [
            ("GET", "/admin"),
            ("GET", "/admin/"),
            ("GET", "/admin/assets/app.js"),
            ("POST", "/admin/login"),
            ("POST", "/admin/logout"),
            ("GET", "/admin/v1/keys"),
            ("POST", "/admin/v1/keys/key_1/disable"),
            ("DELETE", "/admin/v1/keys/key_1?x=1"),
        ] {
            assert_eq!(c(method, path), Route::Portal, "{method} {path}");
        }
        assert!(!Route::Portal.needs_key() && !Route::Portal.checks_body());
        assert!(!Route::Public.needs_key() && Route::Other.needs_key());
        let with_key = |name: &str, value: &str| vec![(name.to_owned(), value.to_owned())];
        let master = with_key("x-api-key", "sk-gw-master");
        assert_eq!(classify("GET", "/admin/v1/keys", &master), Route::Other);
        let bearer = with_key("authorization", "Bearer sk-gw-master");
        assert_eq!(classify("POST", "/admin/v1/keys", &bearer), Route::Other);
        // Only the /admin tree, not look-alikes.
        assert_eq!(c("GET", "/administrator"), Route::Other);
        assert_eq!(c("GET", "/v1/admin"), Route::Other);
        assert_eq!(c("POST", "/v1/messages"), Route::Messages);
    }

    #[test]
    fn cors_preflight_is_public_plain_options_is_not() {
        let preflight = vec![
            ("origin".to_owned(), "https://app.example".to_owned()),
            (
                "access-control-request-method".to_owned(),
                "POST".to_owned(),
            ),
        ];
        assert_eq!(
            classify("OPTIONS", "/v1/messages", &preflight),
            Route::Public
        );
        assert_eq!(c("OPTIONS", "/v1/messages"), Route::Other);
    }
}
