//! The DynamoDB client of the embedded store, which sends no `ClientRequestToken`.
//!
//! The SDK gives every `TransactWriteItems` a fresh idempotency token. The embedded server
//! (dynoxide) keeps each token with its answer for ten minutes and scans the whole list on every
//! transaction, so with one usage write per request its cost grows with the request rate times
//! ten minutes (measured: a third of the store's CPU after 45 s at 700 requests/s, growing until
//! the window is full). Nothing here needs the token: usage writes are made idempotent by their
//! `attribute_not_exists` condition, and key writes by their own conditions. So the token is
//! removed from the serialized request, for this client only; DynamoDB itself keeps it.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_types::body::SdkBody;
use serde_json::Value;

const TARGET_HEADER: &str = "x-amz-target";
const TOKEN_FIELD: &str = "ClientRequestToken";

/// A client for the embedded server at `endpoint`.
pub fn embedded_client(region: &str, endpoint: &str) -> Client {
    let config = super::dynamo::client_config(region, endpoint, Some(super::dynamo::credentials()))
        .to_builder()
        .interceptor(NoRequestToken)
        .build();
    Client::from_conf(config)
}

/// `Some(body without ClientRequestToken)` when `body` is a JSON object that carries one.
pub fn without_request_token(body: &[u8]) -> Option<Vec<u8>> {
    // Cheap test first: most requests (gets, queries) carry no token at all.
    if !body
        .windows(TOKEN_FIELD.len())
        .any(|w| w == TOKEN_FIELD.as_bytes())
    {
        return None;
    }
    let mut value: Value = serde_json::from_slice(body).ok()?;
    value.as_object_mut()?.remove(TOKEN_FIELD)?;
    serde_json::to_vec(&value).ok()
}

#[derive(Debug)]
struct NoRequestToken;

impl Intercept for NoRequestToken {
    fn name(&self) -> &'static str {
        "NoRequestToken"
    }

    /// After serialization and once per operation (retries reuse the rewritten body).
    fn modify_before_retry_loop(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request_mut();
        let transactional = request
            .headers()
            .get(TARGET_HEADER)
            .is_some_and(|target| target.contains("Transact") || target.contains("Transaction"));
        if !transactional {
            return Ok(());
        }
        let Some(body) = request.body().bytes().and_then(without_request_token) else {
            return Ok(());
        };
        let length = body.len().to_string();
        *request.body_mut() = SdkBody::from(body);
        request.headers_mut().insert("content-length", length);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_the_token() {
        let body = br#"{"TransactItems":[{"Put":{"TableName":"t","Item":{"pk":{"S":"ClientRequestToken"}}}}],"ClientRequestToken":"abc-123"}"#;
        let stripped = without_request_token(body).unwrap();
        let value: Value = serde_json::from_slice(&stripped).unwrap();
        assert!(value.get(TOKEN_FIELD).is_none());
        assert_eq!(
            value["TransactItems"][0]["Put"]["Item"]["pk"]["S"],
            "ClientRequestToken"
        );
    }

    #[test]
    fn leaves_other_bodies_alone() {
        assert_eq!(without_request_token(br#"{"TableName":"t"}"#), None);
        assert_eq!(
            without_request_token(br#"{"Item":{"ClientRequestToken":{"S":"x"}}}"#),
            None
        );
        assert_eq!(without_request_token(b"ClientRequestToken not json"), None);
    }

    /// With the token, the embedded server would replay the first answer (success) for the
    /// second call; without it, the second call runs and its condition refuses the duplicate.
    #[tokio::test]
    async fn a_repeated_token_no_longer_replays_on_the_embedded_store() {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
            ScalarAttributeType, TransactWriteItem,
        };
        let embedded = super::super::dynamo::start_embedded(None).await.unwrap();
        let client = embedded_client("us-east-1", &embedded.endpoint);
        client
            .create_table()
            .table_name("tokens")
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let put = TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name("tokens")
                    .item("pk", AttributeValue::S("once".into()))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .unwrap(),
            )
            .build();
        let write = || {
            client
                .transact_write_items()
                .transact_items(put.clone())
                .client_request_token("same-token")
                .send()
        };
        write().await.unwrap();
        let second = write().await;
        assert!(
            second.is_err(),
            "the second write was replayed from a kept token"
        );
    }
}
