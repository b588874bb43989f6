//! Golden fixture helpers for the response-side tests: fixtures live under
//! `translator-svc/fixtures/`, and `BLESS=1` rewrites the expected files instead of comparing.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::convert::response::ResponseOptions;
use crate::error::{ApiError, ErrorType};

pub const MESSAGE_ID: &str = "msg_0123456789ABCDEFGHIJKLMN";
pub const REQUEST_ID: &str = "req_0123456789ABCDEFGHIJKLMN";

pub fn fixture_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(sub)
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Compares `actual` with the expected file, or writes it when `BLESS` is set.
pub fn assert_golden(expected: &Path, actual: &str) {
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(expected, actual)
            .unwrap_or_else(|e| panic!("writing {}: {e}", expected.display()));
        return;
    }
    let Ok(want) = std::fs::read_to_string(expected) else {
        panic!(
            "{} is missing; run with BLESS=1 to create it",
            expected.display()
        );
    };
    if want != actual {
        let first = want
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| want.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs at line {}\n--- expected\n{want}\n--- actual\n{actual}\n(run with BLESS=1 to accept)",
            expected.display(),
            first + 1
        );
    }
}

/// Names of the fixtures in `dir` whose file name ends in `suffix`, sorted.
pub fn names(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(suffix).map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// Test options: fixed ids so outputs are stable; a fixture may override any field.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FixtureOptions {
    requested_model: String,
    message_id: String,
    request_id: String,
    stop_sequences: Vec<String>,
    is_claude: bool,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        FixtureOptions {
            requested_model: "claude-sonnet-4-5".into(),
            message_id: MESSAGE_ID.into(),
            request_id: REQUEST_ID.into(),
            stop_sequences: Vec::new(),
            is_claude: true,
        }
    }
}

pub fn options(overrides: Option<&Value>) -> ResponseOptions {
    let o: FixtureOptions = match overrides {
        Some(v) => serde_json::from_value(v.clone()).expect("fixture options"),
        None => FixtureOptions::default(),
    };
    ResponseOptions {
        requested_model: o.requested_model,
        message_id: o.message_id,
        request_id: o.request_id,
        stop_sequences: o.stop_sequences,
        is_claude: o.is_claude,
    }
}

/// `{"type": "<anthropic error type>", "message": "..."}` as an `ApiError`.
pub fn api_error(v: &Value) -> ApiError {
    let kind = match v["type"].as_str().expect("error.type") {
        "invalid_request_error" => ErrorType::InvalidRequest,
        "rate_limit_error" => ErrorType::RateLimit,
        "overloaded_error" => ErrorType::Overloaded,
        "api_error" => ErrorType::Api,
        other => panic!("unsupported error type in fixture: {other}"),
    };
    ApiError::new(kind, v["message"].as_str().expect("error.message"))
}
