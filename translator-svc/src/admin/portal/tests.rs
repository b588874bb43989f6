//! The portal through the admin router: sign-in, the cookie's flags, CSRF and origin checks on
//! the JSON API, idle and absolute expiry, sign-out, the sign-in brake, the page's headers, and
//! that the master key never comes back in any response.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::keys::testing::{Harness, MASTER, harness, scan, settings, usage_record};
use crate::usage::{Outcome, UsageSink};

const HOST: &str = "127.0.0.1:8080";
const ORIGIN: &str = "http://127.0.0.1:8080";

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Reply {
    fn cookie(&self) -> Option<&str> {
        self.headers.get("set-cookie").and_then(|v| v.to_str().ok())
    }

    /// The session id the `Set-Cookie` carries.
    fn session(&self) -> String {
        let cookie = self.cookie().expect("a Set-Cookie header");
        let pair = cookie.split(';').next().unwrap();
        pair.strip_prefix("gw_admin_session=").unwrap().to_string()
    }

    fn error_type(&self) -> &str {
        self.body["error"]["type"].as_str().unwrap_or("")
    }
}

async fn send(h: &Harness, request: Request<Body>) -> Reply {
    let response = h.wired.admin_router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    // Whatever happens, the master key is never in an answer.
    assert!(!text.contains(MASTER), "master key in a body: {text}");
    for (name, value) in &headers {
        assert!(
            !value.to_str().unwrap_or_default().contains(MASTER),
            "master key in {name}"
        );
    }
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

fn request(method: Method, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("host", HOST)
}

async fn sign_in_with(h: &Harness, key: &str) -> Reply {
    let body = json!({"master_key": key}).to_string();
    send(
        h,
        request(Method::POST, "/admin/login")
            .header("origin", ORIGIN)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

/// A signed-in session: (id, CSRF token).
async fn signed_in(h: &Harness) -> (String, String) {
    let reply = sign_in_with(h, MASTER).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let csrf = reply.body["csrf_token"].as_str().unwrap().to_string();
    (reply.session(), csrf)
}

fn with_session(
    method: Method,
    uri: &str,
    session: &str,
    csrf: Option<&str>,
) -> axum::http::request::Builder {
    let mut builder = request(method, uri)
        .header("cookie", format!("theme=dark; gw_admin_session={session}"))
        .header("origin", ORIGIN)
        .header("content-type", "application/json");
    if let Some(token) = csrf {
        builder = builder.header("x-csrf-token", token);
    }
    builder
}

async fn list_keys(h: &Harness, session: &str) -> Reply {
    send(
        h,
        with_session(Method::GET, "/admin/v1/keys", session, None)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_a_csrf_token() {
    let h = harness().await;
    let reply = sign_in_with(&h, MASTER).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let cookie = reply.cookie().unwrap().to_string();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    // Plain loopback HTTP is the local run: no Secure there, Secure everywhere else.
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert_eq!(reply.body["csrf_token"].as_str().unwrap().len(), 64);
    assert_eq!(reply.body["idle_timeout_secs"], 1800);
    assert_eq!(reply.body["expires_at"], "2026-11-26T00:00:00.000Z");
    assert_eq!(reply.headers["cache-control"], "no-store");
    let public = send(
        &h,
        Request::builder()
            .method(Method::POST)
            .uri("/admin/login")
            .header("host", "gateway.example.com")
            .header("origin", "https://gateway.example.com")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "master_key={}",
                MASTER.replace('-', "%2D")
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(public.status, StatusCode::OK, "{}", public.text);
    assert!(public.cookie().unwrap().ends_with("; Secure"));

    // The stored session is keyed by a hash: the id itself is nowhere in the table.
    let id = reply.session();
    let items = scan(&h.wired.dynamo, &h.wired.dynamo.tables.keys).await;
    let sessions: Vec<_> = items
        .iter()
        .filter(|i| crate::keys::item::get_s(i, "type").as_deref() == Some("session"))
        .collect();
    assert_eq!(sessions.len(), 2);
    assert!(!format!("{items:?}").contains(&id));

    // The session admits the API, and GET /admin/session hands the same token again.
    assert_eq!(list_keys(&h, &id).await.status, StatusCode::OK);
    let again = send(
        &h,
        with_session(Method::GET, "/admin/session", &id, None)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["csrf_token"], reply.body["csrf_token"]);
}

#[tokio::test]
async fn a_wrong_or_missing_key_gets_no_session() {
    let h = harness().await;
    let wrong = "sk-gw-not-the-master-key-at-all-123";
    let reply = sign_in_with(&h, wrong).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body["error"]["message"], "invalid master key");
    assert!(reply.cookie().is_none());
    assert!(
        !reply.text.contains(wrong),
        "the presented key is not echoed"
    );
    // A body that does not parse is not quoted back either.
    let garbled = send(
        &h,
        request(Method::POST, "/admin/login")
            .header("content-type", "application/json")
            .body(Body::from(format!("{{\"master_key\": {MASTER}")))
            .unwrap(),
    )
    .await;
    assert_eq!(garbled.status, StatusCode::BAD_REQUEST);
    let plain = send(
        &h,
        request(Method::POST, "/admin/login")
            .header("content-type", "text/plain")
            .body(Body::from(MASTER))
            .unwrap(),
    )
    .await;
    assert_eq!(plain.status, StatusCode::BAD_REQUEST);
    // Another site's page cannot sign a browser in (login CSRF).
    let cross = send(
        &h,
        request(Method::POST, "/admin/login")
            .header("origin", "https://evil.example")
            .header("content-type", "application/json")
            .body(Body::from(json!({"master_key": MASTER}).to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (cross.status, cross.error_type()),
        (StatusCode::FORBIDDEN, "permission_error")
    );
    // No cookie, a made-up cookie: no access.
    let none = send(
        &h,
        request(Method::GET, "/admin/v1/keys")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let forged = list_keys(&h, &"A".repeat(43)).await;
    assert_eq!(
        (forged.status, forged.error_type()),
        (StatusCode::UNAUTHORIZED, "authentication_error")
    );
}

#[tokio::test]
async fn changes_need_the_csrf_token_and_the_portal_origin() {
    let h = harness().await;
    let (id, csrf) = signed_in(&h).await;
    let create = || Body::from(json!({"name": "from-portal"}).to_string());
    let missing = send(
        &h,
        with_session(Method::POST, "/admin/v1/keys", &id, None)
            .body(create())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (missing.status, missing.error_type()),
        (StatusCode::FORBIDDEN, "permission_error")
    );
    assert!(missing.text.contains("CSRF"));
    let wrong = send(
        &h,
        with_session(Method::POST, "/admin/v1/keys", &id, Some(&"0".repeat(64)))
            .body(create())
            .unwrap(),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let cross_site = send(
        &h,
        with_session(Method::POST, "/admin/v1/keys", &id, Some(&csrf))
            .header("sec-fetch-site", "cross-site")
            .body(create())
            .unwrap(),
    )
    .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    let mut foreign = with_session(Method::DELETE, "/admin/v1/keys/key_x", &id, Some(&csrf))
        .body(Body::empty())
        .unwrap();
    foreign
        .headers_mut()
        .insert("origin", "http://127.0.0.1:9999".parse().unwrap());
    assert_eq!(send(&h, foreign).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        h.wired.store.list_keys().await.unwrap().len(),
        0,
        "nothing was created by the refused requests"
    );

    let created = send(
        &h,
        with_session(Method::POST, "/admin/v1/keys", &id, Some(&csrf))
            .body(create())
            .unwrap(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert!(
        created.body["secret"]
            .as_str()
            .unwrap()
            .starts_with("sk-gw-")
    );
    assert_eq!(created.headers["cache-control"], "no-store");
}

#[tokio::test]
async fn sessions_end_when_idle_and_at_their_maximum_age() {
    let h = harness().await;
    let (id, _) = signed_in(&h).await;
    // Used every 20 minutes, the session lives on past the 30-minute idle limit ...
    for _ in 0..3 {
        h.clock.advance(Duration::from_secs(20 * 60));
        assert_eq!(list_keys(&h, &id).await.status, StatusCode::OK);
    }
    // ... until nothing happens for longer than that.
    h.clock.advance(Duration::from_secs(31 * 60));
    let idle = list_keys(&h, &id).await;
    assert_eq!(idle.status, StatusCode::UNAUTHORIZED);
    assert!(idle.text.contains("expired"), "{}", idle.text);
    let items = scan(&h.wired.dynamo, &h.wired.dynamo.tables.keys).await;
    assert!(
        items.is_empty(),
        "the expired session was deleted: {items:?}"
    );

    // Twelve hours after sign-in it is over however busy it was.
    let (id, _) = signed_in(&h).await;
    for _ in 0..(12 * 3) {
        h.clock.advance(Duration::from_secs(20 * 60));
        let status = list_keys(&h, &id).await.status;
        if status == StatusCode::UNAUTHORIZED {
            return;
        }
        assert_eq!(status, StatusCode::OK);
    }
    panic!("the session outlived its 12 h maximum");
}

#[tokio::test]
async fn sign_out_needs_the_token_and_ends_the_session() {
    let h = harness().await;
    let (id, csrf) = signed_in(&h).await;
    let refused = send(
        &h,
        with_session(Method::POST, "/admin/logout", &id, None)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(list_keys(&h, &id).await.status, StatusCode::OK);
    let out = send(
        &h,
        with_session(Method::POST, "/admin/logout", &id, Some(&csrf))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.cookie().unwrap().contains("Max-Age=0"));
    assert_eq!(list_keys(&h, &id).await.status, StatusCode::UNAUTHORIZED);
    let session = send(
        &h,
        with_session(Method::GET, "/admin/session", &id, None)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(session.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn repeated_wrong_keys_are_slowed_down() {
    let h = harness().await;
    for _ in 0..5 {
        let reply = sign_in_with(&h, "sk-gw-guess-guess-guess-guess-0000").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let limited = sign_in_with(&h, MASTER).await;
    assert_eq!(
        (limited.status, limited.error_type()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error")
    );
    let wait: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&wait), "{wait}");
    assert!(limited.cookie().is_none());
}

#[tokio::test]
async fn the_page_and_assets_carry_strict_headers() {
    let h = harness().await;
    let page = send(
        &h,
        request(Method::GET, "/admin/").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert!(page.text.contains(r#"src="/admin/assets/app.js""#));
    assert_eq!(
        page.text.matches("<script").count(),
        page.text.matches("<script type=\"module\" src=").count(),
        "no inline scripts"
    );
    let login = send(
        &h,
        request(Method::GET, "/admin/login")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(login.text, page.text);
    let redirect = send(
        &h,
        request(Method::GET, "/admin").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(redirect.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers["location"], "/admin/");

    for (file, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let uri = format!("/admin/assets/{file}");
        let asset = send(&h, request(Method::GET, &uri).body(Body::empty()).unwrap()).await;
        assert_eq!(asset.status, StatusCode::OK, "{file}");
        assert_eq!(asset.headers["content-type"], content_type);
        assert_eq!(asset.headers["cache-control"], "no-cache");
        let etag = asset.headers["etag"].clone();
        let again = send(
            &h,
            request(Method::GET, &uri)
                .header("if-none-match", etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    }
    let missing = send(
        &h,
        request(Method::GET, "/admin/assets/../../etc/passwd")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn budgets_list_who_is_near_or_over() {
    let h = harness().await;
    let mut near = settings("near");
    near.monthly_budget_usd = Some(1.0);
    let mut over = settings("over");
    over.monthly_budget_usd = Some(0.01);
    let mut fine = settings("fine");
    fine.monthly_budget_usd = Some(100.0);
    let (near, _) = h.create_key(near).await;
    let (over, _) = h.create_key(over).await;
    let (fine, _) = h.create_key(fine).await;
    h.create_key(settings("unbudgeted")).await;
    // Sonnet at $3/MTok input: 300k tokens = $0.90, 10k = $0.03.
    let sink = &h.wired.usage_sink;
    sink.record(usage_record(&near.id, "req_n", 300_000, 0, Outcome::Ok));
    sink.record(usage_record(&over.id, "req_o", 10_000, 0, Outcome::Ok));
    sink.record(usage_record(&fine.id, "req_f", 10_000, 0, Outcome::Ok));
    sink.flush().await;
    let (id, _) = signed_in(&h).await;
    let reply = send(
        &h,
        with_session(Method::GET, "/admin/v1/budgets", &id, None)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let rows = reply.body["data"].as_array().unwrap();
    let summary: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [("over", "over"), ("near", "near"), ("fine", "ok")]
    );
    assert_eq!(rows[1]["spent_usd"], 0.9);
    assert_eq!(rows[1]["used"], 0.9);
    assert_eq!(reply.body["month"], "2026-11");
    let bad = send(
        &h,
        with_session(Method::GET, "/admin/v1/budgets?near=2", &id, None)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_model_list_shows_the_built_in_defaults() {
    let h = harness().await;
    let config = crate::config::Config::from_source(&std::collections::HashMap::from([(
        "GATEWAY_INTERNAL_SECRET",
        "0123456789abcdef0123",
    )]))
    .unwrap();
    let router = h.wired.admin_router.clone().layer(axum::Extension(
        super::super::BuiltinModels::from_config(&config),
    ));
    let response = router
        .oneshot(
            request(Method::GET, "/admin/v1/models")
                .header("x-api-key", MASTER)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let builtin = body["builtin"].as_array().unwrap();
    let sonnet = builtin
        .iter()
        .find(|e| e["key"] == "claude-sonnet-4-5-20250929")
        .expect("Sonnet 4.5 among the defaults");
    assert!(
        sonnet["bedrock_id"]
            .as_str()
            .unwrap()
            .starts_with("global.anthropic.claude-sonnet-4-5"),
        "{sonnet}"
    );
    assert_eq!(sonnet["backend"], "invoke");
    // Aliases clients may send resolve to the same model; they are shown with it, not listed.
    assert_eq!(sonnet["aliases"], json!(["claude-sonnet-4-5"]));
    assert!(builtin.iter().all(|e| e["key"] != "claude-sonnet-4-5"));
    let opus = builtin
        .iter()
        .find(|e| e["key"] == "claude-opus-4-7")
        .expect("Opus 4.7 among the defaults");
    assert_eq!(opus["aliases"], json!([]));
    assert_eq!(body["data"], json!([]));
}

#[tokio::test]
async fn a_disabled_portal_serves_nothing_and_admits_no_session() {
    let h = harness().await;
    let (id, _) = signed_in(&h).await;
    let mut config = crate::keys::KeysConfig::for_tests(MASTER);
    config.portal.enabled = false;
    let off = crate::keys::testing::harness_with(config).await;
    let page = send(
        &off,
        request(Method::GET, "/admin/").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(
        sign_in_with(&off, MASTER).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(list_keys(&off, &id).await.status, StatusCode::UNAUTHORIZED);
    // The API with the master key is unaffected.
    let api = send(
        &off,
        request(Method::GET, "/admin/v1/keys")
            .header("x-api-key", MASTER)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(api.status, StatusCode::OK);
}
