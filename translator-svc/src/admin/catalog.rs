//! Pricing and model-mapping handlers: list, put and delete entries of the two editable tables.
//! A price change applies on this replica at once and on the others at their next refresh.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminResult, AppState, Body, json as respond, parse_body};
use crate::error::ApiError;
use crate::keys::clock::rfc3339_millis;
use crate::keys::models;
use crate::pricing::{Price, store};

/// A price as an operator writes it: input and output are required, cache prices default to
/// Anthropic's ratios of the input price.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceInput {
    input: f64,
    output: f64,
    cache_read: Option<f64>,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
}

impl PriceInput {
    fn into_price(self) -> Price {
        let derived = Price::from_input_output(self.input, self.output);
        // 0.2 * 0.1 is 0.020000000000000004 in binary; prices are kept to micro-USD per MTok.
        let tidy = |v: f64| (v * 1e6).round() / 1e6;
        Price {
            cache_read: self.cache_read.unwrap_or(tidy(derived.cache_read)),
            cache_write_5m: self.cache_write_5m.unwrap_or(tidy(derived.cache_write_5m)),
            cache_write_1h: self.cache_write_1h.unwrap_or(tidy(derived.cache_write_1h)),
            ..derived
        }
    }
}

fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 512 {
        return Err(ApiError::invalid_request(format!(
            "{what}: must be 1 to 512 characters"
        )));
    }
    Ok(())
}

pub async fn list_prices(State(state): State<AppState>) -> AdminResult {
    // Read through so a price set on another replica shows up here at once.
    store::refresh(&state.dynamo, &state.prices).await?;
    Ok(respond(
        StatusCode::OK,
        json!({"data": state.prices.entries(), "tier_multipliers": state.prices.multipliers}),
    ))
}

pub async fn put_price(
    State(state): State<AppState>,
    Path(model): Path<String>,
    body: Body,
) -> AdminResult {
    check_name("model", &model)?;
    let price = parse_body::<PriceInput>(body)?.into_price();
    price.validate()?;
    let at = rfc3339_millis(state.clock.now());
    store::put_price(&state.dynamo, &model, &price, &at).await?;
    store::refresh(&state.dynamo, &state.prices).await?;
    tracing::info!(%model, "price set");
    let mut body = serde_json::to_value(price).unwrap_or(Value::Null);
    if let Some(object) = body.as_object_mut() {
        object.insert("model".into(), Value::String(model));
    }
    Ok(respond(StatusCode::OK, body))
}

pub async fn delete_price(State(state): State<AppState>, Path(model): Path<String>) -> AdminResult {
    if !store::delete_price(&state.dynamo, &model).await? {
        return Err(ApiError::not_found(format!("no price set for {model:?}")).into());
    }
    store::refresh(&state.dynamo, &state.prices).await?;
    Ok(respond(
        StatusCode::OK,
        json!({"model": model, "deleted": true}),
    ))
}

/// The built-in model table as this service is configured (`MODEL_DEFAULT_PROFILE`,
/// `CLAUDE_API`): what a stored entry with the same key overrides. The service router attaches it
/// as an extension, since the admin router is built before the model settings are at hand.
#[derive(Clone, Debug, Default)]
pub struct BuiltinModels(pub Arc<Vec<Value>>);

impl BuiltinModels {
    /// The listed built-in entries with the backend each resolves to and their unlisted aliases.
    pub fn from_config(config: &crate::config::Config) -> BuiltinModels {
        let backend = match config.claude_api {
            crate::config::ClaudeApi::Invoke => crate::models::Backend::Invoke,
            crate::config::ClaudeApi::Converse => crate::models::Backend::Converse,
        };
        let table = crate::models::ModelTable::builtin(
            &config.model_default_profile,
            config.model_derive_claude_ids,
        )
        .with_claude_backend(backend);
        let entries = table
            .listed()
            .into_iter()
            .map(|entry| {
                let backend = table
                    .resolve(&entry.key)
                    .map_or(entry.backend, |route| route.backend());
                json!({
                    "key": entry.key,
                    "bedrock_id": entry.bedrock_id,
                    "family": entry.family,
                    "backend": backend,
                    "display_name": entry.display_name,
                    "max_output_tokens": entry.max_output_tokens,
                    "aliases": table.builtin_aliases(&entry.key),
                })
            })
            .collect();
        BuiltinModels(Arc::new(entries))
    }
}

/// `{data: [stored entry], builtin: [default entry]}`.
pub async fn list_models(
    State(state): State<AppState>,
    builtin: Option<Extension<BuiltinModels>>,
) -> AdminResult {
    let stored = models::list_models(&state.dynamo).await?;
    let builtin = builtin.map(|Extension(b)| b.0).unwrap_or_default();
    Ok(respond(
        StatusCode::OK,
        json!({"data": stored, "builtin": *builtin}),
    ))
}

pub async fn put_model(
    State(state): State<AppState>,
    Path(key): Path<String>,
    body: Body,
) -> AdminResult {
    check_name("model", &key)?;
    let entry: Value = parse_body(body)?;
    let (entry, _) = models::validate_entry(&key, entry)
        .map_err(|e| ApiError::invalid_request(format!("invalid model entry: {e}")))?;
    let at = rfc3339_millis(state.clock.now());
    models::put_model(&state.dynamo, &key, &entry, &at).await?;
    tracing::info!(model = %key, "model mapping set");
    Ok(respond(
        StatusCode::OK,
        json!({"key": key, "entry": entry, "updated_at": at}),
    ))
}

pub async fn delete_model(State(state): State<AppState>, Path(key): Path<String>) -> AdminResult {
    if !models::delete_model(&state.dynamo, &key).await? {
        return Err(ApiError::not_found(format!("no model mapping for {key:?}")).into());
    }
    Ok(respond(
        StatusCode::OK,
        json!({"key": key, "deleted": true}),
    ))
}
