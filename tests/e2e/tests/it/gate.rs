//! The edge alone: real Envoy with the rendered template and the real gate wasm, in front of a
//! stub translator (scripted `Auth/Check` + echo). Proves key handling, header hygiene, body
//! checks and that every error a client sees is Anthropic-shaped.
//!
//! Needs Envoy (`ENVOY_BIN`, else `.venv/bin/envoy`, else PATH) and the wasm (`GATE_WASM`, else
//! `<target>/wasm32-wasip1/release/gate_filter.wasm`, which `cargo xtask test` builds; by hand:
//! `cargo build -p gate-filter --target wasm32-wasip1 --release`). Missing outside CI: skipped
//! with a message; under `CI=true`: a failure.

use std::collections::HashMap;
use std::net::SocketAddr;

use e2e::envoy::{Envoy, EnvoyOptions};
use e2e::stub_translator::{StubTranslator, denial, grant};
use e2e::tools;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

const GOOD: &str = "sk-gw-good-key";
const BROKE: &str = "sk-gw-over-budget";
const SECRET: &str = "internal-secret-for-gate-tests";

struct Edge {
    envoy: Envoy,
    stub: Option<StubTranslator>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Edge {
    /// Envoy in front of a stub translator, or `None` when Envoy or the wasm is missing (outside
    /// CI). With `translator_down`, Envoy points at a closed port instead.
    async fn start(translator_down: bool) -> Option<Self> {
        let (Some(envoy_bin), Some(wasm)) = (tools::envoy().unwrap(), tools::gate_wasm().unwrap())
        else {
            return None;
        };
        let keys = HashMap::from([
            (GOOD.to_string(), grant("key_good", "priority", 50, 40_000)),
            (
                BROKE.to_string(),
                denial(
                    403,
                    "permission_error",
                    "monthly budget exhausted; resets 2026-01-01",
                ),
            ),
        ]);
        let (stub, translator_addr) = if translator_down {
            (None, closed_port())
        } else {
            let stub = StubTranslator::start(keys).await.unwrap();
            let addr = stub.addr();
            (Some(stub), addr)
        };
        let dir = tempfile::Builder::new()
            .prefix("gate-e2e-")
            .tempdir()
            .unwrap();
        let envoy = Envoy::start(EnvoyOptions {
            envoy_bin,
            wasm,
            translator_addr,
            internal_secret: SECRET.to_string(),
            ratelimit_addr: None,
            work_dir: dir.path().to_path_buf(),
        })
        .await
        .unwrap();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .unwrap();
        Some(Self {
            envoy,
            stub,
            http,
            _dir: dir,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.envoy.url())
    }

    fn auth_calls(&self) -> usize {
        self.stub.as_ref().map_or(0, StubTranslator::auth_calls)
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if std::thread::panicking() {
            #[expect(
                clippy::print_stderr,
                reason = "Envoy's log belongs in a failed test's output"
            )]
            {
                eprintln!("{}", self.envoy.log_tail(60));
            }
        }
    }
}

/// A loopback port with nothing listening (bound, then released).
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

fn is_request_id(id: &str) -> bool {
    id.strip_prefix("req_")
        .is_some_and(|rest| rest.len() == 24 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Asserts the Anthropic error shape and returns the message.
async fn anthropic_error(response: Response, status: u16, error_type: &str) -> String {
    assert_eq!(response.status().as_u16(), status, "{response:?}");
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    let request_id = header(&response, "request-id")
        .expect("request-id header")
        .to_string();
    assert!(is_request_id(&request_id), "{request_id}");
    if (400..500).contains(&status) && status != 429 {
        assert_eq!(header(&response, "x-should-retry"), Some("false"));
    }
    let body: Value = response.json().await.expect("a JSON error body");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], error_type, "{body}");
    assert_eq!(body["request_id"], request_id, "{body}");
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    body["error"]["message"]
        .as_str()
        .expect("a message")
        .to_string()
}

/// The echo of what reached the stub translator.
async fn echoed(response: Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK, "{response:?}");
    let request_id = header(&response, "request-id")
        .unwrap_or_default()
        .to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["headers"]["x-gw-request-id"], request_id.as_str());
    body
}

fn messages_body(extra: &str) -> String {
    format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{{"role":"user","content":"{extra}"}}]}}"#
    )
}

