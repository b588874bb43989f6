//! The items of the keys table: a key record (`key#<id>`) and the pointer from its SHA-256
//! (`hash#<hex>`), as DynamoDB attribute maps and transaction steps. Pure conversions, no I/O.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

use super::item::{Item, StoreError, get_list_s, get_n, get_s, list_s, n, req_s, s};
use super::record::{CacheTtl, KeyRecord, KeySettings, KeyStatus, Tier};
use super::tables::{PK, hash_pk, key_pk};

pub(super) fn record_item(r: &KeyRecord) -> Item {
    let st = &r.settings;
    let mut item = Item::from([
        (PK.to_string(), s(key_pk(&r.id))),
        ("type".into(), s("key")),
        ("id".into(), s(&r.id)),
        ("name".into(), s(&st.name)),
        ("key_hash".into(), s(&r.key_hash)),
        ("key_prefix".into(), s(&r.key_prefix)),
        ("status".into(), s(r.status.as_str())),
        ("rpm".into(), n(st.requests_per_minute)),
        ("tpm".into(), n(st.tokens_per_minute)),
        ("tier".into(), s(st.tier.as_str())),
        ("created_at".into(), s(&r.created_at)),
        ("updated_at".into(), s(&r.updated_at)),
    ]);
    let optional = [
        ("owner", st.owner.clone().map(s)),
        ("monthly_budget_usd", st.monthly_budget_usd.map(n)),
        ("allowed_models", st.allowed_models.as_deref().map(list_s)),
        ("cache_ttl", st.cache_ttl.map(|t| s(t.as_str()))),
        ("last_used_at", r.last_used_at.clone().map(s)),
        (
            "budget_exceeded_month",
            r.budget_exceeded_month.clone().map(s),
        ),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            item.insert(name.into(), value);
        }
    }
    item
}

pub(super) fn record_from(item: &Item) -> Result<KeyRecord, StoreError> {
    let malformed = |what: &str| StoreError::Malformed(format!("key item: {what}"));
    let status = req_s(item, "status")?;
    let tier = req_s(item, "tier")?;
    Ok(KeyRecord {
        id: req_s(item, "id")?,
        settings: KeySettings {
            name: req_s(item, "name")?,
            owner: get_s(item, "owner"),
            requests_per_minute: get_n(item, "rpm").unwrap_or(0),
            tokens_per_minute: get_n(item, "tpm").unwrap_or(0),
            tier: Tier::parse(&tier).ok_or_else(|| malformed("tier"))?,
            monthly_budget_usd: get_n(item, "monthly_budget_usd"),
            allowed_models: get_list_s(item, "allowed_models"),
            cache_ttl: get_s(item, "cache_ttl")
                .as_deref()
                .and_then(CacheTtl::parse),
        },
        key_prefix: req_s(item, "key_prefix")?,
        key_hash: req_s(item, "key_hash")?,
        status: KeyStatus::parse(&status).ok_or_else(|| malformed("status"))?,
        created_at: req_s(item, "created_at")?,
        updated_at: req_s(item, "updated_at")?,
        last_used_at: get_s(item, "last_used_at"),
        budget_exceeded_month: get_s(item, "budget_exceeded_month"),
    })
}

pub(super) fn pointer_put(
    table: &str,
    hash: &str,
    id: &str,
) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(Item::from([
            (PK.to_string(), s(hash_pk(hash))),
            ("type".into(), s("hash")),
            ("key_id".into(), s(id)),
        ])))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(StoreError::backend)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

pub(super) fn delete_item(table: &str, pk: String) -> Result<TransactWriteItem, StoreError> {
    let delete = Delete::builder()
        .table_name(table)
        .key(PK, s(pk))
        .build()
        .map_err(StoreError::backend)?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

pub(super) fn key_of(pk: String) -> Item {
    Item::from([(PK.to_string(), s(pk))])
}
