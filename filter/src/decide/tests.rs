//! The decide flow driven through a fake host that applies effects to an in-memory request.
//! Assertions are about outcomes (what reaches upstream, what the client gets), not call order.

use super::*;
use crate::request_id;
use serde_json::Value;

const RID: &str = "req_0123456789abcdefABCDEF01";

/// A request as the host sees it, plus what the gate did to it.
struct FakeHost {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    config: Config,
    cache: AuthCache,
    gate: Gate,
    now_ms: u64,
    reply: Option<Reply>,
    auth_calls: Vec<CheckRequest>,
    /// The request is released towards upstream (callback continued or resumed).
    released: bool,
}

impl FakeHost {
    fn new(method: &str, path: &str, headers: &[(&str, &str)]) -> Self {
        Self::with(
            Config::default(),
            AuthCache::new(100),
            method,
            path,
            headers,
        )
    }

    fn with(
        config: Config,
        cache: AuthCache,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).into(), (*v).into()))
                .collect(),
            body: Vec::new(),
            config,
            cache,
            gate: Gate::new(RID.into()),
            now_ms: 1_000_000,
            reply: None,
            auth_calls: Vec::new(),
            released: false,
        }
    }

    /// The same worker (config, cache, clock) receiving the next request.
    fn next(self, method: &str, path: &str, headers: &[(&str, &str)]) -> Self {
        let mut host = Self::with(self.config, self.cache, method, path, headers);
        host.now_ms = self.now_ms;
        host
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::RemoveHeader(name) => self.headers.retain(|(n, _)| *n != name),
                Effect::SetHeader(name, value) => {
                    self.headers.retain(|(n, _)| n != name);
                    self.headers.push((name.into(), value));
                }
                Effect::CallAuth(request) => self.auth_calls.push(request),
                Effect::Reply(reply) => {
                    assert!(self.reply.is_none(), "two replies");
                    self.reply = Some(reply);
                }
                Effect::Resume => self.released = true,
            }
        }
    }

    fn flow(&mut self, step: Step) -> Flow {
        self.apply(step.effects);
        if step.flow == Flow::Continue {
            self.released = true;
        }
        step.flow
    }

    fn send_headers(&mut self, end_of_stream: bool) -> Flow {
        let headers = self.headers.clone();
        let view = RequestView {
            method: &self.method,
            path: &self.path,
            headers: &headers,
            end_of_stream,
            now_ms: self.now_ms,
        };
        let step = self
            .gate
            .on_request_headers(&view, &self.config, &mut self.cache);
        self.flow(step)
    }

    fn send_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Flow {
        self.body.extend_from_slice(chunk);
        let body = self.body.clone();
        let step = self
            .gate
            .on_request_body(body.len(), end_of_stream, || body, &self.config);
        self.flow(step)
    }

    fn answer(&mut self, answer: AuthAnswer) {
        let effects = self
            .gate
            .on_auth_answer(answer, &self.config, &mut self.cache, self.now_ms);
        self.apply(effects);
    }

    fn allow(&mut self) {
        self.answer(AuthAnswer::Answered(granted()));
    }

    fn header(&self, name: &str) -> Option<&str> {
        headers::get(&self.headers, name)
    }

    fn forwarded(&self) -> bool {
        self.released && self.reply.is_none()
    }

    fn reply_json(&self) -> (u16, Value) {
        let reply = self.reply.as_ref().expect("a local reply");
        (reply.status, serde_json::from_str(&reply.body).unwrap())
    }

    fn reply_header(&self, name: &str) -> Option<&str> {
        let reply = self.reply.as_ref()?;
        reply
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn granted() -> CheckResponse {
    CheckResponse {
        allowed: true,
        key_id: "key_abc".into(),
        tier: "priority".into(),
        requests_per_minute: 60,
        tokens_per_minute: 80_000,
        ..Default::default()
    }
}

fn denied(status: u32, error_type: &str, message: &str) -> CheckResponse {
    CheckResponse {
        status,
        error_type: error_type.into(),
        message: message.into(),
        ..Default::default()
    }
}

const BODY: &[u8] = br#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

fn assert_error(host: &FakeHost, status: u16, error_type: &str, message: &str) {
    let (got, body) = host.reply_json();
    assert_eq!(got, status, "{body}");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], error_type);
    assert_eq!(body["error"]["message"], message);
    assert_eq!(body["request_id"], RID);
    assert_eq!(host.reply_header("request-id"), Some(RID));
    assert_eq!(host.reply_header("content-type"), Some("application/json"));
    if (400..500).contains(&status) {
        assert_eq!(host.reply_header("x-should-retry"), Some("false"));
    }
    // Marked so Envoy's local_reply_config mappers leave it alone.
    assert_eq!(host.header(headers::LOCAL_REPLY), Some("1"));
    assert!(!host.forwarded());
}

