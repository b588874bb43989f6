//! Key lifecycle handlers: create (secret shown once), list, show (with this month's spend),
//! update, disable, enable, rotate, delete. Every change drops this replica's cached verdicts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{AdminError, AdminResult, AppState, Body, json as respond, parse_body};
use crate::error::ApiError;
use crate::keys::clock::{Date, rfc3339_millis};
use crate::keys::lifecycle;
use crate::keys::record::{KeyRecord, KeyStatus, KeyUpdate, NewKey};
use crate::keys::store::MonthSpend;
use crate::pricing::nanos_to_usd;

fn not_found(id: &str) -> AdminError {
    ApiError::not_found(format!("no API key with id {id:?}")).into()
}

async fn load(state: &AppState, id: &str) -> Result<KeyRecord, AdminError> {
    state.store.get_key(id).await?.ok_or_else(|| not_found(id))
}

fn spend_json(spend: &MonthSpend, month: &str, record: &KeyRecord) -> Value {
    json!({
        "month": month,
        "requests": spend.requests,
        "input_tokens": spend.input_tokens,
        "output_tokens": spend.output_tokens,
        "cost_usd": nanos_to_usd(spend.cost_nanos),
        "budget_remaining_usd": record
            .budget_nanos()
            .map(|b| nanos_to_usd(b.saturating_sub(spend.cost_nanos))),
    })
}

pub async fn create(State(state): State<AppState>, body: Body) -> AdminResult {
    let settings = parse_body::<NewKey>(body)?.into_settings()?;
    let (record, secret) =
        lifecycle::create_key(state.store.as_ref(), settings, state.clock.now()).await?;
    Ok(respond(
        StatusCode::CREATED,
        json!({"key": record, "secret": secret}),
    ))
}

pub async fn list(State(state): State<AppState>) -> AdminResult {
    let keys = state.store.list_keys().await?;
    Ok(respond(StatusCode::OK, json!({"data": keys})))
}

pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    let record = load(&state, &id).await?;
    let month = Date::of(state.clock.now()).month_label();
    let spend = state.store.month_spend(&id, &month).await?;
    let usage = spend_json(&spend, &month, &record);
    Ok(respond(
        StatusCode::OK,
        json!({"key": record, "usage": usage}),
    ))
}

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> AdminResult {
    let change: KeyUpdate = parse_body(body)?;
    let record = load(&state, &id).await?;
    let settings = change.apply(&record.settings)?;
    let now = state.clock.now();
    let at = rfc3339_millis(now);
    state.store.update_settings(&id, &settings, &at).await?;
    state.verifier.invalidate_key(&id);
    if record.status == KeyStatus::BudgetExceeded {
        // A raised or removed budget lifts the block now, not at the key's next use.
        let month = Date::of(now).month_label();
        let spent = state.store.month_spend(&id, &month).await?.cost_nanos;
        let budget = settings
            .monthly_budget_usd
            .map(crate::pricing::usd_to_nanos);
        if budget.is_none_or(|b| spent < b) {
            state
                .store
                .set_status(
                    &id,
                    KeyStatus::Active,
                    Some(KeyStatus::BudgetExceeded),
                    None,
                    &at,
                )
                .await?;
        }
    }
    let record = load(&state, &id).await?;
    Ok(respond(StatusCode::OK, json!({"key": record})))
}

async fn set_status(state: &AppState, id: &str, status: KeyStatus) -> AdminResult {
    let at = rfc3339_millis(state.clock.now());
    match state.store.set_status(id, status, None, None, &at).await {
        Err(crate::keys::StoreError::NotFound) => return Err(not_found(id)),
        other => other?,
    };
    state.verifier.invalidate_key(id);
    tracing::info!(key_id = %id, status = status.as_str(), "API key status set");
    let record = load(state, id).await?;
    Ok(respond(StatusCode::OK, json!({"key": record})))
}

pub async fn disable(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    set_status(&state, &id, KeyStatus::Disabled).await
}

/// Enable a disabled key; a key over its budget is marked `budget_exceeded` again at its next use.
pub async fn enable(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    set_status(&state, &id, KeyStatus::Active).await
}

pub async fn rotate(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    let record = load(&state, &id).await?;
    let secret = lifecycle::rotate_key(state.store.as_ref(), &record, state.clock.now()).await?;
    state.verifier.invalidate_key(&id);
    let record = load(&state, &id).await?;
    Ok(respond(
        StatusCode::OK,
        json!({"key": record, "secret": secret}),
    ))
}

pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    match state.store.delete_key(&id).await {
        Err(crate::keys::StoreError::NotFound) => return Err(not_found(&id)),
        other => other?,
    }
    state.verifier.invalidate_key(&id);
    tracing::info!(key_id = %id, "API key deleted");
    Ok(respond(StatusCode::OK, json!({"id": id, "deleted": true})))
}
