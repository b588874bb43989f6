//! The pricing table: one item per model name or pattern (`pk`), prices as numbers. Read into
//! the `PriceBook` at start and every refresh interval; edited through the admin API.

use crate::keys::dynamo::Dynamo;
use crate::keys::item::{Item, StoreError, get_n, n, req_s, s};
use crate::keys::tables::PK;

use super::{Price, PriceBook};

fn price_from(item: &Item) -> Result<(String, Price), StoreError> {
    let field = |name: &str| {
        get_n::<f64>(item, name)
            .ok_or_else(|| StoreError::Malformed(format!("pricing item: {name}")))
    };
    Ok((
        req_s(item, PK)?,
        Price {
            input: field("input")?,
            output: field("output")?,
            cache_read: field("cache_read")?,
            cache_write_5m: field("cache_write_5m")?,
            cache_write_1h: field("cache_write_1h")?,
        },
    ))
}

pub async fn load_prices(dynamo: &Dynamo) -> Result<Vec<(String, Price)>, StoreError> {
    let mut prices = Vec::new();
    for item in dynamo.scan_all(&dynamo.tables.pricing).await? {
        match price_from(&item) {
            Ok(entry) => prices.push(entry),
            Err(e) => tracing::warn!(error = %e, "skipping a malformed pricing item"),
        }
    }
    prices.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(prices)
}

pub async fn put_price(
    dynamo: &Dynamo,
    model: &str,
    price: &Price,
    now: &str,
) -> Result<(), StoreError> {
    let item = Item::from([
        (PK.to_string(), s(model)),
        ("input".into(), n(price.input)),
        ("output".into(), n(price.output)),
        ("cache_read".into(), n(price.cache_read)),
        ("cache_write_5m".into(), n(price.cache_write_5m)),
        ("cache_write_1h".into(), n(price.cache_write_1h)),
        ("updated_at".into(), s(now)),
    ]);
    dynamo.put(&dynamo.tables.pricing, item).await
}

/// `Ok(false)` when there was no such entry.
pub async fn delete_price(dynamo: &Dynamo, model: &str) -> Result<bool, StoreError> {
    dynamo.delete(&dynamo.tables.pricing, model).await
}

/// Re-read the table into the book; on failure the book keeps the prices it had.
pub async fn refresh(dynamo: &Dynamo, book: &PriceBook) -> Result<(), StoreError> {
    book.replace_overrides(load_prices(dynamo).await?);
    Ok(())
}
