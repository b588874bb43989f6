//! `gatewayctl` against a running admin API (embedded store in memory, loopback port 0).

use std::time::Duration;

use serde_json::Value;
use translator_svc::auth::Verdict;
use translator_svc::convert::response::TokenUsage;
use translator_svc::keys::{KeysConfig, Wired, wire};
use translator_svc::usage::{Outcome, UsageRecord, UsageSink};

const MASTER: &str = "sk-gw-gatewayctl-test-master-key";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn gatewayctl(url: &str, key: &str, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatewayctl"))
        .args(args)
        .env("GATEWAY_URL", url)
        .env("MASTER_API_KEY", key)
        .output()
        .await
        .expect("run gatewayctl");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn ok(url: &str, args: &[&str]) -> String {
    let run = gatewayctl(url, MASTER, args).await;
    assert_eq!(run.code, 0, "gatewayctl {args:?}: {}", run.stderr);
    run.stdout
}

async fn ok_json(url: &str, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    serde_json::from_str(&ok(url, &with_json).await).expect("JSON output")
}

async fn serve() -> (Wired, String) {
    let wired = wire(&KeysConfig::for_tests(MASTER)).await.expect("wire");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let router = wired.admin_router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (wired, url)
}

fn record(key_id: &str, request_id: &str) -> UsageRecord {
    UsageRecord {
        request_id: request_id.into(),
        key_id: Some(key_id.into()),
        requested_model: "claude-sonnet-4-5".into(),
        resolved_model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
        api: "invoke",
        tier: Some("flex".into()),
        stream: false,
        usage: TokenUsage {
            input_tokens: 1000,
            output_tokens: 100,
            cache_read_input_tokens: 0,
            cache_creation_input_tokens: 0,
        },
        cache_write_1h_tokens: 0,
        latency: Duration::from_millis(50),
        time_to_first_token: None,
        outcome: Outcome::Ok,
        ptc: None,
    }
}

#[tokio::test]
async fn gatewayctl_drives_the_admin_api() {
    let (wired, url) = serve().await;
    let args = [
        "keys", "create", "--name", "ci", "--rpm", "60", "--tpm", "1000", "--tier", "flex",
        "--budget", "50",
    ];
    let created = ok_json(&url, &args).await;
    let id = created["key"]["id"].as_str().expect("id").to_string();
    let secret = created["secret"].as_str().expect("secret").to_string();
    assert_eq!(created["key"]["tier"], "flex");
    let Verdict::Allowed(grant) = wired.verifier.check(&secret).await.expect("check") else {
        panic!("the new key is refused")
    };
    assert_eq!(
        (grant.key_id.as_str(), grant.requests_per_minute),
        (id.as_str(), 60)
    );

    let human = ok(&url, &["keys", "create", "--name", "second"]).await;
    assert!(human.contains("secret (shown once"), "{human}");
    let list = ok(&url, &["keys", "list"]).await;
    assert!(list.starts_with("ID"), "{list}");
    assert!(
        list.contains(&id) && list.contains("second") && list.contains("flex"),
        "{list}"
    );
    assert!(!list.contains(&secret[10..]));

    let shown = ok_json(&url, &["keys", "show", &id]).await;
    assert_eq!(shown["usage"]["budget_remaining_usd"], 50.0);
    let updated = ok_json(&url, &["keys", "update", &id, "--rpm", "5", "--no-budget"]).await;
    assert_eq!(
        (
            updated["key"]["requests_per_minute"].as_u64(),
            &updated["key"]["monthly_budget_usd"]
        ),
        (Some(5), &Value::Null)
    );

    assert_eq!(
        ok_json(&url, &["keys", "disable", &id]).await["key"]["status"],
        "disabled"
    );
    assert!(matches!(
        wired.verifier.check(&secret).await.expect("check"),
        Verdict::Denied(_)
    ));
    assert_eq!(
        ok_json(&url, &["keys", "enable", &id]).await["key"]["status"],
        "active"
    );
    let rotated = ok(&url, &["keys", "rotate", &id]).await;
    let new_secret = rotated
        .rsplit(' ')
        .next()
        .expect("secret")
        .trim()
        .to_string();
    assert!(
        new_secret.starts_with("sk-gw-") && new_secret != secret,
        "{rotated}"
    );
    assert!(matches!(
        wired.verifier.check(&new_secret).await.expect("check"),
        Verdict::Allowed(_)
    ));

    wired.usage_sink.record(record(&id, "req_a"));
    wired.usage_sink.record(record(&id, "req_b"));
    wired.usage_sink.flush().await;
    let usage = ok(&url, &["usage", "--by", "model"]).await;
    assert!(
        usage.contains("claude-sonnet-4-5") && usage.contains("TOTAL"),
        "{usage}"
    );
    let usage = ok_json(&url, &["usage", "--key", &id]).await;
    assert_eq!(usage["totals"]["requests"], 2);
    // Flex: half of (1000 * $3 + 100 * $15) per MTok, twice.
    assert_eq!(usage["totals"]["cost_nanos"], 4_500_000);
    let requests = ok_json(&url, &["keys", "requests", &id, "--limit", "1"]).await;
    assert_eq!(requests["has_more"], true);

    let model = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc";
    let price = ok_json(
        &url,
        &["pricing", "set", model, "--input", "1", "--output", "2"],
    )
    .await;
    assert_eq!(price["model"], model);
    assert!(
        ok(&url, &["pricing"])
            .await
            .contains("application-inference-profile/abc")
    );
    ok(&url, &["pricing", "delete", model]).await;

    ok(
        &url,
        &[
            "models",
            "set",
            "my-coder",
            "--bedrock-id",
            "qwen.qwen3-coder-30b-a3b-v1:0",
        ],
    )
    .await;
    assert_eq!(wired.model_source.model_overrides().await.len(), 1);
    assert!(ok(&url, &["models", "list"]).await.contains("my-coder"));
    ok(&url, &["models", "delete", "my-coder"]).await;

    assert_eq!(
        ok_json(&url, &["keys", "delete", &id]).await["deleted"],
        true
    );
    let gone = gatewayctl(&url, MASTER, &["keys", "show", &id]).await;
    assert_eq!(gone.code, 1);
    assert!(
        gone.stderr.contains("404") && gone.stderr.contains("not_found_error"),
        "{}",
        gone.stderr
    );
}

async fn key_with_budget(url: &str, name: &str, budget: &str) -> String {
    let created = ok_json(url, &["keys", "create", "--name", name, "--budget", budget]).await;
    created["key"]["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn gatewayctl_lists_and_sets_budgets() {
    let (wired, url) = serve().await;
    // Each record costs 2_250_000 nano-USD (flex: half of 1000 x $3 + 100 x $15 per MTok).
    let over = key_with_budget(&url, "over", "0.002").await;
    let near = key_with_budget(&url, "near", "0.0025").await;
    let fine = key_with_budget(&url, "fine", "50").await;
    let unbudgeted = ok_json(&url, &["keys", "create", "--name", "unbudgeted"]).await;
    wired.usage_sink.record(record(&over, "req_over"));
    wired.usage_sink.record(record(&near, "req_near"));
    wired.usage_sink.record(record(&fine, "req_fine"));
    wired.usage_sink.flush().await;

    let table = ok(&url, &["budgets"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("budgets ") && lines[0].contains("near from 80%"),
        "{table}"
    );
    assert!(lines[1].starts_with("ID"), "{table}");
    // Over first, then near; a key well within its budget is left out without --all.
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[2].starts_with(&over) && lines[2].contains("over") && lines[2].contains("112.5%"),
        "{table}"
    );
    assert!(
        lines[3].starts_with(&near) && lines[3].contains("near") && lines[3].contains("90.0%"),
        "{table}"
    );
    assert!(!table.contains(&fine), "{table}");

    let all = ok_json(&url, &["budgets", "--all"]).await;
    let states: Vec<(&str, &str)> = all["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|row| {
            (
                row["key_id"].as_str().unwrap(),
                row["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            (over.as_str(), "over"),
            (near.as_str(), "near"),
            (fine.as_str(), "ok")
        ],
        "keys without a budget are not listed"
    );
    assert!(
        !all.to_string()
            .contains(unbudgeted["key"]["id"].as_str().unwrap())
    );
    let everything = ok(&url, &["budgets", "--all"]).await;
    assert!(everything.contains(&fine), "{everything}");
    // A stricter threshold moves the 90 % key back to ok.
    let strict = ok(&url, &["budgets", "--near", "0.95"]).await;
    assert!(
        strict.contains(&over) && !strict.contains(&near),
        "{strict}"
    );

    let set = ok(&url, &["budgets", "set", &over, "10"]).await;
    assert!(set.contains("monthly budget 10.00 USD"), "{set}");
    let cleared = ok_json(&url, &["budgets", "clear", &near]).await;
    assert_eq!(cleared["key"]["monthly_budget_usd"], Value::Null);
    let table = ok(&url, &["budgets"]).await;
    assert!(
        table.contains("no key is near or over its budget"),
        "{table}"
    );
    let all = ok_json(&url, &["budgets"]).await;
    assert_eq!(all["data"].as_array().map(Vec::len), Some(2), "{all}");
    assert_eq!(
        (&all["data"][0]["key_id"], &all["data"][0]["budget_usd"]),
        (&Value::from(over.as_str()), &Value::from(10.0)),
        "{all}"
    );

    let bad = gatewayctl(&url, MASTER, &["budgets", "--near", "2"]).await;
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("invalid_request_error: near"),
        "{}",
        bad.stderr
    );
    let negative = gatewayctl(&url, MASTER, &["budgets", "set", &fine, "-5"]).await;
    assert_eq!(negative.code, 1);
    assert!(
        negative.stderr.contains("monthly_budget_usd"),
        "{}",
        negative.stderr
    );
    let unknown = gatewayctl(&url, MASTER, &["budgets", "set", "key_nope", "5"]).await;
    assert!(
        unknown.code == 1 && unknown.stderr.contains("not_found_error"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
async fn gatewayctl_reports_errors_with_an_exit_code() {
    let (_wired, url) = serve().await;
    let wrong = gatewayctl(&url, "sk-gw-not-the-master-key", &["keys", "list"]).await;
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("authentication_error"),
        "{}",
        wrong.stderr
    );
    let bad = gatewayctl(
        &url,
        MASTER,
        &["keys", "create", "--name", "x", "--budget=-5"],
    )
    .await;
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr
            .contains("invalid_request_error: monthly_budget_usd"),
        "{}",
        bad.stderr
    );
    let tier = gatewayctl(
        &url,
        MASTER,
        &["keys", "create", "--name", "x", "--tier", "turbo"],
    )
    .await;
    assert!(
        tier.code == 1 && tier.stderr.contains("turbo"),
        "{}",
        tier.stderr
    );
    let down = gatewayctl("http://127.0.0.1:1", MASTER, &["keys", "list"]).await;
    assert_eq!(down.code, 2);
    assert!(down.stderr.contains("cannot reach"), "{}", down.stderr);
    let no_key = gatewayctl(&url, "", &["keys", "list"]).await;
    assert_eq!(no_key.code, 2);
    assert!(
        no_key.stderr.contains("MASTER_API_KEY"),
        "{}",
        no_key.stderr
    );
}
