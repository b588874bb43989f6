//! Rate limiting through real Envoy 1.40: Redis, ratelimit-svc (in-process, clock frozen so the
//! minute never refills mid-test), and the gateway's own template with the gate filter and
//! `envoy/ratelimit.fragment.yaml`, in front of a tiny axum upstream that stands in for
//! translator-svc (it answers the gate's `Auth/Check` from a fixed key table too). The key's
//! limits reach the descriptors only through the gate, as in production; the token count
//! reaches the stream-done charge only through the gate's filter state.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use e2e::envoy::{Envoy, EnvoyOptions};
use e2e::process::{ChildProcess, find_on_path};
use e2e::stub_translator::{auth_router, grant};
use e2e::tools::{envoy, in_ci};
use ratelimit_svc::config::Config;
use ratelimit_svc::limiter::ManualClock;
use ratelimit_svc::server::Running;
use serde_json::Value;
use tokio::sync::Notify;

/// What the upstream answers, chosen per request by the test.
const MODE: &str = "x-test-mode";
const USAGE: &str = "x-test-usage";

struct Upstream {
    /// Released by the test once it has read the first SSE chunk: proves the stream is not
    /// buffered anywhere (the gate's trailer reader included) before the usage trailer is sent.
    release: Notify,
}

async fn messages(
    axum::extract::State(upstream): axum::extract::State<Arc<Upstream>>,
    headers: HeaderMap,
) -> Response {
    let usage = headers
        .get(USAGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match headers.get(MODE).and_then(|v| v.to_str().ok()) {
        Some("stream") => {
            let (mut sender, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(4);
            tokio::spawn(async move {
                let start = "event: message_start\ndata: {\"type\":\"message_start\"}\n\n";
                let _ = sender.send_data(Bytes::from(start)).await;
                upstream.release.notified().await;
                let stop = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
                let _ = sender.send_data(Bytes::from(stop)).await;
                let mut trailers = HeaderMap::new();
                if let Some(usage) = usage {
                    trailers.insert("x-gw-usage-tokens", HeaderValue::from_str(&usage).unwrap());
                }
                let _ = sender.send_trailers(trailers).await;
            });
            ([("content-type", "text/event-stream")], Body::new(body)).into_response()
        }
        _ => {
            let mut response = (
                [("content-type", "application/json")],
                r#"{"type":"message"}"#,
            )
                .into_response();
            if let Some(usage) = usage {
                response
                    .headers_mut()
                    .insert("x-gw-usage-tokens", HeaderValue::from_str(&usage).unwrap());
            }
            response
        }
    }
}

/// The keys the tests present: each maps to its key id and limits (requests, tokens a minute).
const KEYS: [(&str, u32, u32); 6] = [
    ("key-unlimited", 0, 0),
    ("key-rpm", 50, 0),
    ("key-other", 50, 0),
    ("key-tpm", 0, 1000),
    ("key-tpm-other", 0, 1000),
    ("key-tpm-json", 0, 1000),
];

/// The secret presented for a key id (never a key id itself, so the ids only come from the gate).
fn secret(key_id: &str) -> String {
    format!("sk-gw-e2e-{key_id}")
}

async fn start_upstream() -> (SocketAddr, Arc<Upstream>) {
    let upstream = Arc::new(Upstream {
        release: Notify::new(),
    });
    let keys: HashMap<String, _> = KEYS
        .iter()
        .map(|(id, rpm, tpm)| (secret(id), grant(id, "default", *rpm, *tpm)))
        .collect();
    let (auth, _calls) = auth_router(keys);
    let app = Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/models", get(|| async { "{}" }))
        .with_state(upstream.clone())
        .merge(auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // axum::serve speaks h2c with prior knowledge, which Envoy's clusters use (gRPC, trailers).
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, upstream)
}

fn redis_server() -> Option<PathBuf> {
    let found = std::env::var_os("REDIS_SERVER")
        .map(PathBuf::from)
        .filter(|path| path.is_file())
        .or_else(|| find_on_path("redis-server"));
    match found {
        Some(path) => Some(path),
        None if in_ci() => panic!("redis-server is missing and CI=true forbids skipping"),
        None => {
            eprintln!("SKIPPED: redis-server not found (apt-get install -y redis-server)");
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// redis-server on a free loopback port (retried: the port is free when picked, not reserved).
async fn start_redis(binary: &Path, dir: &Path) -> (ChildProcess, u16) {
    let mut last_error = None;
    for _ in 0..3 {
        let port = free_port();
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(String::from)
        .to_vec();
        let mut redis = ChildProcess::spawn("redis", binary, &args, &[], dir).unwrap();
        match redis
            .wait_for_line("Ready to accept connections", Duration::from_secs(20))
            .await
        {
            Ok(_) => return (redis, port),
            Err(error) => last_error = Some(error),
        }
    }
    panic!("redis-server did not start: {last_error:?}");
}

/// Everything the test needs, torn down (children killed by pid) when dropped.
struct Setup {
    _dir: tempfile::TempDir,
    _redis: ChildProcess,
    envoy: Envoy,
    ratelimit: Option<Running>,
    upstream: Arc<Upstream>,
    url: String,
    http: reqwest::Client,
}

async fn setup() -> Option<Setup> {
    let envoy_bin = envoy().unwrap()?;
    let wasm = e2e::tools::gate_wasm().unwrap()?;
    let redis_bin = redis_server()?;
    let dir = tempfile::tempdir().unwrap();

    let (redis, redis_port) = start_redis(&redis_bin, dir.path()).await;

    let mut config = Config::from_lookup(|_| None).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.http_listen = "127.0.0.1:0".parse().unwrap();
    config.redis_url = Some(format!("redis://127.0.0.1:{redis_port}/"));
    let clock = ManualClock::starting_now();
    let ratelimit = ratelimit_svc::server::start(&config, Arc::new(clock))
        .await
        .unwrap();

    let (upstream_addr, upstream) = start_upstream().await;
    let envoy = Envoy::start(EnvoyOptions {
        envoy_bin,
        wasm,
        translator_addr: upstream_addr,
        internal_secret: "ratelimit-e2e-secret".to_owned(),
        ratelimit_addr: Some(ratelimit.grpc_addr),
        work_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Some(Setup {
        _dir: dir,
        _redis: redis,
        url: envoy.url(),
        envoy,
        ratelimit: Some(ratelimit),
        upstream,
        http,
    })
}

impl Setup {
    /// POST /v1/messages with the key of `key_id` (its limits come from the key table). Forged
    /// x-gw-* headers ride along to show the gate drops them: they would lift every limit.
    fn post(&self, key_id: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/v1/messages?beta=true", self.url))
            .header("x-api-key", secret(key_id))
            .header("x-gw-key-id", "forged")
            .header("x-gw-rpm", "0")
            .header("x-gw-tpm", "0")
            .header("content-type", "application/json")
            .body(r#"{"model":"m","max_tokens":1,"messages":[]}"#)
    }

    async fn shutdown(mut self) {
        if let Some(ratelimit) = self.ratelimit.take() {
            ratelimit.shutdown().await.unwrap();
        }
    }
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header in {:?}", response.headers()))
}

/// Asserts the Anthropic 429: status, JSON body, retry-after and the ratelimit headers.
async fn assert_anthropic_429(response: reqwest::Response, kind: &str) -> Value {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "content-type"), "application/json");
    let retry_after: u64 = header(&response, "retry-after").parse().unwrap();
    assert!(retry_after >= 1);
    for suffix in ["limit", "remaining", "reset"] {
        header(&response, &format!("anthropic-ratelimit-{kind}-{suffix}"));
    }
    assert_eq!(
        header(&response, &format!("anthropic-ratelimit-{kind}-remaining")),
        "0"
    );
    assert!(response.headers().get("x-envoy-ratelimited").is_none());
    let request_id = header(&response, "request-id").to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(body["request_id"], request_id.as_str(), "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_first_request_in_a_minute_gets_an_anthropic_429() {
    let Some(setup) = setup().await else {
        return;
    };
    for i in 1..=50u32 {
        let response = setup.post("key-rpm").send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "request {i}\n{}",
            setup.envoy.log_tail(30)
        );
        // The same headers on success, added by Envoy from response_headers_to_add.
        assert_eq!(
            header(&response, "anthropic-ratelimit-requests-limit"),
            "50"
        );
        assert_eq!(
            header(&response, "anthropic-ratelimit-requests-remaining"),
            (50 - i).to_string()
        );
        chrono_like_rfc3339(header(&response, "anthropic-ratelimit-requests-reset"));
    }
    // A forged request id is dropped too: the 429 carries the gate's fresh one.
    let refused = setup
        .post("key-rpm")
        .header("x-gw-request-id", "req_e2eRateLimit0000000001")
        .send()
        .await
        .unwrap();
    let request_id = header(&refused, "request-id").to_owned();
    assert!(request_id.starts_with("req_"), "{request_id}");
    assert_ne!(request_id, "req_e2eRateLimit0000000001");
    let body = assert_anthropic_429(refused, "requests").await;
    assert_eq!(body["request_id"], request_id.as_str());
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("50 requests per minute"),
        "{body}"
    );

    // Another key is unaffected; paths other than POST /v1/messages are not counted.
    let other = setup.post("key-other").send().await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(
        header(&other, "anthropic-ratelimit-requests-remaining"),
        "49"
    );
    let models = setup
        .http
        .get(format!("{}/v1/models", setup.url))
        .header("x-api-key", secret("key-rpm"))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), StatusCode::OK);
    assert!(
        models
            .headers()
            .get("anthropic-ratelimit-requests-limit")
            .is_none()
    );
    setup.shutdown().await;
}

/// `2026-01-01T00:00:00Z`-shaped, without a date library.
fn chrono_like_rfc3339(value: &str) {
    let bytes = value.as_bytes();
    assert_eq!(bytes.len(), 20, "{value}");
    assert!(
        bytes[4] == b'-' && bytes[10] == b'T' && bytes[19] == b'Z',
        "{value}"
    );
}

/// Repeats an admission until it is refused: the stream-done charge is sent by Envoy after the
/// response completes, asynchronously, so it may land a moment after the client saw the end.
async fn until_refused(setup: &Setup, key_id: &str) -> reqwest::Response {
    for _ in 0..200 {
        let response = setup.post(key_id).send().await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            return response;
        }
        assert_eq!(response.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "the token charge never landed\n{}",
        setup.envoy.log_tail(40)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_response_spends_the_token_budget_and_the_next_request_is_refused() {
    let Some(setup) = setup().await else {
        return;
    };
    let mut stream = setup
        .post("key-tpm")
        .header(MODE, "stream")
        .header(USAGE, "1500")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(header(&stream, "anthropic-ratelimit-tokens-limit"), "1000");
    assert_eq!(
        header(&stream, "anthropic-ratelimit-tokens-remaining"),
        "1000"
    );
    // The first event arrives while the upstream still holds the rest: nothing buffers.
    let first = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .expect("the first SSE event arrives before the stream ends")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    setup.upstream.release.notify_one();
    let rest = stream.text().await.unwrap();
    assert!(rest.contains("message_stop"), "{rest}");

    let refused = until_refused(&setup, "key-tpm").await;
    let body = assert_anthropic_429(refused, "tokens").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("1000 tokens per minute"), "{message}");

    // Another key with the same limits is unaffected.
    let other = setup.post("key-tpm-other").send().await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(
        header(&other, "anthropic-ratelimit-tokens-remaining"),
        "1000"
    );

    // A JSON (non-streamed) response reports usage in a header; the client never sees it.
    let json = setup
        .post("key-tpm-json")
        .header(MODE, "json")
        .header(USAGE, "1200")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::OK);
    assert!(json.headers().get("x-gw-usage-tokens").is_none());
    assert_anthropic_429(until_refused(&setup, "key-tpm-json").await, "tokens").await;

    // A count that is not a non-negative integer charges nothing, and is still removed.
    let bogus = setup
        .post("key-tpm-other")
        .header(MODE, "json")
        .header(USAGE, "12x")
        .send()
        .await
        .unwrap();
    assert_eq!(bogus.status(), StatusCode::OK);
    assert!(bogus.headers().get("x-gw-usage-tokens").is_none());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = setup.post("key-tpm-other").send().await.unwrap();
    assert_eq!(
        header(&after, "anthropic-ratelimit-tokens-remaining"),
        "1000"
    );

    // ratelimit-svc saw exactly the two counts, once each.
    let metrics = setup.ratelimit.as_ref().unwrap().metrics.render();
    let charged = metrics
        .lines()
        .find_map(|line| line.strip_prefix(r#"ratelimit_hits_total{kind="tokens"} "#))
        .expect("a tokens counter");
    assert_eq!(charged.trim(), "2700", "{metrics}");
    setup.shutdown().await;
}

/// How many checks ratelimit-svc has answered so far (every result).
fn checks_answered(setup: &Setup) -> u64 {
    setup
        .ratelimit
        .as_ref()
        .unwrap()
        .metrics
        .render()
        .lines()
        .filter(|line| line.starts_with("ratelimit_requests_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_without_limits_never_call_the_rate_limiter() {
    let Some(setup) = setup().await else {
        return;
    };
    // A limited key first: its check before routing and its stream-done charge are answered
    // (the forged x-gw-rpm: 0 / x-gw-tpm: 0 that `post` sends do not make it look unlimited).
    let limited = setup
        .post("key-tpm-other")
        .header(MODE, "json")
        .header(USAGE, "7")
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::OK);
    header(&limited, "anthropic-ratelimit-tokens-limit");
    let mut answered = 0;
    for _ in 0..200 {
        answered = checks_answered(&setup);
        if answered >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(answered, 2, "check before routing + stream-done charge");

    // The unlimited key, JSON and streamed, with usage reported: no call at all, yet served, and
    // the usage header is still removed.
    let json = setup
        .post("key-unlimited")
        .header(MODE, "json")
        .header(USAGE, "500")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::OK);
    assert!(json.headers().get("x-gw-usage-tokens").is_none());
    assert!(
        json.headers()
            .get("anthropic-ratelimit-requests-limit")
            .is_none()
    );
    let stream = setup
        .post("key-unlimited")
        .header(MODE, "stream")
        .header(USAGE, "500")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    setup.upstream.release.notify_one();
    assert!(stream.text().await.unwrap().contains("message_stop"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(checks_answered(&setup), 2);
    setup.shutdown().await;
}

/// The fragment's sections, put into the gateway's real template slots, give a config Envoy 1.40
/// accepts (validate mode also loads the gate wasm).
#[tokio::test]
async fn fragment_slots_into_the_gateway_template_and_validates() {
    let Some(envoy_bin) = envoy().unwrap() else {
        return;
    };
    let Some(wasm) = e2e::tools::gate_wasm().unwrap() else {
        return;
    };
    let vars = xtask::envoy_render::EnvoyVars::local(&wasm, "validate-secret")
        .with_rate_limiting()
        .unwrap();
    let config = xtask::envoy_render::render_envoy(&vars).unwrap();
    assert!(config.contains("envoy.filters.http.ratelimit"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, &config).unwrap();
    let output = std::process::Command::new(envoy_bin)
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-l",
            "error",
            "-c",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "envoy rejected the rendered gateway config:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
