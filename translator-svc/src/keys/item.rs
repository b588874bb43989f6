//! Small helpers to build and read DynamoDB items (attribute maps) and to classify SDK errors.
//! Shared by the key, usage, pricing and model-mapping stores.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::error::display::DisplayErrorContext;

pub type Item = HashMap<String, AttributeValue>;

/// The key store's own errors; the admin API and the verifier turn them into `ApiError`s.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A concurrent change won (condition failed); the caller may re-read and retry.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store answered with an error or could not be reached.
    #[error("key store: {0}")]
    Backend(String),
    /// A stored item does not have the shape this code writes.
    #[error("malformed item: {0}")]
    Malformed(String),
}

impl StoreError {
    pub fn backend<E: std::error::Error>(error: E) -> StoreError {
        StoreError::Backend(DisplayErrorContext(&error).to_string())
    }
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn get_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

pub fn req_s(item: &Item, name: &str) -> Result<String, StoreError> {
    get_s(item, name)
        .ok_or_else(|| StoreError::Malformed(format!("missing string attribute {name}")))
}

pub fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

pub fn get_bool(item: &Item, name: &str) -> Option<bool> {
    match item.get(name) {
        Some(AttributeValue::Bool(v)) => Some(*v),
        _ => None,
    }
}

pub fn get_list_s(item: &Item, name: &str) -> Option<Vec<String>> {
    match item.get(name) {
        Some(AttributeValue::L(values)) => Some(
            values
                .iter()
                .filter_map(|v| match v {
                    AttributeValue::S(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

pub fn list_s(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|v| s(v.clone())).collect())
}

/// Whether a failed transaction was cancelled only because a condition check failed.
pub fn is_condition_cancel(reasons: &[aws_sdk_dynamodb::types::CancellationReason]) -> bool {
    reasons
        .iter()
        .any(|r| r.code() == Some("ConditionalCheckFailed"))
        && reasons.iter().all(|r| {
            matches!(
                r.code(),
                Some("ConditionalCheckFailed") | Some("None") | None
            )
        })
}
