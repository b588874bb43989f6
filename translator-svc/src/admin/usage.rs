//! Usage queries: totals and cost per key, per model or per day (from the daily aggregates the
//! usage sink maintains atomically), and one key's individual requests.

use std::collections::{BTreeMap, HashMap};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::json;

use super::{AdminError, AdminResult, AppState, json as respond};
use crate::error::ApiError;
use crate::keys::Dynamo;
use crate::keys::clock::Date;
use crate::keys::item::{Item, StoreError, get_bool, get_n, get_s, s};
use crate::keys::tables::{day_pk, usage_pk};
use crate::pricing::nanos_to_usd;

const MAX_DAYS: i64 = 366;

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

fn params(query: Params) -> Result<HashMap<String, String>, AdminError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::invalid_request(format!("invalid query string: {e}")).into())
}

/// `from`/`to` (inclusive, `YYYY-MM-DD`, UTC); by default the current month up to today.
fn date_range(q: &HashMap<String, String>, today: Date) -> Result<(Date, Date), AdminError> {
    let date = |name: &str, default: Date| match q.get(name) {
        None => Ok(default),
        Some(v) => Date::parse(v).ok_or_else(|| {
            ApiError::invalid_request(format!("{name}: expected a date as YYYY-MM-DD"))
        }),
    };
    let from = date("from", Date { day: 1, ..today })?;
    let to = date("to", today)?;
    if to < from || to.days() - from.days() >= MAX_DAYS {
        return Err(ApiError::invalid_request(format!(
            "to must be on or after from, at most {MAX_DAYS} days apart"
        ))
        .into());
    }
    Ok((from, to))
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Counters {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// The 1-hour share of `cache_write_tokens` (priced at 2x input, 5-minute writes at 1.25x).
    pub cache_write_1h_tokens: u64,
    pub cost_nanos: u64,
}

impl Counters {
    fn of(item: &Item) -> Counters {
        let num = |name| get_n(item, name).unwrap_or(0);
        Counters {
            requests: num("requests"),
            input_tokens: num("input_tokens"),
            output_tokens: num("output_tokens"),
            cache_read_tokens: num("cache_read_tokens"),
            cache_write_tokens: num("cache_write_tokens"),
            cache_write_1h_tokens: num("cache_write_1h_tokens"),
            cost_nanos: num("cost_nanos"),
        }
    }

    fn add(&mut self, o: &Counters) {
        self.requests += o.requests;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cache_read_tokens += o.cache_read_tokens;
        self.cache_write_tokens += o.cache_write_tokens;
        self.cache_write_1h_tokens += o.cache_write_1h_tokens;
        self.cost_nanos += o.cost_nanos;
    }

    fn to_json(self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("cost_usd".into(), json!(nanos_to_usd(self.cost_nanos)));
        }
        v
    }
}

/// Every aggregate item of one day (optionally one key's only).
async fn day_items(
    dynamo: &Dynamo,
    day: Date,
    key_id: Option<&str>,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let mut query = dynamo
            .client
            .query()
            .table_name(&dynamo.tables.usage)
            .expression_attribute_values(":pk", s(day_pk(&day.to_string())))
            .set_exclusive_start_key(start)
            .consistent_read(true);
        query = match key_id {
            Some(id) => query
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", s(format!("key#{id}#model#"))),
            None => query.key_condition_expression("pk = :pk"),
        };
        let out = query.send().await.map_err(StoreError::backend)?;
        items.extend(out.items().iter().cloned());
        match out.last_evaluated_key {
            Some(next) if !next.is_empty() => start = Some(next),
            _ => return Ok(items),
        }
    }
}