#[tokio::test]
async fn keys_are_checked_and_identity_headers_set() {
    let Some(edge) = Edge::start(false).await else {
        return;
    };

    // No key at all (and an empty one).
    let response = edge.http.get(edge.url("/v1/models")).send().await.unwrap();
    let message = anthropic_error(response, 401, "authentication_error").await;
    assert_eq!(
        message,
        "missing API key: send x-api-key or Authorization: Bearer"
    );
    let response = edge
        .http
        .get(edge.url("/v1/models"))
        .header("x-api-key", "")
        .send()
        .await;
    anthropic_error(response.unwrap(), 401, "authentication_error").await;

    // Unknown key, and a key the service refuses with 403.
    let response = edge
        .http
        .get(edge.url("/v1/models"))
        .header("x-api-key", "sk-nope")
        .send()
        .await;
    let message = anthropic_error(response.unwrap(), 401, "authentication_error").await;
    assert_eq!(message, "invalid API key");
    let response = edge
        .http
        .get(edge.url("/v1/models"))
        .bearer_auth(BROKE)
        .send()
        .await;
    let message = anthropic_error(response.unwrap(), 403, "permission_error").await;
    assert_eq!(message, "monthly budget exhausted; resets 2026-01-01");

    // A good key reaches upstream with the gateway's headers, not the client's.
    let response = edge
        .http
        .get(edge.url("/v1/models?limit=5"))
        .header("x-api-key", GOOD)
        .header("authorization", "Bearer something-else")
        .header("x-gw-key-id", "spoofed")
        .header("x-gw-tier", "reserved")
        .header("x-gw-internal-secret", "guessed")
        .header("x-gw-local-reply", "1")
        .send()
        .await
        .unwrap();
    let echo = echoed(response).await;
    let headers = &echo["headers"];
    assert_eq!(echo["path"], "/v1/models?limit=5");
    assert_eq!(headers["x-gw-key-id"], "key_good");
    assert_eq!(headers["x-gw-tier"], "priority");
    assert_eq!(headers["x-gw-rpm"], "50");
    assert_eq!(headers["x-gw-tpm"], "40000");
    assert_eq!(headers["x-gw-internal-secret"], SECRET);
    assert!(is_request_id(headers["x-gw-request-id"].as_str().unwrap()));
    for gone in [
        "x-api-key",
        "authorization",
        "x-gw-local-reply",
        "x-gw-model",
    ] {
        assert!(
            headers.get(gone).is_none(),
            "{gone} reached upstream: {echo}"
        );
    }

    // Bearer works too, and the verdict is cached: no second Auth/Check for the same key.
    let calls = edge.auth_calls();
    let response = edge
        .http
        .get(edge.url("/v1/models"))
        .bearer_auth(GOOD)
        .send()
        .await
        .unwrap();
    assert_eq!(echoed(response).await["headers"]["x-gw-key-id"], "key_good");
    assert_eq!(
        edge.auth_calls(),
        calls,
        "a cached verdict needs no Auth/Check call"
    );

    // Envoy's own local reply (direct 404 for /metrics) is rewritten into the Anthropic shape.
    let response = edge
        .http
        .get(edge.url("/metrics"))
        .header("x-api-key", GOOD)
        .send()
        .await;
    anthropic_error(response.unwrap(), 404, "not_found_error").await;
}