#[test]
fn missing_key_is_401_and_spoofed_internal_headers_are_gone() {
    let mut host = FakeHost::new(
        "GET",
        "/v1/models",
        &[
            ("x-gw-key-id", "spoof"),
            ("x-gw-internal-secret", "guess"),
            ("x-api-key", ""),
        ],
    );
    assert_eq!(host.send_headers(true), Flow::Pause);
    assert_error(
        &host,
        401,
        "authentication_error",
        "missing API key: send x-api-key or Authorization: Bearer",
    );
    assert_eq!(host.header("x-gw-key-id"), None);
    assert_eq!(host.header("x-gw-internal-secret"), None);
    assert_eq!(host.header("x-api-key"), None);
    assert!(host.auth_calls.is_empty());
}

#[test]
fn good_key_reaches_upstream_with_identity_and_no_credentials() {
    let mut host = FakeHost::new(
        "GET",
        "/v1/models?limit=5",
        &[
            ("x-api-key", "sk-good"),
            ("authorization", "Bearer other"),
            ("x-gw-key-id", "spoof"),
            ("x-gw-rpm", "999999"),
        ],
    );
    assert_eq!(host.send_headers(true), Flow::Pause);
    assert_eq!(host.auth_calls.len(), 1);
    let call = &host.auth_calls[0];
    assert_eq!(
        (
            call.api_key.as_str(),
            call.path.as_str(),
            call.request_id.as_str()
        ),
        ("sk-good", "/v1/models", RID)
    );
    host.allow();
    assert!(host.forwarded());
    assert_eq!(host.header("x-gw-key-id"), Some("key_abc"));
    assert_eq!(host.header("x-gw-tier"), Some("priority"));
    assert_eq!(host.header("x-gw-rpm"), Some("60"));
    assert_eq!(host.header("x-gw-tpm"), Some("80000"));
    assert_eq!(host.header("x-gw-request-id"), Some(RID));
    assert_eq!(
        host.header("x-gw-model"),
        None,
        "only the messages endpoints carry a model"
    );
    assert_eq!(host.header("x-api-key"), None);
    assert_eq!(host.header("authorization"), None);
    assert_eq!(
        host.headers
            .iter()
            .filter(|(n, _)| n == "x-gw-key-id")
            .count(),
        1
    );
}

#[test]
fn bearer_token_is_a_key_and_x_api_key_wins() {
    let mut host = FakeHost::new(
        "GET",
        "/v1/models",
        &[("authorization", "bearer sk-bearer")],
    );
    host.send_headers(true);
    assert_eq!(host.auth_calls[0].api_key, "sk-bearer");
    assert_eq!(host.header("authorization"), None);

    let mut host = FakeHost::new(
        "GET",
        "/v1/models",
        &[("authorization", "Bearer b"), ("x-api-key", "x")],
    );
    host.send_headers(true);
    assert_eq!(host.auth_calls[0].api_key, "x");
}

