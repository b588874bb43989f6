//! Normalization common to both paths (spec 7): validate, rebuild PTC history (hook), drop
//! server-tool history and `caller`, fold `role:"system"` messages, remove empty text, sanitize
//! tool ids, merge same-role neighbours, clamp `max_tokens`, normalize `thinking`, and compute the
//! effective beta list. The result is still an Anthropic-shaped JSON object.

use serde_json::{Map, Value};

use super::blocks;
use super::options::RequestOptions;
use super::thinking::normalize_thinking;
use super::tools::parse_tool_choice;
use super::validate::validate_top_level;
use super::validate_content::validate_messages;
use crate::anthropic::request::block;
use crate::error::ApiError;

/// Which Bedrock API the request is being built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Invoke,
    Converse,
}

/// Which endpoint the body came from: count_tokens has no `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Messages,
    CountTokens,
}

pub(crate) struct Normalized {
    /// The Anthropic-shaped body; `messages` is non-empty and alternates roles.
    pub body: Map<String, Value>,
    /// The effective beta list after the policy (header values, then any body `anthropic_beta`).
    pub betas: Vec<String>,
}

/// Claude Code's first system block: per-version billing text, never cached.
const BILLING_HEADER_PREFIX: &str = "x-anthropic-billing-header:";

/// Takes the request by value: it is edited in place, never copied (a long conversation or
/// inlined images make a copy cost as much as the rest of the conversion).
pub(crate) fn normalize(
    request: Value,
    opts: &RequestOptions,
    mode: Mode,
    target: Target,
) -> Result<Normalized, ApiError> {
    let Value::Object(mut body) = request else {
        return Err(ApiError::invalid_request(
            "request body must be a JSON object",
        ));
    };
    // An explicit null is treated as an absent field, as the SDKs do.
    body.retain(|_, v| !v.is_null());
    validate_top_level(&body, mode)?;
    validate_messages(&body, opts, target)?;
    parse_tool_choice(&body)?;
    if mode == Mode::CountTokens {
        body.shift_remove("max_tokens");
    }
    let body_betas = take_body_betas(&mut body)?;
    let mut messages = match body.get_mut("messages").map(Value::take) {
        Some(Value::Array(m)) => m,
        _ => Vec::new(),
    };

    blocks::remove_unrunnable_server_blocks(&mut messages, target == Target::Invoke);
    blocks::strip_caller(&mut messages);
    if !opts.route.capabilities().system_role_messages {
        blocks::fold_system_messages(&mut body, &mut messages);
    }
    normalize_system(&mut body, opts.strip_billing_header);
    blocks::remove_blank_text_in_messages(&mut messages);
    blocks::sanitize_tool_ids(&mut messages);
    let messages = blocks::merge_messages(messages);
    if messages.is_empty() {
        return Err(ApiError::invalid_at(
            "messages",
            "at least one message with non-empty content is required",
        ));
    }
    body.insert("messages".into(), Value::Array(messages));
    body.shift_remove("container");
    normalize_thinking(&mut body, opts, mode)?;

    let client: Vec<String> = opts
        .client_betas
        .iter()
        .cloned()
        .chain(body_betas)
        .collect();
    let betas = opts.policy.apply(&client, opts.route);
    Ok(Normalized { body, betas })
}

/// A body-level `anthropic_beta` list joins the header values (and goes through the policy).
fn take_body_betas(body: &mut Map<String, Value>) -> Result<Vec<String>, ApiError> {
    match body.shift_remove("anthropic_beta") {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ApiError::invalid_at("anthropic_beta", "Input should be a list of strings")
            }),
        Some(Value::String(s)) => Ok(crate::beta::BetaPolicy::parse_header_values(&[&s])),
        Some(_) => Err(ApiError::invalid_at(
            "anthropic_beta",
            "Input should be a list of strings",
        )),
    }
}

/// Blank system text removed (Bedrock rejects it), billing block stripped when configured.
fn normalize_system(body: &mut Map<String, Value>, strip_billing_header: bool) {
    match body.get_mut("system") {
        Some(Value::String(s)) if s.trim().is_empty() => {
            body.shift_remove("system");
        }
        Some(Value::Array(system)) => {
            if strip_billing_header {
                system.retain(|b| {
                    let text = b.get("text").and_then(Value::as_str).unwrap_or_default();
                    let cached = b.get("cache_control").is_some_and(|c| !c.is_null());
                    // A marked block would take its cache breakpoint with it: keep it.
                    !(blocks::block_type(b) == Some(block::TEXT)
                        && text.starts_with(BILLING_HEADER_PREFIX)
                        && !cached)
                });
            }
            blocks::remove_blank_text(system);
            if system.is_empty() {
                body.shift_remove("system");
            }
        }
        _ => {}
    }
}