#[tokio::test]
async fn non_utf8_header_values_do_not_break_the_filter() {
    let Some(edge) = Edge::start(false).await else {
        return;
    };
    // obs-text (Latin-1) in a header value is legal HTTP; the filter must neither trap nor reject.
    let latin1 = reqwest::header::HeaderValue::from_bytes(b"caf\xe9-client/1.0").unwrap();
    for _ in 0..2 {
        let response = edge
            .http
            .get(edge.url("/v1/models"))
            .header("x-api-key", GOOD)
            .header("user-agent", latin1.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(echoed(response).await["headers"]["x-gw-key-id"], "key_good");
    }
    let response = edge
        .http
        .get(edge.url("/v1/models"))
        .header("x-api-key", GOOD)
        .send()
        .await;
    assert_eq!(
        echoed(response.unwrap()).await["headers"]["x-gw-key-id"],
        "key_good"
    );
}

#[tokio::test]
async fn probes_need_no_key() {
    let Some(edge) = Edge::start(false).await else {
        return;
    };
    let response = edge.http.head(edge.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for path in ["/health", "/ready", "/api/hello"] {
        let response = edge
            .http
            .get(edge.url(path))
            .header("x-api-key", GOOD)
            .send()
            .await;
        let echo = echoed(response.unwrap()).await;
        assert!(
            echo["headers"].get("x-api-key").is_none(),
            "credentials are removed on {path}"
        );
        assert!(
            echo["headers"].get("x-gw-key-id").is_none(),
            "{path} is not authenticated"
        );
    }
    assert_eq!(edge.auth_calls(), 0);
}

#[tokio::test]
async fn bodies_are_checked_and_described() {
    let Some(edge) = Edge::start(false).await else {
        return;
    };
    let post = |path: &str| {
        edge.http
            .post(edge.url(path))
            .header("x-api-key", GOOD)
            .header("content-type", "application/json")
    };

    // Malformed bodies: 400 with a JSON path.
    let response = post("/v1/messages")
        .body(r#"{"model":"m","messages":[]}"#)
        .send()
        .await;
    let message = anthropic_error(response.unwrap(), 400, "invalid_request_error").await;
    assert_eq!(message, "max_tokens: field required");
    let response = post("/v1/messages/count_tokens?beta=true")
        .body("{nope")
        .send()
        .await;
    let message = anthropic_error(response.unwrap(), 400, "invalid_request_error").await;
    assert!(message.starts_with("body: invalid JSON"), "{message}");

    // A good body, with ?beta=true and a trailing slash.
    let response = post("/v1/messages/?beta=true")
        .body(messages_body("hi"))
        .send()
        .await;
    let echo = echoed(response.unwrap()).await;
    assert_eq!(echo["headers"]["x-gw-model"], "claude-sonnet-4-5");
    assert_eq!(echo["headers"]["x-gw-stream"], "true");
    assert_eq!(echo["headers"]["x-gw-key-id"], "key_good");

    // count_tokens needs no max_tokens.
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    let response = post("/v1/messages/count_tokens").json(&body).send().await;
    assert_eq!(
        echoed(response.unwrap()).await["headers"]["x-gw-stream"],
        "false"
    );

    // 5 MB passes whole.
    let big = messages_body(&"a".repeat(5 * 1024 * 1024));
    let response = post("/v1/messages").body(big.clone()).send().await;
    assert_eq!(echoed(response.unwrap()).await["body_bytes"], big.len());

    // 40 MB: 413 request_too_large, declared (content-length) or streamed (chunked).
    let huge = messages_body(&"a".repeat(40 * 1024 * 1024));
    let response = post("/v1/messages").body(huge.clone()).send().await;
    anthropic_error(response.unwrap(), 413, "request_too_large").await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = huge
        .into_bytes()
        .chunks(1 << 20)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let stream = reqwest::Body::wrap_stream(futures_stream(chunks));
    let response = post("/v1/messages").body(stream).send().await;
    anthropic_error(response.unwrap(), 413, "request_too_large").await;
}

#[tokio::test]
async fn http2_clients_get_the_same_answers() {
    let Some(edge) = Edge::start(false).await else {
        return;
    };
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let post = |body: String| {
        h2.post(edge.url("/v1/messages"))
            .header("x-api-key", GOOD)
            .body(body)
    };
    let response = post(messages_body("over h2")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(
        echoed(response).await["headers"]["x-gw-model"],
        "claude-sonnet-4-5"
    );
    let response = post(r#"{"model":"m"}"#.to_string()).send().await.unwrap();
    let message = anthropic_error(response, 400, "invalid_request_error").await;
    assert_eq!(message, "messages: field required");
    let response = post(messages_body(&"a".repeat(40 * 1024 * 1024)))
        .send()
        .await
        .unwrap();
    anthropic_error(response, 413, "request_too_large").await;
    let response = h2.get(edge.url("/v1/models")).send().await.unwrap();
    anthropic_error(response, 401, "authentication_error").await;
}

#[tokio::test]
async fn outages_are_anthropic_errors() {
    let Some(edge) = Edge::start(true).await else {
        return;
    };
    // The gate cannot verify the key: 529 from the filter, never a pass.
    let response = edge
        .http
        .get(edge.url("/v1/models"))
        .header("x-api-key", GOOD)
        .send()
        .await;
    let response = response.unwrap();
    assert_eq!(header(&response, "retry-after"), Some("1"));
    let message = anthropic_error(response, 529, "overloaded_error").await;
    assert_eq!(message, "authentication service unavailable");
    // Envoy's own 503 (no upstream) for an unauthenticated probe: mapped to 529.
    let response = edge.http.get(edge.url("/health")).send().await.unwrap();
    anthropic_error(response, 529, "overloaded_error").await;
}

/// A body stream from ready chunks (reqwest wants a `Stream`; no extra crate for one line).
fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl tokio_stream::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    tokio_stream::iter(chunks)
}