#[test]
fn public_paths_need_no_key_but_still_get_hygiene() {
    let cases = [
        ("HEAD", "/"),
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/health/ptc"),
        ("GET", "/api/hello"),
        ("HEAD", "/api/hello"),
    ];
    for (method, path) in cases {
        let mut host = FakeHost::new(
            method,
            path,
            &[("x-gw-tier", "reserved"), ("x-api-key", "sk")],
        );
        assert_eq!(host.send_headers(true), Flow::Continue, "{method} {path}");
        assert!(host.forwarded());
        assert!(host.auth_calls.is_empty());
        assert_eq!(host.header("x-gw-tier"), None);
        assert_eq!(host.header("x-api-key"), None);
        assert_eq!(host.header("x-gw-request-id"), Some(RID));
    }
    let mut host = FakeHost::new(
        "OPTIONS",
        "/v1/messages",
        &[
            ("origin", "https://a.example"),
            ("access-control-request-method", "POST"),
        ],
    );
    assert_eq!(host.send_headers(true), Flow::Continue);
    assert!(host.forwarded());
}

#[test]
fn the_admin_portal_passes_without_a_key_and_with_spoofed_identity_removed() {
    let mut host = FakeHost::new(
        "POST",
        "/admin/v1/keys/key_1/disable",
        &[
            ("cookie", "gw_admin_session=abc"),
            ("x-csrf-token", "t"),
            ("x-gw-key-id", "master"),
            ("x-gw-internal-secret", "guess"),
        ],
    );
    assert_eq!(host.send_headers(false), Flow::Continue);
    assert!(host.forwarded());
    assert!(host.auth_calls.is_empty());
    // The translator sees the cookie and token, never a gateway identity the client made up.
    assert_eq!(host.header("cookie"), Some("gw_admin_session=abc"));
    assert_eq!(host.header("x-gw-key-id"), None);
    assert_eq!(host.header("x-gw-internal-secret"), None);
    assert_eq!(host.header("x-gw-request-id"), Some(RID));

    // The admin API with a key is verified as before (gatewayctl).
    let mut host = FakeHost::new("GET", "/admin/v1/keys", &[("x-api-key", "sk-gw-master")]);
    assert_eq!(host.send_headers(true), Flow::Pause);
    assert_eq!(host.auth_calls.len(), 1);
    assert!(!host.forwarded());
}

#[test]
fn denial_uses_status_type_and_message_of_the_verdict() {
    let mut host = FakeHost::new("GET", "/v1/models", &[("x-api-key", "sk-bad")]);
    host.send_headers(true);
    host.answer(AuthAnswer::Answered(denied(
        401,
        "authentication_error",
        "invalid API key",
    )));
    assert_error(&host, 401, "authentication_error", "invalid API key");

    let mut host = FakeHost::new("GET", "/v1/models", &[("x-api-key", "sk-broke")]);
    host.send_headers(true);
    host.answer(AuthAnswer::Answered(denied(
        403,
        "permission_error",
        "monthly budget exhausted; resets 2026-01-01",
    )));
    assert_error(
        &host,
        403,
        "permission_error",
        "monthly budget exhausted; resets 2026-01-01",
    );
}

#[test]
fn auth_outage_is_529_overloaded_never_a_pass() {
    let mut host = FakeHost::new("GET", "/v1/models", &[("x-api-key", "sk")]);
    host.send_headers(true);
    host.answer(AuthAnswer::Failed("deadline exceeded".into()));
    assert_error(
        &host,
        529,
        "overloaded_error",
        "authentication service unavailable",
    );
    assert_eq!(host.reply_header("retry-after"), Some("1"));
    // Failures are not cached: the next request asks again.
    let mut host = host.next("GET", "/v1/models", &[("x-api-key", "sk")]);
    host.send_headers(true);
    assert_eq!(host.auth_calls.len(), 1);
}

#[test]
fn verdicts_are_cached_per_key_until_their_ttl() {
    let mut host = FakeHost::new("GET", "/v1/models", &[("x-api-key", "sk-a")]);
    host.send_headers(true);
    host.allow();
    // Same key within the positive TTL: no call, passes at once.
    let mut host = host.next("GET", "/v1/models", &[("x-api-key", "sk-a")]);
    assert_eq!(host.send_headers(true), Flow::Continue);
    assert!(host.auth_calls.is_empty() && host.forwarded());
    assert_eq!(host.header("x-gw-key-id"), Some("key_abc"));
    // Another key is not served from the cache.
    let mut host = host.next("GET", "/v1/models", &[("x-api-key", "sk-b")]);
    host.send_headers(true);
    assert_eq!(host.auth_calls.len(), 1);
    // After the positive TTL (10 s) the key is checked again.
    let mut host = host.next("GET", "/v1/models", &[("x-api-key", "sk-a")]);
    host.now_ms += 10_000;
    host.send_headers(true);
    assert_eq!(host.auth_calls.len(), 1);
}

