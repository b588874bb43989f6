//! Connects the DynamoDB client: to the embedded dynoxide server (started here on a loopback
//! ephemeral port, SQLite file or memory), to another endpoint, or to AWS; and creates the tables
//! when they are missing. The only place that builds an `aws_sdk_dynamodb::Client`.

use std::time::Duration;

use anyhow::Context;
use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Region;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification,
};
use tokio::sync::oneshot;

use super::config::{KeysConfig, StoreMode};
use super::item::{Item, StoreError};
use super::tables::{PK, SK, TableNames};

/// The client and the table names: what every store in this crate works with.
#[derive(Clone, Debug)]
pub struct Dynamo {
    pub client: Client,
    pub tables: TableNames,
}

/// Small whole-table operations shared by the pricing and model-mapping tables (one item per
/// name under `pk`).
impl Dynamo {
    /// Every item of `table`, following scan pages, read consistently.
    pub async fn scan_all(&self, table: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .consistent_read(true)
                .send()
                .await
                .map_err(StoreError::backend)?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => break,
            }
        }
        Ok(items)
    }

    pub async fn put(&self, table: &str, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(StoreError::backend)?;
        Ok(())
    }

    /// Delete the item whose `pk` is `key`; `Ok(false)` when there was none.
    pub async fn delete(&self, table: &str, key: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(table)
            .key(PK, super::item::s(key))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(StoreError::backend)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

/// The embedded DynamoDB-compatible server; stops when dropped.
pub struct Embedded {
    pub endpoint: String,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Start dynoxide on `127.0.0.1:0`; `data_dir` `None` keeps the tables in memory.
pub async fn start_embedded(data_dir: Option<&std::path::Path>) -> anyhow::Result<Embedded> {
    let db = match data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("GATEWAY_DATA_DIR: cannot create {}", dir.display()))?;
            let file = dir.join("dynamodb.sqlite");
            let path = file
                .to_str()
                .context("GATEWAY_DATA_DIR: the path is not UTF-8")?;
            dynoxide::Database::new(path)
                .map_err(|e| anyhow::anyhow!("GATEWAY_DATA_DIR: cannot open {path}: {e}"))?
        }
        None => {
            dynoxide::Database::memory().map_err(|e| anyhow::anyhow!("embedded DynamoDB: {e}"))?
        }
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("embedded DynamoDB: cannot bind a loopback port")?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let stop = async move {
            let _ = rx.await;
        };
        if let Err(e) = dynoxide::server::serve_with_shutdown(listener, db, stop).await {
            tracing::error!(error = %e, "embedded DynamoDB stopped");
        }
    });
    Ok(Embedded {
        endpoint,
        shutdown: Some(tx),
    })
}

pub(super) fn client_config(
    region: &str,
    endpoint: &str,
    credentials: Option<Credentials>,
) -> aws_sdk_dynamodb::Config {
    let timeouts = aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(15))
        .build();
    let mut builder = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .timeout_config(timeouts);
    if let Some(credentials) = credentials {
        builder = builder.credentials_provider(credentials);
    }
    builder.build()
}

/// The fixed credentials of explicit local endpoints (they check none).
pub(super) fn credentials() -> Credentials {
    Credentials::new("gateway", "gateway", None, None, "embedded")
}

/// A client for an explicit endpoint with fixed credentials (embedded store, moto, DynamoDB Local).
pub fn local_client(region: &str, endpoint: &str) -> Client {
    Client::from_conf(client_config(region, endpoint, Some(credentials())))
}

/// Connect as configured; the embedded server (if any) must be kept alive by the caller.
pub async fn connect(config: &KeysConfig) -> anyhow::Result<(Dynamo, Option<Embedded>)> {
    let tables = TableNames::with_prefix(&config.table_prefix);
    let (client, embedded) = match &config.mode {
        StoreMode::Embedded { data_dir } => {
            let embedded = start_embedded(Some(data_dir)).await?;
            (
                super::embedded_client::embedded_client(&config.region, &embedded.endpoint),
                Some(embedded),
            )
        }
        StoreMode::Memory => {
            let embedded = start_embedded(None).await?;
            (
                super::embedded_client::embedded_client(&config.region, &embedded.endpoint),
                Some(embedded),
            )
        }
        StoreMode::DynamoDb { endpoint } => {
            let shared = aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new(config.region.clone()))
                .load()
                .await;
            let mut builder = aws_sdk_dynamodb::config::Builder::from(&shared);
            if let Some(url) = endpoint {
                builder = builder.endpoint_url(url);
            }
            (Client::from_conf(builder.build()), None)
        }
    };
    let dynamo = Dynamo { client, tables };
    if config.create_tables {
        ensure_tables(&dynamo, config.usage.retention.is_some()).await?;
    }
    Ok((dynamo, embedded))
}

/// Create each missing table (on-demand billing) and wait until it is active.
pub async fn ensure_tables(dynamo: &Dynamo, usage_ttl: bool) -> anyhow::Result<()> {
    for (name, has_sort_key) in dynamo.tables.all() {
        let described = dynamo.client.describe_table().table_name(name).send().await;
        match described {
            Ok(_) => continue,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) => {}
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("DynamoDB: cannot describe table {name}")));
            }
        }
        create_table(&dynamo.client, name, has_sort_key).await?;
        wait_active(&dynamo.client, name).await?;
        // Usage items expire when a retention is set; portal sessions in the keys table always
        // carry `expires_at`, so abandoned ones are swept.
        if (has_sort_key && usage_ttl) || name == dynamo.tables.keys {
            let spec = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()?;
            if let Err(e) = dynamo
                .client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(spec)
                .send()
                .await
            {
                tracing::warn!(table = name, error = %aws_smithy_types::error::display::DisplayErrorContext(&e), "cannot enable TTL on a table");
            }
        }
        tracing::info!(table = name, "created DynamoDB table");
    }
    Ok(())
}

async fn create_table(client: &Client, name: &str, has_sort_key: bool) -> anyhow::Result<()> {
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(PK)
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(PK)
                .key_type(KeyType::Hash)
                .build()?,
        );
    if has_sort_key {
        request = request
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(SK)
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(SK)
                    .key_type(KeyType::Range)
                    .build()?,
            );
    }
    match request.send().await {
        Ok(_) => Ok(()),
        // Another replica created it first.
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => {
            Err(anyhow::Error::new(e).context(format!("DynamoDB: cannot create table {name}")))
        }
    }
}

async fn wait_active(client: &Client, name: &str) -> anyhow::Result<()> {
    for _ in 0..120 {
        let status = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .with_context(|| format!("DynamoDB: cannot describe table {name}"))?
            .table
            .and_then(|t| t.table_status);
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("DynamoDB: table {name} did not become active within 60 s")
}
