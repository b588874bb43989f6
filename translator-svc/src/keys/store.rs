//! The key store seam (`KeyStore`) and its DynamoDB implementation. Each key is two items in the
//! keys table: the record (`key#<id>`) and a pointer from its SHA-256 (`hash#<hex>`), written and
//! moved together in transactions, read with strongly consistent gets (no index lag).

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};

use super::dynamo::Dynamo;
use super::item::{Item, StoreError, get_n, is_condition_cancel, list_s, n, req_s, s};
use super::key_items::{delete_item, key_of, pointer_put, record_from, record_item};
use super::record::{KeyRecord, KeySettings, KeyStatus};
use super::tables::{PK, SK, hash_pk, key_pk, month_sk, usage_pk};

/// Spend of one key in one month, from the atomic counters the usage sink maintains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MonthSpend {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_nanos: u64,
}

#[tonic::async_trait]
pub trait KeyStore: Send + Sync {
    /// Insert a new record and its hash pointer; fails with `Conflict` if either exists.
    async fn create_key(&self, record: &KeyRecord) -> Result<(), StoreError>;
    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError>;
    async fn find_by_hash(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError>;
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    async fn update_settings(
        &self,
        id: &str,
        settings: &KeySettings,
        now: &str,
    ) -> Result<(), StoreError>;
    /// Set the status, only if it currently is `expected` (when given). `Ok(false)`: it was not.
    async fn set_status(
        &self,
        id: &str,
        status: KeyStatus,
        expected: Option<KeyStatus>,
        exceeded_month: Option<&str>,
        now: &str,
    ) -> Result<bool, StoreError>;
    /// Swap the hash (and display prefix) of a key: the old secret stops working at once.
    async fn rotate_key(
        &self,
        record: &KeyRecord,
        new_hash: &str,
        new_prefix: &str,
        now: &str,
    ) -> Result<(), StoreError>;
    async fn delete_key(&self, id: &str) -> Result<(), StoreError>;
    async fn touch(&self, id: &str, now: &str) -> Result<(), StoreError>;
    async fn month_spend(&self, id: &str, month: &str) -> Result<MonthSpend, StoreError>;
}

impl Dynamo {
    async fn transact(&self, items: Vec<TransactWriteItem>, what: &str) -> Result<(), StoreError> {
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c))
                    if is_condition_cancel(c.cancellation_reasons()) =>
                {
                    Err(StoreError::Conflict(what.to_string()))
                }
                _ => Err(StoreError::backend(e)),
            },
        }
    }

    async fn get_item(&self, table: &str, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::backend)?;
        Ok(out.item)
    }
}