#[test]
fn denials_are_cached_for_the_negative_ttl() {
    let mut host = FakeHost::new("GET", "/v1/models", &[("x-api-key", "sk-bad")]);
    host.send_headers(true);
    host.answer(AuthAnswer::Answered(denied(
        401,
        "authentication_error",
        "invalid API key",
    )));
    let mut host = host.next("GET", "/v1/models", &[("x-api-key", "sk-bad")]);
    host.now_ms += 1_999;
    host.send_headers(true);
    assert!(host.auth_calls.is_empty());
    assert_error(&host, 401, "authentication_error", "invalid API key");
    let mut host = host.next("GET", "/v1/models", &[("x-api-key", "sk-bad")]);
    host.now_ms += 2_000;
    host.send_headers(true);
    assert_eq!(host.auth_calls.len(), 1);
}

#[test]
fn ttl_from_the_service_overrides_the_default() {
    let mut host = FakeHost::new("GET", "/v1/models", &[("x-api-key", "sk")]);
    host.send_headers(true);
    host.answer(AuthAnswer::Answered(CheckResponse {
        cache_ttl_ms: 50,
        ..granted()
    }));
    let mut host = host.next("GET", "/v1/models", &[("x-api-key", "sk")]);
    host.now_ms += 50;
    host.send_headers(true);
    assert_eq!(host.auth_calls.len(), 1);
}

#[test]
fn messages_body_is_buffered_checked_and_described() {
    let mut host = FakeHost::new(
        "POST",
        "/v1/messages/?beta=true",
        &[("x-api-key", "sk"), ("x-gw-model", "spoof")],
    );
    assert_eq!(host.send_headers(false), Flow::Pause);
    host.allow();
    assert!(!host.released, "waits for the body");
    assert_eq!(host.send_body(&BODY[..10], false), Flow::Pause);
    assert_eq!(host.send_body(&BODY[10..], true), Flow::Continue);
    assert!(host.forwarded());
    assert_eq!(host.header("x-gw-model"), Some("claude-sonnet-4-5"));
    assert_eq!(host.header("x-gw-stream"), Some("true"));
    assert_eq!(host.header("x-gw-key-id"), Some("key_abc"));
    assert_eq!(host.auth_calls[0].path, "/v1/messages");
}

#[test]
fn auth_answer_after_the_body_resumes() {
    let mut host = FakeHost::new("POST", "/v1/messages", &[("authorization", "Bearer sk")]);
    host.send_headers(false);
    assert_eq!(
        host.send_body(BODY, true),
        Flow::Pause,
        "auth still pending"
    );
    assert!(!host.released);
    host.allow();
    assert!(host.forwarded());
    assert_eq!(host.header("x-gw-stream"), Some("true"));
}

#[test]
fn malformed_bodies_are_400_with_a_json_path() {
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "/v1/messages",
            br#"{"model":"m","messages":[]}"#,
            "max_tokens: field required",
        ),
        ("/v1/messages", b"[1]", "body: must be a JSON object"),
        (
            "/v1/messages/count_tokens",
            br#"{"model":"m"}"#,
            "messages: field required",
        ),
        (
            "/v1/messages",
            br#"{"model":5,"max_tokens":1,"messages":[]}"#,
            "model: must be a string",
        ),
    ];
    for (path, body, message) in cases {
        let mut host = FakeHost::new("POST", path, &[("x-api-key", "sk")]);
        host.send_headers(false);
        host.allow();
        host.send_body(body, true);
        assert_error(&host, 400, "invalid_request_error", message);
    }
    let mut host = FakeHost::new("POST", "/v1/messages", &[("x-api-key", "sk")]);
    host.send_headers(false);
    host.send_body(b"{nope", true);
    host.allow();
    let (status, body) = host.reply_json();
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("body: invalid JSON")
    );
}

