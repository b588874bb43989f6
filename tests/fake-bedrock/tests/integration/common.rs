//! Shared helpers: an SDK client pointed at the fake, request builders, stream collectors.

use aws_credential_types::Credentials;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::{BehaviorVersion, Region};
use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, Message};
use aws_smithy_types::{Document, Number};
use fake_bedrock::FakeBedrock;
use serde_json::{Map, Value, json};

pub const CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
pub const CLAUDE_ARN: &str = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// A client with retries off, so each call is one request.
pub fn client(fake: &FakeBedrock) -> Client {
    client_with(fake, RetryConfig::disabled())
}

pub fn client_with(fake: &FakeBedrock, retry: RetryConfig) -> Client {
    let config = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDFAKE",
            "fake-secret",
            Some("fake-session".into()),
            None,
            "test",
        ))
        .endpoint_url(fake.url())
        .retry_config(retry)
        .build();
    Client::from_conf(config)
}

pub fn user(text: &str) -> Message {
    message(
        ConversationRole::User,
        vec![ContentBlock::Text(text.into())],
    )
}

pub fn message(role: ConversationRole, content: Vec<ContentBlock>) -> Message {
    Message::builder()
        .role(role)
        .set_content(Some(content))
        .build()
        .expect("message builds")
}

/// A minimal valid InvokeModel body with one user text.
pub fn invoke_body(text: &str) -> Value {
    json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]
    })
}

pub fn to_blob(body: &Value) -> aws_smithy_types::Blob {
    aws_smithy_types::Blob::new(serde_json::to_vec(body).expect("serializes"))
}

pub fn document_to_json(document: &Document) -> Value {
    match document {
        Document::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), document_to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Document::Array(items) => Value::Array(items.iter().map(document_to_json).collect()),
        Document::Number(Number::PosInt(n)) => json!(n),
        Document::Number(Number::NegInt(n)) => json!(n),
        Document::Number(Number::Float(n)) => json!(n),
        Document::String(s) => json!(s),
        Document::Bool(b) => json!(b),
        Document::Null => Value::Null,
    }
}

pub fn json_to_document(value: &Value) -> Document {
    match value {
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_document(v)))
                .collect(),
        ),
        Value::Array(items) => Document::Array(items.iter().map(json_to_document).collect()),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Document::Number(Number::PosInt(u)),
            (_, Some(i)) => Document::Number(Number::NegInt(i)),
            _ => Document::Number(Number::Float(n.as_f64().unwrap_or_default())),
        },
        Value::String(s) => Document::String(s.clone()),
        Value::Bool(b) => Document::Bool(*b),
        Value::Null => Document::Null,
    }
}

/// Raw HTTP POST to the fake (for bodies the SDK cannot produce).
pub async fn post_raw(fake: &FakeBedrock, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", fake.url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("fake answers")
}
