//! Who is near or over their monthly budget: every key with a budget, its spend this month from
//! the same counters the request path enforces, most used first.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use super::{AdminResult, AppState, json as respond};
use crate::error::ApiError;
use crate::keys::KeyStatus;
use crate::keys::clock::Date;
use crate::pricing::{nanos_to_usd, usd_to_nanos};

/// Default share of the budget from which a key counts as near (the portal's highlight).
const DEFAULT_NEAR: f64 = 0.8;

/// `GET /admin/v1/budgets?near=0.8`: `{month, near, data: [{key_id, name, status, budget_usd,
/// spent_usd, remaining_usd, used, state}]}` with `state` `over`, `near` or `ok`.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> AdminResult {
    let q = query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::invalid_request(format!("invalid query string: {e}")))?;
    let near = match q.get("near") {
        None => DEFAULT_NEAR,
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|n| (0.0..=1.0).contains(n))
            .ok_or_else(|| ApiError::invalid_request("near: expected a share between 0 and 1"))?,
    };
    let month = Date::of(state.clock.now()).month_label();
    let keys: Vec<_> = state
        .store
        .list_keys()
        .await?
        .into_iter()
        .filter(|k| k.settings.monthly_budget_usd.is_some())
        .collect();
    let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
    let spends: Vec<_> = futures::stream::iter(ids)
        .map(|id| {
            let (store, month) = (state.store.clone(), month.clone());
            async move { store.month_spend(&id, &month).await }
        })
        .buffered(8)
        .try_collect()
        .await?;
    let mut rows: Vec<(f64, serde_json::Value)> = keys
        .iter()
        .zip(spends)
        .map(|(key, spend)| {
            let budget = usd_to_nanos(key.settings.monthly_budget_usd.unwrap_or(0.0));
            let used = if budget == 0 {
                1.0
            } else {
                spend.cost_nanos as f64 / budget as f64
            };
            let over = key.status == KeyStatus::BudgetExceeded || spend.cost_nanos >= budget;
            let level = if over {
                "over"
            } else if used >= near {
                "near"
            } else {
                "ok"
            };
            let row = json!({
                "key_id": key.id,
                "name": key.settings.name,
                "owner": key.settings.owner,
                "status": key.status,
                "budget_usd": nanos_to_usd(budget),
                "spent_usd": nanos_to_usd(spend.cost_nanos),
                "remaining_usd": nanos_to_usd(budget.saturating_sub(spend.cost_nanos)),
                "requests": spend.requests,
                "used": (used * 10_000.0).round() / 10_000.0,
                "state": level,
            });
            (if over { f64::INFINITY } else { used }, row)
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let data: Vec<_> = rows.into_iter().map(|(_, row)| row).collect();
    Ok(respond(
        StatusCode::OK,
        json!({"month": month, "near": near, "data": data}),
    ))
}
