//! The admin portal in a real headless browser (Debian's Chromium driven by playwright-core,
//! `tests/clients/portal.mjs`) through the whole gateway (real Envoy + gate wasm +
//! translator-svc with its embedded store + ratelimit-svc + the fake Bedrock): sign in with the
//! master key, create a key and read its secret once, use that key with the Python SDK, see the
//! request on the usage page, edit budget/pricing/model mapping, disable the key (the SDK is then
//! refused within the documented bound), rotate it, sign out (the old session cookie no longer
//! works).
//! Screenshots of every page land in `target/e2e-artifacts/portal/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use e2e::clients::{self, Target};
use e2e::stack::{Stack, StackOptions};
use e2e::tools;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const MODEL: &str = "claude-sonnet-4-5-20250929";
const SCRIPTED_TEXT: &str = "This is a scripted text reply from the fake Bedrock.";
/// How long one browser step may take (page loads, polling the usage page).
const STEP_TIMEOUT: Duration = Duration::from_secs(90);
/// The documented revocation bound is 15 s; 5 s of slack for a loaded machine.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(20);
/// Every page the script photographs.
const SCREENSHOTS: &[&str] = &[
    "01-sign-in",
    "02-key-created",
    "03-keys",
    "04-usage",
    "05-budgets",
    "06-pricing",
    "07-models",
    "08-api-error",
    "09-key-disabled",
    "10-rotate-confirm",
    "11-signed-out",
];

/// `node tests/clients/portal.mjs`, spoken to line by line.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    stderr_path: PathBuf,
}

impl Browser {
    async fn start(
        node: &Path,
        clients: &Path,
        chromium: &Path,
        stack: &Stack,
        artifacts: &Path,
    ) -> Browser {
        let stderr_path = stack.log_dir().join("portal-node.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("create the node log");
        let mut child = Command::new(node)
            .arg(clients.join("portal.mjs"))
            .current_dir(clients)
            .env("PORTAL_URL", &stack.url)
            // In the environment, not argv: nothing else on the machine sees it.
            .env("PORTAL_MASTER_KEY", &stack.master_key)
            .env("PORTAL_ARTIFACTS", artifacts)
            .env("CHROMIUM", chromium)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("start node portal.mjs");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Browser {
            child,
            stdin,
            lines,
            stderr_path,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The next step the script reports; it must be `name`.
    async fn expect_step(&mut self, name: &str) -> Value {
        let line = tokio::time::timeout(STEP_TIMEOUT, self.lines.next_line())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no `{name}` step within {STEP_TIMEOUT:?}\n{}",
                    self.stderr()
                )
            })
            .expect("read the script's output");
        let Some(line) = line else {
            let status = self.child.wait().await.ok();
            panic!(
                "portal.mjs ended ({status:?}) before `{name}`:\n{}",
                self.stderr()
            );
        };
        let event: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("portal.mjs printed a non-JSON line ({e}): {line}"));
        assert_eq!(event["step"], name, "{event:#}\n{}", self.stderr());
        event
    }

    /// Lets a step that waits for the test go on.
    async fn proceed(&mut self) {
        self.stdin
            .write_all(b"ok\n")
            .await
            .expect("answer the script");
        self.stdin.flush().await.expect("flush");
    }

    async fn finish(mut self) {
        let status = tokio::time::timeout(STEP_TIMEOUT, self.child.wait())
            .await
            .expect("portal.mjs did not exit")
            .expect("wait for portal.mjs");
        assert!(
            status.success(),
            "portal.mjs failed: {status}\n{}",
            self.stderr()
        );
    }
}

/// `target/e2e-artifacts/portal`, emptied.
fn artifact_dir() -> PathBuf {
    let target = tools::profile_dir()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| tools::workspace_root().join("target"));
    let dir = target.join("e2e-artifacts").join("portal");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the artifact directory");
    dir
}

/// A PNG of at least `min_width` x 300 pixels and some substance (not a blank frame).
fn assert_screenshot(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(
        width >= 1000 && height >= 300,
        "{}: {width}x{height}",
        path.display()
    );
    assert!(
        bytes.len() > 10_000,
        "{}: only {} bytes",
        path.display(),
        bytes.len()
    );
}

