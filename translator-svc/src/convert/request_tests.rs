//! Golden tests of the request conversions. Each directory under `fixtures/request/` holds an
//! `input.json` (the Anthropic body plus test settings) and one expected file per path:
//! `invoke.json`, `converse.json`, `count_tokens.json` (a result or an `error`). `BLESS=1`
//! rewrites the expected files; review the diff.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::beta::BetaPolicy;
use crate::error::ApiError;
use crate::models::{Family, ModelEntry, ModelTable, Route};

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CaseOptions {
    server_tools: Option<String>,
    context_edits_allowed: Option<Vec<String>>,
    tool_types_pass: Vec<String>,
    strip_billing_header: bool,
    cache_ttl_override: Option<String>,
    adaptive_fallback_budget: Option<u32>,
    service_tier: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[allow(dead_code, reason = "documentation for readers of the fixture")]
    description: String,
    #[serde(default)]
    anthropic_beta: Vec<String>,
    #[serde(default)]
    options: CaseOptions,
    #[serde(default)]
    operator_models: Vec<ModelEntry>,
    /// Defaults: `invoke` and `converse` for Claude, `converse` otherwise.
    #[serde(default)]
    paths: Vec<String>,
    request: Value,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/request")
}

fn error_json(e: &ApiError) -> Value {
    json!({"error": {"status": e.status.as_u16(), "type": e.error_type.as_str(), "message": e.message}})
}

/// The count_tokens plan with the base64 Invoke body decoded, so the golden file is readable.
fn count_tokens_json(plan: &CountTokensPlan) -> Value {
    match plan {
        CountTokensPlan::Estimate { input_tokens } => {
            json!({"estimate": {"input_tokens": input_tokens}})
        }
        CountTokensPlan::Bedrock { model_id, input } => {
            let mut input = input.clone();
            if let Some(body) = input.pointer("/invokeModel/body").and_then(Value::as_str) {
                let bytes = media::decode_base64(body).unwrap();
                input["invokeModel"]["body"] =
                    json!({"decoded": serde_json::from_slice::<Value>(&bytes).unwrap()});
            }
            json!({"bedrock": {"model_id": model_id, "input": input}})
        }
    }
}

fn run_path(path: &str, request: &Value, opts: &RequestOptions) -> Value {
    match path {
        "invoke" => match to_invoke_body(request.clone(), opts) {
            Ok(r) => json!({"service_tier": r.service_tier, "body": r.body}),
            Err(e) => error_json(&e),
        },
        "converse" => match to_converse_request(request.clone(), opts) {
            Ok(r) => serde_json::to_value(&r).unwrap(),
            Err(e) => error_json(&e),
        },
        "count_tokens" => match to_count_tokens_input(request, opts) {
            Ok(plan) => count_tokens_json(&plan),
            Err(e) => error_json(&e),
        },
        other => panic!("unknown path {other}"),
    }
}

fn route_for(case: &Case) -> Result<Route, ApiError> {
    let table = ModelTable::builtin("global", true).with_overrides(case.operator_models.clone());
    table.resolve(case.request["model"].as_str().unwrap_or_default())
}

fn run_case(dir: &Path, bless: bool) -> Vec<String> {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let text = std::fs::read_to_string(dir.join("input.json")).unwrap();
    let case: Case =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}/input.json: {e}"));
    let route = route_for(&case).unwrap_or_else(|e| panic!("{name}: {e}"));
    let policy = BetaPolicy::default_policy();
    let client = BetaPolicy::parse_header_values(
        &case
            .anthropic_beta
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let edits = case.options.context_edits_allowed.clone();
    let rename: HashMap<String, String> = options::DEFAULT_TOOL_TYPE_RENAME
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let mut opts = RequestOptions::new(&route, &client, &policy);
    opts.server_tools = match case.options.server_tools.as_deref() {
        Some("strip") => ServerToolsPolicy::Strip,
        _ => ServerToolsPolicy::Reject,
    };
    if let Some(edits) = &edits {
        opts.context_edits_allowed = edits;
    }
    opts.tool_types_pass = &case.options.tool_types_pass;
    opts.tool_type_rename = &rename;
    opts.strip_billing_header = case.options.strip_billing_header;
    opts.cache_ttl_override = case.options.cache_ttl_override.clone();
    if let Some(budget) = case.options.adaptive_fallback_budget {
        opts.adaptive_fallback_budget = budget;
    }
    opts.service_tier = case.options.service_tier.clone();

    let paths: Vec<String> = if !case.paths.is_empty() {
        case.paths.clone()
    } else if route.family() == Family::Claude {
        vec!["invoke".into(), "converse".into()]
    } else {
        vec!["converse".into()]
    };
    let mut failures = Vec::new();
    for path in paths {
        let actual = run_path(&path, &case.request, &opts);
        let file = dir.join(format!("{path}.json"));
        if bless {
            std::fs::write(&file, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
            continue;
        }
        let expected: Option<Value> = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if expected.as_ref() != Some(&actual) {
            failures.push(format!(
                "{name}/{path}.json differs (BLESS=1 to regenerate), actual:\n{}",
                serde_json::to_string_pretty(&actual).unwrap()
            ));
        }
    }
    failures
}

#[test]
fn golden_request_fixtures() {
    let bless = std::env::var("BLESS").is_ok_and(|v| v == "1");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input.json").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 30, "fixtures missing: {}", dirs.len());
    let failures: Vec<String> = dirs.iter().flat_map(|d| run_case(d, bless)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

mod fuzz;
mod unit;