/// `GET /admin/v1/usage?from&to&group_by=key|model|day&key_id&model`.
pub async fn summary(State(state): State<AppState>, query: Params) -> AdminResult {
    let q = params(query)?;
    let (from, to) = date_range(&q, Date::of(state.clock.now()))?;
    let group_by = q.get("group_by").map_or("key", String::as_str);
    if !matches!(group_by, "key" | "model" | "day") {
        return Err(ApiError::invalid_request("group_by: expected key, model or day").into());
    }
    let key_id = q.get("key_id").map(String::as_str);
    let model = q.get("model").map(String::as_str);
    let days: Vec<Date> = (from.days()..=to.days()).map(Date::from_days).collect();
    let per_day: Vec<Vec<Item>> = futures::stream::iter(days)
        .map(|day| day_items(&state.dynamo, day, key_id))
        .buffered(8)
        .try_collect()
        .await?;
    let mut groups: BTreeMap<String, Counters> = BTreeMap::new();
    let mut totals = Counters::default();
    for item in per_day.iter().flatten() {
        let item_model = get_s(item, "model").unwrap_or_default();
        if model.is_some_and(|m| m != item_model) {
            continue;
        }
        let group = match group_by {
            "model" => item_model,
            "day" => get_s(item, "day").unwrap_or_default(),
            _ => get_s(item, "key_id").unwrap_or_default(),
        };
        let counters = Counters::of(item);
        groups.entry(group).or_default().add(&counters);
        totals.add(&counters);
    }
    let data: Vec<_> = groups
        .into_iter()
        .map(|(group, c)| {
            let mut row = c.to_json();
            if let Some(o) = row.as_object_mut() {
                o.insert(
                    if group_by == "key" {
                        "key_id".into()
                    } else {
                        group_by.into()
                    },
                    json!(group),
                );
            }
            row
        })
        .collect();
    let body = json!({
        "from": from.to_string(),
        "to": to.to_string(),
        "group_by": group_by,
        "data": data,
        "totals": totals.to_json(),
    });
    Ok(respond(StatusCode::OK, body))
}

fn request_json(item: &Item) -> serde_json::Value {
    let num = |name| get_n::<u64>(item, name);
    json!({
        "time": get_s(item, "time"),
        "request_id": get_s(item, "request_id"),
        "requested_model": get_s(item, "requested_model"),
        "resolved_model": get_s(item, "resolved_model"),
        "api": get_s(item, "api"),
        "tier": get_s(item, "tier"),
        "stream": get_bool(item, "stream"),
        "status": get_s(item, "status"),
        "input_tokens": num("input_tokens"),
        "output_tokens": num("output_tokens"),
        "cache_read_tokens": num("cache_read_tokens"),
        "cache_write_5m_tokens": num("cache_write_5m_tokens"),
        "cache_write_1h_tokens": num("cache_write_1h_tokens"),
        "latency_ms": num("latency_ms"),
        "ttft_ms": num("ttft_ms"),
        "cost_usd": nanos_to_usd(num("cost_nanos").unwrap_or(0)),
        // The model calls of one PTC round share a request id (ptc.md 16).
        "ptc_model_call": num("ptc_model_call"),
        "container_id": get_s(item, "container_id"),
        "execution_id": get_s(item, "execution_id"),
    })
}

/// `GET /admin/v1/keys/{id}/requests?from&to&limit`: newest first.
pub async fn requests(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Params,
) -> AdminResult {
    let q = params(query)?;
    let (from, to) = date_range(&q, Date::of(state.clock.now()))?;
    let limit: i32 = match q.get("limit") {
        None => 100,
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::invalid_request("limit: expected 1 to 1000"))?,
    };
    if id != crate::usage::dynamo::ANONYMOUS_KEY
        && id != crate::keys::verifier::MASTER_KEY_ID
        && state.store.get_key(&id).await?.is_none()
    {
        return Err(ApiError::not_found(format!("no API key with id {id:?}")).into());
    }
    let out = state
        .dynamo
        .client
        .query()
        .table_name(&state.dynamo.tables.usage)
        .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
        .expression_attribute_values(":pk", s(usage_pk(&id)))
        .expression_attribute_values(":from", s(format!("req#{from}")))
        .expression_attribute_values(":to", s(format!("req#{to}T~")))
        .scan_index_forward(false)
        .limit(limit)
        .send()
        .await
        .map_err(StoreError::backend)?;
    let data: Vec<_> = out.items().iter().map(request_json).collect();
    let has_more = out.last_evaluated_key.is_some_and(|k| !k.is_empty());
    Ok(respond(
        StatusCode::OK,
        json!({"key_id": id, "data": data, "has_more": has_more}),
    ))
}
