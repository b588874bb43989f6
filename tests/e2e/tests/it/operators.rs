//! The operator's day, end to end through the whole gateway (real Envoy + gate wasm +
//! translator-svc with its embedded key store + ratelimit-svc + the fake Bedrock): keys made with
//! `gatewayctl` work with the Python SDK and Claude Code, a key's `--rpm` is enforced as an
//! Anthropic `RateLimitError` without touching other keys, and `gatewayctl keys disable` locks a
//! key out within the documented bound (verdict cache: 10 s in the filter + 5 s in the service).

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::clients::{self, Target};
use e2e::stack::{Stack, StackOptions};
use e2e::tools;
use serde_json::{Value, json};

const MODEL: &str = "claude-sonnet-4-5-20250929";
/// What the fake's `[[fake:text]]` built-in answers.
const SCRIPTED_TEXT: &str = "This is a scripted text reply from the fake Bedrock.";
/// The documented revocation bound is 15 s; 5 s of slack for a loaded machine.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(500);

/// A key as `gatewayctl keys create` reported it.
struct Key {
    id: String,
    secret: String,
}

/// `gatewayctl --url <envoy> --master-key <master> ARGS...`: its stdout, or a panic with both
/// streams when it fails.
async fn gatewayctl(ctl: &Path, stack: &Stack, args: &[&str]) -> String {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(ctl)
            .args(["--url", &stack.url, "--master-key", &stack.master_key])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("gatewayctl did not finish within 30 s")
    .expect("run gatewayctl");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "gatewayctl {args:?} failed\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `gatewayctl keys create --name NAME [--rpm N]`, parsed from its human output.
async fn create_key(ctl: &Path, stack: &Stack, name: &str, rpm: Option<u32>) -> Key {
    let rpm = rpm.map(|n| n.to_string());
    let mut args = vec!["keys", "create", "--name", name];
    if let Some(rpm) = &rpm {
        args.extend(["--rpm", rpm]);
    }
    let out = gatewayctl(ctl, stack, &args).await;
    let id = out
        .lines()
        .find_map(|line| line.strip_prefix("created key "))
        .and_then(|rest| rest.strip_suffix(&format!(" ({name})")))
        .unwrap_or_else(|| panic!("no `created key <id> ({name})` line in:\n{out}"))
        .to_string();
    let secret = out
        .lines()
        .find_map(|line| line.strip_prefix("secret (shown once, store it now): "))
        .unwrap_or_else(|| panic!("no secret line in:\n{out}"))
        .to_string();
    assert!(
        secret.starts_with("sk-gw-"),
        "unexpected secret format: {secret}"
    );
    Key { id, secret }
}

fn target<'a>(stack: &'a Stack, key: &'a Key) -> Target<'a> {
    Target {
        base_url: &stack.url,
        key: &key.secret,
        bearer: false,
    }
}

fn assert_scripted_message(out: &Value) {
    assert_eq!(out["type"], "message", "{out:#}");
    assert_eq!(out["content"][0]["text"], SCRIPTED_TEXT, "{out:#}");
}

/// One raw `POST /v1/messages` with `key`: (status, JSON body).
async fn raw_message(http: &reqwest::Client, stack: &Stack, key: &Key) -> (u16, Value) {
    let response = http
        .post(format!("{}/v1/messages", stack.url))
        .header("x-api-key", &key.secret)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(
            json!({
                "model": MODEL,
                "max_tokens": 16,
                "messages": [{"role": "user", "content": "Still there? [[fake:text]]"}],
            })
            .to_string(),
        )
        .send()
        .await
        .expect("raw request");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gatewayctl_keys_rate_limit_and_revocation() {
    let Some(python) = tools::python().expect("python") else {
        return;
    };
    let Some(clients) = tools::clients_dir().expect("clients") else {
        return;
    };
    let Some(stack) = Stack::start(StackOptions::default().with_ratelimit())
        .await
        .expect("start the gateway")
    else {
        return;
    };
    let ctl = tools::gatewayctl_bin().expect("gatewayctl");

    // Two keys from the operator CLI, through Envoy (admin API behind the master key).
    let limited = create_key(&ctl, &stack, "e2e-limited", Some(2)).await;
    // No limits: Claude Code may make several requests per prompt.
    let open = create_key(&ctl, &stack, "e2e-open", None).await;
    assert_ne!(limited.id, open.id);

    // 1. The limited key works with the Python SDK: request 1 of its 2 per minute.
    let out = clients::python_sdk(
        &python,
        &clients,
        "create",
        MODEL,
        &target(&stack, &limited),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_scripted_message(&out);

    // 2. Request 2 passes, request 3 is an Anthropic RateLimitError carrying the key's limit.
    let out = clients::python_sdk(
        &python,
        &clients,
        "rate_limited",
        MODEL,
        &target(&stack, &limited),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(out["error_class"], "RateLimitError", "{out:#}");
    assert_eq!(out["succeeded_before"], 1, "{out:#}");
    assert_eq!(out["status"], 429, "{out:#}");
    assert_eq!(out["body"]["type"], "error", "{out:#}");
    assert_eq!(out["body"]["error"]["type"], "rate_limit_error", "{out:#}");
    assert_eq!(out["requests_limit"], "2", "{out:#}");

    // The other key is unaffected: the Python SDK and Claude Code both get through.
    let out = clients::python_sdk(&python, &clients, "create", MODEL, &target(&stack, &open))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_scripted_message(&out);
    let (out, run) = clients::claude_code(&clients, "Say hi [[fake:text]]", &target(&stack, &open))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(out["is_error"], false, "{run}");
    assert_eq!(out["result"], SCRIPTED_TEXT, "{out:#}");

    // 3. Disable the working key: within the bound every request with it is refused with 401.
    let http = stack.http();
    let (status, body) = raw_message(&http, &stack, &open).await;
    assert_eq!(
        status, 200,
        "the open key must work before it is disabled: {body:#}"
    );
    gatewayctl(&ctl, &stack, &["keys", "disable", &open.id]).await;
    let disabled_at = Instant::now();
    let revoked_after = loop {
        let (status, body) = raw_message(&http, &stack, &open).await;
        match status {
            401 => {
                assert_eq!(body["type"], "error", "{body:#}");
                assert_eq!(body["error"]["type"], "authentication_error", "{body:#}");
                break disabled_at.elapsed();
            }
            // A verdict cached before the disable: still admitted, for now.
            200 => {}
            other => panic!("unexpected {other} while waiting for the revocation: {body:#}"),
        }
        assert!(
            disabled_at.elapsed() < REVOCATION_DEADLINE,
            "a disabled key still worked after {REVOCATION_DEADLINE:?}"
        );
        tokio::time::sleep(POLL).await;
    };
    // The measured delay, for `--nocapture` runs.
    eprintln!("disabled key refused {revoked_after:?} after `gatewayctl keys disable`");
    // Refused for good, and the limited key is still limited (not reset by the other key's fate).
    let (status, _) = raw_message(&http, &stack, &open).await;
    assert_eq!(status, 401);
    let (status, body) = raw_message(&http, &stack, &limited).await;
    assert_eq!(status, 429, "{body:#}");
}
