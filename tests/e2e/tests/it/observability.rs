//! Metrics through real Envoy: the gate filter's verdict-cache counters in Envoy's Prometheus
//! stats after repeated requests with one key, Envoy's own statistics the dashboard uses,
//! translator-svc's `/metrics` agreeing with them, `/metrics` refused on the public listener, and
//! the stats listener serving `GET /stats/prometheus` and nothing else of the admin API.

#[path = "../../../observability/catalogue.rs"]
mod catalogue;

use std::time::Duration;

use e2e::process::ChildProcess;
use e2e::stack::{Stack, StackOptions};
use e2e::tools;
use fake_bedrock::Scenario;
use serde_json::json;

const MODEL: &str = "claude-sonnet-4-5-20250929";

async fn text(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_and_gateway_stats_are_in_envoys_prometheus_output() {
    let Some(stack) = Stack::start(StackOptions::default()).await.unwrap() else {
        return;
    };
    let http = stack.http();
    // Three requests with one key: the first asks translator-svc (a miss), the next two are
    // answered from the worker's cache (Envoy runs one worker in tests); so is the /metrics try.
    for _ in 0..3 {
        stack.fake.enqueue(Scenario::text("counted"));
        let response = http
            .post(format!("{}/v1/messages", stack.url))
            .header("x-api-key", &stack.master_key)
            .json(&json!({"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", stack.logs());
        response.bytes().await.unwrap();
    }
    // Prometheus metrics never leave through the public listener, not even with a valid key.
    let status = http
        .get(format!("{}/metrics", stack.url))
        .header("x-api-key", &stack.master_key)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);

    let (status, envoy) = text(
        &http,
        &format!("{}/stats/prometheus", stack.envoy_admin_url()),
    )
    .await;
    assert_eq!(status, 200);
    let problems = catalogue::problems("envoy", &envoy);
    assert!(problems.is_empty(), "{problems:#?}\n{envoy}");
    assert_eq!(
        catalogue::value(&envoy, "gate_auth_cache_misses", &[]),
        1.0,
        "{envoy}"
    );
    assert_eq!(
        catalogue::value(&envoy, "gate_auth_cache_hits", &[]),
        3.0,
        "{envoy}"
    );
    assert_eq!(
        catalogue::value(
            &envoy,
            "envoy_cluster_upstream_rq_xx",
            &[
                ("envoy_cluster_name", "translator"),
                ("envoy_response_code_class", "2")
            ],
        ),
        3.0,
        "{envoy}"
    );
    assert_eq!(
        catalogue::value(
            &envoy,
            "envoy_http_downstream_rq_xx",
            &[
                ("envoy_http_conn_manager_prefix", "gateway"),
                ("envoy_response_code_class", "4")
            ],
        ),
        1.0,
        "the /metrics refusal\n{envoy}"
    );

    // translator-svc saw the same: one Auth/Check (the miss), three answered requests.
    let (status, translator) = text(&http, &format!("{}/metrics", stack.translator_url)).await;
    assert_eq!(status, 200);
    // (Names and labels of every translator metric: translator-svc/tests/it/metrics.rs.)
    assert_eq!(
        catalogue::value(
            &translator,
            "translator_auth_checks_total",
            &[("result", "allowed")]
        ),
        1.0,
        "{translator}"
    );
    assert_eq!(
        catalogue::value(
            &translator,
            "translator_http_requests_total",
            &[
                ("route", "/v1/messages"),
                ("status", "200"),
                ("model", MODEL)
            ],
        ),
        3.0,
        "{translator}"
    );
    assert!(
        catalogue::value(
            &translator,
            "translator_tokens_total",
            &[("model", MODEL), ("kind", "input")],
        ) > 0.0,
        "{translator}"
    );
}

/// A loopback port nobody listens on right now (Envoy binds it a moment later; a clash makes
/// Envoy exit and the caller retries with another).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The bound port of a named listener, from the admin API.
async fn listener_port(client: &reqwest::Client, admin: &str, name: &str) -> Option<u16> {
    let listeners: serde_json::Value = client
        .get(format!("{admin}/listeners?format=json"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    listeners["listener_statuses"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == name)?["local_address"]["socket_address"]["port_value"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
}

/// Envoy with the real template whose admin API is on a known port (the stats listener proxies
/// to it), and the stats listener's bound port.
async fn envoy_with_stats(dir: &std::path::Path) -> Option<(ChildProcess, u16, u16)> {
    let (Some(envoy_bin), Some(wasm)) = (tools::envoy().unwrap(), tools::gate_wasm().unwrap())
    else {
        return None;
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut failures = Vec::new();
    for attempt in 0..5 {
        let admin_port = free_port();
        let vars = xtask::envoy_render::EnvoyVars {
            listen_port: 0,
            admin_port,
            stats_port: 0,
            // Nothing behind it: this test only reads stats.
            translator_port: free_port(),
            ratelimit_port: 1,
            ..xtask::envoy_render::EnvoyVars::local(&wasm, "stats-test-secret")
        };
        let config = xtask::envoy_render::render_envoy(&vars).unwrap();
        let path = dir.join(format!("envoy-{attempt}.yaml"));
        std::fs::write(&path, config).unwrap();
        let args: Vec<String> = [
            "-c",
            &path.display().to_string(),
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "-l",
            "warning",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let mut envoy =
            ChildProcess::spawn(&format!("envoy-{attempt}"), &envoy_bin, &args, &[], dir).unwrap();
        let admin = format!("http://127.0.0.1:{admin_port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            if envoy.check_running().is_err() {
                break; // most likely the admin port was taken meanwhile: try another
            }
            if let Some(port) = listener_port(&client, &admin, "stats").await {
                return Some((envoy, admin_port, port));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        failures.push(envoy.log_tail(20));
    }
    panic!(
        "Envoy did not start with the stats listener:\n{}",
        failures.join("\n---\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_listener_serves_prometheus_stats_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_envoy, _admin_port, stats_port)) = envoy_with_stats(dir.path()).await else {
        return;
    };
    let http = reqwest::Client::new();
    let stats = format!("http://127.0.0.1:{stats_port}");
    let (status, body) = text(&http, &format!("{stats}/stats/prometheus")).await;
    assert_eq!(status, 200);
    // The filter defined its counters at configure time: present (zero) before any request.
    assert_eq!(catalogue::value(&body, "gate_auth_cache_hits", &[]), 0.0);
    assert!(
        catalogue::parse(&body)
            .iter()
            .any(|s| s.name == "gate_auth_cache_misses"),
        "{body}"
    );
    assert!(
        body.lines().any(|l| l.starts_with("envoy_server_live")),
        "{body}"
    );
    // The rest of the admin API stays unreachable from here.
    for path in [
        "/stats",
        "/ready",
        "/config_dump",
        "/clusters",
        "/stats/prometheus/x",
    ] {
        let (status, _) = text(&http, &format!("{stats}{path}")).await;
        assert_eq!(status, 404, "{path}");
    }
    for path in ["/quitquitquit", "/drain_listeners", "/stats/prometheus"] {
        let status = http
            .post(format!("{stats}{path}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "POST {path}");
    }
    // Envoy is still up after the POST /quitquitquit attempt.
    let (status, _) = text(&http, &format!("{stats}/stats/prometheus")).await;
    assert_eq!(status, 200);
}
