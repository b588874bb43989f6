//! What `gatewayctl` sends and prints: request bodies from flags, URL pieces, and tables.

use serde_json::{Map, Value, json};

use super::args::{KeySettings, KeyUpdate};

/// One path segment, percent-encoded (model names may hold `/` and `:`).
pub fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", segment(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

pub fn settings_body(s: KeySettings) -> Value {
    let mut body = Map::new();
    body.insert("name".into(), json!(s.name));
    let optional = [
        ("owner", s.owner.map(Value::from)),
        ("requests_per_minute", s.rpm.map(Value::from)),
        ("tokens_per_minute", s.tpm.map(Value::from)),
        ("tier", s.tier.map(Value::from)),
        ("monthly_budget_usd", s.budget.map(Value::from)),
        ("allowed_models", s.models.map(Value::from)),
        ("cache_ttl", s.cache_ttl.map(Value::from)),
    ];
    body.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v))),
    );
    Value::Object(body)
}

pub fn update_body(u: KeyUpdate) -> Value {
    let mut body = Map::new();
    let optional = [
        ("name", u.name.map(Value::from)),
        ("owner", u.owner.map(Value::from)),
        ("requests_per_minute", u.rpm.map(Value::from)),
        ("tokens_per_minute", u.tpm.map(Value::from)),
        ("tier", u.tier.map(Value::from)),
        (
            "monthly_budget_usd",
            u.budget
                .map(Value::from)
                .or(u.no_budget.then_some(Value::Null)),
        ),
        (
            "allowed_models",
            u.models
                .map(Value::from)
                .or(u.all_models.then_some(Value::Null)),
        ),
        ("cache_ttl", u.cache_ttl.map(Value::from)),
    ];
    body.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v))),
    );
    Value::Object(body)
}

pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Left-aligned columns, two spaces apart.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_uppercase()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

pub fn keys_table(keys: &Value) -> String {
    let rows = keys
        .as_array()
        .map(|keys| {
            keys.iter()
                .map(|k| {
                    [
                        "id",
                        "name",
                        "key_prefix",
                        "status",
                        "tier",
                        "requests_per_minute",
                        "tokens_per_minute",
                        "monthly_budget_usd",
                        "last_used_at",
                    ]
                    .iter()
                    .map(|f| text(&k[*f]))
                    .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &[
            "id",
            "name",
            "prefix",
            "status",
            "tier",
            "rpm",
            "tpm",
            "budget_usd",
            "last_used",
        ],
        rows,
    )
}

pub fn usage_table(usage: &Value, by: &str) -> String {
    let group = if by == "key" { "key_id" } else { by };
    let fields = [
        "requests",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
    ];
    let row = |r: &Value, name: String| {
        let mut cells = vec![name];
        cells.extend(fields.iter().map(|f| text(&r[*f])));
        cells.push(format!("{:.6}", r["cost_usd"].as_f64().unwrap_or(0.0)));
        cells
    };
    let mut rows: Vec<Vec<String>> = usage["data"]
        .as_array()
        .map(|data| data.iter().map(|r| row(r, text(&r[group]))).collect())
        .unwrap_or_default();
    rows.push(row(&usage["totals"], "TOTAL".into()));
    let title = format!(
        "usage {} .. {} (UTC)",
        text(&usage["from"]),
        text(&usage["to"])
    );
    let headers = [
        group,
        "requests",
        "input",
        "output",
        "cache_read",
        "cache_write",
        "cost_usd",
    ];
    format!("{title}\n{}", table(&headers, rows))
}

/// `GET /admin/v1/budgets` as a table, over first; only keys near or over unless `all`.
pub fn budgets_table(budgets: &Value, all: bool) -> String {
    let usd = |v: &Value| format!("{:.2}", v.as_f64().unwrap_or(0.0));
    let rows: Vec<Vec<String>> = budgets["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| all || row["state"] != "ok")
        .map(|row| {
            vec![
                text(&row["key_id"]),
                text(&row["name"]),
                text(&row["state"]),
                format!("{:.1}%", row["used"].as_f64().unwrap_or(0.0) * 100.0),
                usd(&row["spent_usd"]),
                usd(&row["budget_usd"]),
                usd(&row["remaining_usd"]),
                text(&row["requests"]),
                text(&row["status"]),
            ]
        })
        .collect();
    let near = budgets["near"].as_f64().unwrap_or(0.0) * 100.0;
    let title = format!(
        "budgets {} (UTC month), near from {near:.0}%",
        text(&budgets["month"])
    );
    if rows.is_empty() {
        let none = if all {
            "no key has a monthly budget".to_owned()
        } else {
            "no key is near or over its budget (--all lists every key with one)".to_owned()
        };
        return format!("{title}\n{none}");
    }
    let headers = [
        "id",
        "name",
        "state",
        "used",
        "spent_usd",
        "budget_usd",
        "remaining_usd",
        "requests",
        "status",
    ];
    format!("{title}\n{}", table(&headers, rows))
}