async fn sdk(python: &Path, clients: &Path, stack: &Stack, secret: &str, case: &str) -> Value {
    let target = Target {
        base_url: &stack.url,
        key: secret,
        bearer: false,
    };
    clients::python_sdk(python, clients, case, MODEL, &target)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_portal_in_a_real_browser() {
    let Some(python) = tools::python().expect("python") else {
        return;
    };
    let Some(clients) = tools::clients_dir().expect("clients") else {
        return;
    };
    let Some(node) = tools::node().expect("node") else {
        return;
    };
    let Some(chromium) = tools::chromium().expect("chromium") else {
        return;
    };
    let Some(stack) = Stack::start(StackOptions::default().with_ratelimit())
        .await
        .expect("start the gateway")
    else {
        return;
    };
    let artifacts = artifact_dir();
    let mut browser = Browser::start(&node, &clients, &chromium, &stack, &artifacts).await;

    // Signed in through Envoy without any API key: the cookie is HttpOnly and SameSite=Strict
    // (the script checks the browser kept no key anywhere).
    let signed_in = browser.expect_step("signed_in").await;
    assert_eq!(signed_in["cookie"]["httpOnly"], true, "{signed_in:#}");
    assert_eq!(signed_in["cookie"]["sameSite"], "Strict");
    assert_eq!(signed_in["cookie"]["path"], "/admin");

    // The key made in the browser works with the Python SDK.
    let created = browser.expect_step("key_created").await;
    let secret = created["secret"].as_str().unwrap().to_string();
    let key_id = created["key_id"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("sk-gw-") && key_id.starts_with("key_"),
        "{created:#}"
    );
    let out = sdk(&python, &clients, &stack, &secret, "create").await;
    assert_eq!(out["type"], "message", "{out:#}");
    assert_eq!(out["content"][0]["text"], SCRIPTED_TEXT, "{out:#}");
    let input_tokens = out["usage"]["input_tokens"].as_u64().unwrap();
    browser.proceed().await;

    // The usage page shows exactly that request, with its tokens and model.
    let usage = browser.expect_step("usage_seen").await;
    assert_eq!(usage["requests"], 1, "{usage:#}");
    assert_eq!(
        usage["input_tokens"].as_u64(),
        Some(input_tokens),
        "{usage:#}"
    );
    assert!(
        usage["by_model"].as_str().unwrap().contains(MODEL),
        "{usage:#}"
    );
    assert!(usage["chart_bars"].as_u64().unwrap() >= 1, "{usage:#}");

    let pages = browser.expect_step("pages_checked").await;
    assert_eq!(pages["budget_state"], "ok", "{pages:#}");
    assert_eq!(pages["sonnet_aliases"], "claude-sonnet-4-5", "{pages:#}");
    assert!(
        pages["error_message"]
            .as_str()
            .unwrap()
            .contains("request req_"),
        "API errors are shown with their request id: {pages:#}"
    );

    // Disabled in the browser: the SDK is refused within the documented bound.
    let disabled = browser.expect_step("key_disabled").await;
    assert_eq!(disabled["key_id"], key_id.as_str());
    let disabled_at = Instant::now();
    loop {
        let out = sdk(&python, &clients, &stack, &secret, "create_or_error").await;
        if out["error_class"] == "AuthenticationError" {
            assert_eq!(out["status"], 401, "{out:#}");
            assert_eq!(
                out["body"]["error"]["type"], "authentication_error",
                "{out:#}"
            );
            break;
        }
        assert_eq!(out["type"], "message", "unexpected answer: {out:#}");
        assert!(
            disabled_at.elapsed() < REVOCATION_DEADLINE,
            "the disabled key still worked after {REVOCATION_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "disabled key refused {:?} after the portal's Disable",
        disabled_at.elapsed()
    );
    browser.proceed().await;

    // Rotated in the browser: the old secret stays refused, the new one is refused too while
    // the key is disabled (rotation does not re-enable).
    let rotated = browser.expect_step("rotated").await;
    let new_secret = rotated["secret"].as_str().unwrap();
    assert!(
        new_secret.starts_with("sk-gw-") && new_secret != secret,
        "{rotated:#}"
    );
    let out = sdk(&python, &clients, &stack, new_secret, "create_or_error").await;
    assert_eq!(out["error_class"], "AuthenticationError", "{out:#}");

    // Signed out: the old session cookie opens nothing any more, through Envoy.
    let signed_out = browser.expect_step("signed_out").await;
    let old = signed_out["old_session"].as_str().unwrap();
    let http = stack.http();
    for path in ["/admin/v1/keys", "/admin/session"] {
        let response = http
            .get(format!("{}{path}", stack.url))
            .header("cookie", format!("gw_admin_session={old}"))
            .send()
            .await
            .expect("replay the old cookie");
        assert_eq!(response.status(), 401, "{path} with a signed-out session");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "authentication_error", "{body:#}");
    }
    // And without a cookie or key the admin API stays closed, while gatewayctl's way (the master
    // key) still works through the same filter.
    let response = http
        .get(format!("{}/admin/v1/keys", stack.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = http
        .get(format!("{}/admin/v1/keys/{key_id}", stack.url))
        .header("x-api-key", &stack.master_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["key"]["status"], "disabled", "{body:#}");
    assert_eq!(body["key"]["monthly_budget_usd"], 5.0, "{body:#}");
    browser.proceed().await;
    browser.finish().await;

    for name in SCREENSHOTS {
        assert_screenshot(&artifacts.join(format!("{name}.png")));
    }
    eprintln!("portal screenshots in {}", artifacts.display());
}