#[tonic::async_trait]
impl KeyStore for Dynamo {
    async fn create_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let table = &self.tables.keys;
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(record_item(record)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(StoreError::backend)?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            pointer_put(table, &record.key_hash, &record.id)?,
        ];
        self.transact(items, "a key with this id or secret already exists")
            .await
    }

    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        match self.get_item(&self.tables.keys, key_of(key_pk(id))).await? {
            Some(item) => record_from(&item).map(Some),
            None => Ok(None),
        }
    }

    async fn find_by_hash(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let Some(pointer) = self
            .get_item(&self.tables.keys, key_of(hash_pk(hash)))
            .await?
        else {
            return Ok(None);
        };
        let id = req_s(&pointer, "key_id")?;
        // A pointer whose record moved on (rotated away) is not a match.
        Ok(self.get_key(&id).await?.filter(|r| r.key_hash == hash))
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut records = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.tables.keys)
                .filter_expression("#t = :key")
                .expression_attribute_names("#t", "type")
                .expression_attribute_values(":key", s("key"))
                .set_exclusive_start_key(start)
                .consistent_read(true)
                .send()
                .await
                .map_err(StoreError::backend)?;
            for item in out.items() {
                records.push(record_from(item)?);
            }
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => break,
            }
        }
        records.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(records)
    }

    async fn update_settings(
        &self,
        id: &str,
        st: &KeySettings,
        now: &str,
    ) -> Result<(), StoreError> {
        let mut set = vec![
            "#name = :name",
            "rpm = :rpm",
            "tpm = :tpm",
            "tier = :tier",
            "updated_at = :now",
        ];
        let mut remove = Vec::new();
        let mut values = vec![
            (":name", s(&st.name)),
            (":rpm", n(st.requests_per_minute)),
            (":tpm", n(st.tokens_per_minute)),
            (":tier", s(st.tier.as_str())),
            (":now", s(now)),
        ];
        let optional = [
            ("#owner", ":owner", st.owner.clone().map(s)),
            (
                "monthly_budget_usd",
                ":budget",
                st.monthly_budget_usd.map(n),
            ),
            (
                "allowed_models",
                ":models",
                st.allowed_models.as_deref().map(list_s),
            ),
            ("cache_ttl", ":ttl", st.cache_ttl.map(|t| s(t.as_str()))),
        ];
        let mut clauses = Vec::new();
        for (attr, placeholder, value) in optional {
            match value {
                Some(v) => {
                    clauses.push(format!("{attr} = {placeholder}"));
                    values.push((placeholder, v));
                }
                None => remove.push(attr),
            }
        }
        set.extend(clauses.iter().map(String::as_str));
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.keys)
            .key(PK, s(key_pk(id)))
            .update_expression(expression)
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#owner", "owner");
        for (placeholder, value) in values {
            request = request.expression_attribute_values(placeholder, value);
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::NotFound)
            }
            Err(e) => Err(StoreError::backend(e)),
        }
    }

    async fn set_status(
        &self,
        id: &str,
        status: KeyStatus,
        expected: Option<KeyStatus>,
        exceeded_month: Option<&str>,
        now: &str,
    ) -> Result<bool, StoreError> {
        let mut expression = "SET #status = :status, updated_at = :now".to_string();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.keys)
            .key(PK, s(key_pk(id)))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":now", s(now));
        match exceeded_month {
            Some(month) => {
                expression.push_str(", budget_exceeded_month = :month");
                request = request.expression_attribute_values(":month", s(month));
            }
            None => expression.push_str(" REMOVE budget_exceeded_month"),
        }
        request = match expected {
            Some(from) => request
                .condition_expression("attribute_exists(pk) AND #status = :from")
                .expression_attribute_values(":from", s(from.as_str())),
            None => request.condition_expression("attribute_exists(pk)"),
        };
        match request.update_expression(expression).send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                if expected.is_none() {
                    return Err(StoreError::NotFound);
                }
                Ok(false)
            }
            Err(e) => Err(StoreError::backend(e)),
        }
    }

    async fn rotate_key(
        &self,
        record: &KeyRecord,
        new_hash: &str,
        new_prefix: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        let table = &self.tables.keys;
        let update = Update::builder()
            .table_name(table)
            .key(PK, s(key_pk(&record.id)))
            .update_expression(
                "SET key_hash = :new, key_prefix = :prefix, updated_at = :now, rotated_at = :now",
            )
            .condition_expression("key_hash = :old")
            .expression_attribute_values(":new", s(new_hash))
            .expression_attribute_values(":old", s(&record.key_hash))
            .expression_attribute_values(":prefix", s(new_prefix))
            .expression_attribute_values(":now", s(now))
            .build()
            .map_err(StoreError::backend)?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            delete_item(table, hash_pk(&record.key_hash))?,
            pointer_put(table, new_hash, &record.id)?,
        ];
        self.transact(items, "the key changed meanwhile; retry")
            .await
    }

    async fn delete_key(&self, id: &str) -> Result<(), StoreError> {
        let record = self.get_key(id).await?.ok_or(StoreError::NotFound)?;
        let table = &self.tables.keys;
        let items = vec![
            delete_item(table, key_pk(id))?,
            delete_item(table, hash_pk(&record.key_hash))?,
        ];
        self.transact(items, "the key changed meanwhile; retry")
            .await
    }

    async fn touch(&self, id: &str, now: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.keys)
            .key(PK, s(key_pk(id)))
            .update_expression("SET last_used_at = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", s(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError::backend(e)),
        }
    }

    async fn month_spend(&self, id: &str, month: &str) -> Result<MonthSpend, StoreError> {
        let key = Item::from([
            (PK.to_string(), s(usage_pk(id))),
            (SK.to_string(), s(month_sk(month))),
        ]);
        let Some(item) = self.get_item(&self.tables.usage, key).await? else {
            return Ok(MonthSpend::default());
        };
        Ok(MonthSpend {
            requests: get_n(&item, "requests").unwrap_or(0),
            input_tokens: get_n(&item, "input_tokens").unwrap_or(0),
            output_tokens: get_n(&item, "output_tokens").unwrap_or(0),
            cost_nanos: get_n(&item, "cost_nanos").unwrap_or(0),
        })
    }
}
