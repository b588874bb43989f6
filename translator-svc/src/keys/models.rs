//! The run-time model mapping table: operator `ModelEntry` objects (as JSON, in the same form as
//! `MODEL_MAP`) keyed by the model name clients send. The relay layers them over the built-ins.

use std::sync::Mutex;

use serde_json::Value;

use super::dynamo::Dynamo;
use super::item::{Item, StoreError, req_s, s};
use super::tables::PK;
use crate::models::ModelEntry;

/// One stored mapping: the operator's JSON, which deserializes into a `ModelEntry`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredModel {
    pub key: String,
    pub entry: Value,
    pub updated_at: Option<String>,
}

/// Check an operator entry for `key`: fills in `key` if absent, refuses a different one.
pub fn validate_entry(key: &str, mut entry: Value) -> Result<(Value, ModelEntry), String> {
    let Some(object) = entry.as_object_mut() else {
        return Err("a model entry must be a JSON object".into());
    };
    match object.get("key") {
        None => {
            object.insert("key".into(), Value::String(key.into()));
        }
        Some(Value::String(k)) if k == key => {}
        Some(_) => return Err(format!("key: must be {key:?} (the name in the path)")),
    }
    let parsed: ModelEntry = serde_json::from_value(entry.clone()).map_err(|e| e.to_string())?;
    Ok((entry, parsed))
}

pub async fn list_models(dynamo: &Dynamo) -> Result<Vec<StoredModel>, StoreError> {
    let mut models = Vec::new();
    for item in dynamo.scan_all(&dynamo.tables.models).await? {
        let text = req_s(&item, "entry")?;
        let entry = serde_json::from_str(&text)
            .map_err(|e| StoreError::Malformed(format!("model entry: {e}")))?;
        models.push(StoredModel {
            key: req_s(&item, PK)?,
            entry,
            updated_at: super::item::get_s(&item, "updated_at"),
        });
    }
    models.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(models)
}

pub async fn put_model(
    dynamo: &Dynamo,
    key: &str,
    entry: &Value,
    now: &str,
) -> Result<(), StoreError> {
    let item = Item::from([
        (PK.to_string(), s(key)),
        ("entry".into(), s(entry.to_string())),
        ("updated_at".into(), s(now)),
    ]);
    dynamo.put(&dynamo.tables.models, item).await
}

/// `Ok(false)` when there was no such entry.
pub async fn delete_model(dynamo: &Dynamo, key: &str) -> Result<bool, StoreError> {
    dynamo.delete(&dynamo.tables.models, key).await
}

/// What the relay polls for operator model entries.
pub struct ModelSource {
    dynamo: Dynamo,
    last_good: Mutex<Vec<ModelEntry>>,
}

impl ModelSource {
    pub fn new(dynamo: Dynamo) -> ModelSource {
        ModelSource {
            dynamo,
            last_good: Mutex::new(Vec::new()),
        }
    }

    /// The entries in the table, in key order. An entry that no longer parses is skipped (and
    /// logged); if the table cannot be read, the last good list is returned.
    pub async fn model_overrides(&self) -> Vec<ModelEntry> {
        match list_models(&self.dynamo).await {
            Ok(stored) => {
                let entries: Vec<ModelEntry> = stored
                    .into_iter()
                    .filter_map(|m| match serde_json::from_value(m.entry) {
                        Ok(entry) => Some(entry),
                        Err(e) => {
                            tracing::warn!(model = %m.key, error = %e, "skipping a stored model entry");
                            None
                        }
                    })
                    .collect();
                if let Ok(mut last) = self.last_good.lock() {
                    *last = entries.clone();
                }
                entries
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the model mapping table; keeping the last entries");
                self.last_good.lock().map(|l| l.clone()).unwrap_or_default()
            }
        }
    }
}
