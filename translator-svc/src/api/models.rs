//! `GET /v1/models` and `GET /v1/models/{model_id}` in Anthropic's list and object shapes, from
//! the model table; never calls Bedrock.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::context::Ctx;
use crate::error::ApiError;

/// Default `created_at` for entries that carry no date at all.
const FALLBACK_CREATED_AT: &str = "2025-01-01T00:00:00Z";

pub async fn list(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let entries: Vec<Value> = state.relay.model_objects();
    match page(entries, &params) {
        Ok(body) => Json(body).into_response(),
        Err(error) => ctx.fail(error).into_response(),
    }
}

pub async fn show(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(model_id): Path<String>,
) -> Response {
    match state.relay.model_object(&model_id) {
        Some(object) => Json(object).into_response(),
        None => ctx
            .fail(ApiError::not_found(format!("model: {model_id} not found")))
            .into_response(),
    }
}

/// The Anthropic model object for one table entry.
pub fn model_object(id: &str, display_name: &str, created_at: Option<&str>) -> Value {
    json!({
        "type": "model",
        "id": id,
        "display_name": display_name,
        "created_at": created_at.unwrap_or(FALLBACK_CREATED_AT),
    })
}

/// Newest first, then by id; `limit` 1..=1000 (default 20), `after_id` / `before_id` cursors.
fn page(mut entries: Vec<Value>, params: &HashMap<String, String>) -> Result<Value, ApiError> {
    let limit = match params.get("limit") {
        None => 20,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_at(
                    "limit",
                    "must be an integer between 1 and 1000",
                ));
            }
        },
    };
    entries.sort_by(|a, b| {
        let key = |v: &Value| {
            (
                v["created_at"].as_str().unwrap_or("").to_string(),
                v["id"].as_str().unwrap_or("").to_string(),
            )
        };
        let (ca, ia) = key(a);
        let (cb, ib) = key(b);
        cb.cmp(&ca).then(ia.cmp(&ib))
    });
    let position = |id: &str| entries.iter().position(|e| e["id"] == id);
    let (start, end, has_more) = if let Some(before) = params.get("before_id") {
        let end = position(before)
            .ok_or_else(|| ApiError::invalid_at("before_id", "unknown model id"))?;
        let start = end.saturating_sub(limit);
        (start, end, start > 0)
    } else {
        let start = match params.get("after_id") {
            Some(after) => {
                position(after)
                    .ok_or_else(|| ApiError::invalid_at("after_id", "unknown model id"))?
                    + 1
            }
            None => 0,
        };
        let end = (start + limit).min(entries.len());
        (start, end, end < entries.len())
    };
    let data: Vec<Value> = entries.get(start..end).unwrap_or_default().to_vec();
    let first_id = data.first().map(|e| e["id"].clone()).unwrap_or(Value::Null);
    let last_id = data.last().map(|e| e["id"].clone()).unwrap_or(Value::Null);
    Ok(json!({"data": data, "has_more": has_more, "first_id": first_id, "last_id": last_id}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Value> {
        (1..=5)
            .map(|i| {
                model_object(
                    &format!("m{i}"),
                    "M",
                    Some(&format!("2025-0{i}-01T00:00:00Z")),
                )
            })
            .collect()
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn newest_first_with_cursors() {
        let p = page(entries(), &params(&[("limit", "2")])).unwrap();
        assert_eq!(p["first_id"], "m5");
        assert_eq!(p["last_id"], "m4");
        assert_eq!(p["has_more"], true);
        let p = page(entries(), &params(&[("limit", "2"), ("after_id", "m4")])).unwrap();
        assert_eq!(p["data"][0]["id"], "m3");
        let p = page(entries(), &params(&[("limit", "10"), ("after_id", "m2")])).unwrap();
        assert_eq!(p["data"].as_array().unwrap().len(), 1);
        assert_eq!(p["has_more"], false);
        let p = page(entries(), &params(&[("limit", "2"), ("before_id", "m2")])).unwrap();
        assert_eq!(p["first_id"], "m4");
        assert_eq!(p["last_id"], "m3");
        assert_eq!(p["has_more"], true);
    }

    #[test]
    fn empty_page_has_null_ids_and_bad_limit_is_400() {
        let p = page(vec![], &params(&[])).unwrap();
        assert_eq!(p["first_id"], Value::Null);
        assert_eq!(
            page(entries(), &params(&[("limit", "0")]))
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
    }
}