#[test]
fn count_tokens_needs_no_max_tokens_and_is_not_a_stream() {
    let mut host = FakeHost::new(
        "POST",
        "/v1/messages/count_tokens?beta=true",
        &[("x-api-key", "sk")],
    );
    host.send_headers(false);
    host.allow();
    host.send_body(
        br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
        true,
    );
    assert!(host.forwarded());
    assert_eq!(host.header("x-gw-stream"), Some("false"));
    assert_eq!(host.header("x-gw-model"), Some("m"));
}

#[test]
fn empty_messages_body_is_400_after_auth() {
    let mut host = FakeHost::new("POST", "/v1/messages", &[("x-api-key", "sk")]);
    assert_eq!(host.send_headers(true), Flow::Pause);
    assert!(host.reply.is_none(), "auth first");
    host.allow();
    assert_error(
        &host,
        400,
        "invalid_request_error",
        "body: must be a JSON object, got an empty body",
    );
}

#[test]
fn invalid_key_wins_over_a_malformed_body() {
    let mut host = FakeHost::new("POST", "/v1/messages", &[("x-api-key", "sk-bad")]);
    host.send_headers(false);
    host.send_body(b"garbage", true);
    host.answer(AuthAnswer::Answered(denied(
        401,
        "authentication_error",
        "invalid API key",
    )));
    assert_error(&host, 401, "authentication_error", "invalid API key");
}

#[test]
fn oversized_bodies_are_413() {
    let config = Config {
        max_body_bytes: 100,
        ..Config::default()
    };
    let mut host = FakeHost::with(
        config.clone(),
        AuthCache::new(10),
        "POST",
        "/v1/messages",
        &[("x-api-key", "sk")],
    );
    host.send_headers(false);
    host.allow();
    assert_eq!(host.send_body(&[b' '; 60], false), Flow::Pause);
    host.send_body(&[b' '; 60], false);
    assert_error(
        &host,
        413,
        "request_too_large",
        "request body too large: the limit is 100 bytes",
    );

    // Declared too large: answered before any body or auth call.
    let mut host = FakeHost::with(
        config,
        AuthCache::new(10),
        "POST",
        "/v1/messages",
        &[("x-api-key", "sk"), ("content-length", "101")],
    );
    host.send_headers(false);
    assert!(host.auth_calls.is_empty());
    assert_error(
        &host,
        413,
        "request_too_large",
        "request body too large: the limit is 100 bytes",
    );
}

#[test]
fn other_routes_wait_for_auth_then_stream_the_body() {
    let mut host = FakeHost::new("POST", "/api/event_logging/batch", &[("x-api-key", "sk")]);
    host.send_headers(false);
    assert_eq!(
        host.send_body(b"{}", false),
        Flow::Pause,
        "held while auth is pending"
    );
    host.allow();
    assert!(host.forwarded());
    assert_eq!(host.send_body(b"more", true), Flow::Continue);
    assert_eq!(host.header("x-gw-model"), None);
}

#[test]
fn trailers_end_the_body() {
    let mut host = FakeHost::new("POST", "/v1/messages", &[("x-api-key", "sk")]);
    host.send_headers(false);
    host.allow();
    host.send_body(BODY, false);
    let body = host.body.clone();
    let step = host.gate.on_request_trailers(|| body, &host.config);
    assert_eq!(host.flow(step), Flow::Continue);
    assert!(host.forwarded());
}

#[test]
fn late_answers_after_a_reply_change_nothing() {
    let config = Config {
        max_body_bytes: 10,
        ..Config::default()
    };
    let mut host = FakeHost::with(
        config,
        AuthCache::new(10),
        "POST",
        "/v1/messages",
        &[("x-api-key", "sk")],
    );
    host.send_headers(false);
    host.send_body(&[b'x'; 11], false);
    assert_eq!(host.reply_json().0, 413);
    host.allow();
    assert_eq!(host.reply_json().0, 413);
    assert_eq!(host.cache.len(), 1, "the answer is still cached");
}

#[test]
fn gate_ids_look_like_anthropic_request_ids() {
    assert!(request_id::is_valid(RID));
    assert_eq!(Gate::new(RID.into()).request_id(), RID);
}
