//! CountTokens through the real SDK: both input kinds, the deterministic estimate, scripted counts.

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
use aws_sdk_bedrockruntime::operation::count_tokens::CountTokensError;
use aws_sdk_bedrockruntime::types::{
    ConverseTokensRequest, CountTokensInput, InvokeModelTokensRequest,
};
use fake_bedrock::{FakeBedrock, Operation, Scenario};
use serde_json::json;

use crate::common::{CLAUDE, client, invoke_body, to_blob, user};

fn converse_input(text: &str) -> CountTokensInput {
    CountTokensInput::Converse(
        ConverseTokensRequest::builder()
            .messages(user(text))
            .build(),
    )
}

fn invoke_input(body: &serde_json::Value) -> CountTokensInput {
    CountTokensInput::InvokeModel(
        InvokeModelTokensRequest::builder()
            .body(to_blob(body))
            .build()
            .expect("request"),
    )
}

#[tokio::test]
async fn counts_both_input_kinds_with_the_estimate() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let sdk = client(&fake);
    let text = "y".repeat(80);
    let converse = sdk
        .count_tokens()
        .model_id(CLAUDE)
        .input(converse_input(&text))
        .send()
        .await
        .expect("counts");
    assert_eq!(converse.input_tokens(), 20);
    let invoke = sdk
        .count_tokens()
        .model_id(CLAUDE)
        .input(invoke_input(&invoke_body(&text)))
        .send()
        .await
        .expect("counts");
    assert_eq!(invoke.input_tokens(), 20);
    let tiny = sdk
        .count_tokens()
        .model_id(CLAUDE)
        .input(converse_input("a"))
        .send()
        .await
        .expect("counts");
    assert_eq!(tiny.input_tokens(), 1);
    // The estimate is the default input usage of a generation call on the same text.
    let out = sdk
        .converse()
        .model_id(CLAUDE)
        .messages(user(&text))
        .send()
        .await
        .expect("converse");
    assert_eq!(out.usage().map(|u| u.input_tokens()), Some(20));
    let recorded = fake.requests();
    assert_eq!(recorded[0].operation, Operation::CountTokens);
    assert_eq!(
        recorded[0].body["input"]["converse"]["messages"][0]["content"][0]["text"],
        text
    );
    assert!(recorded[1].body["input"]["invokeModel"]["body"].is_string());
}

#[tokio::test]
async fn scripted_counts_and_errors_are_count_tokens_only() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    fake.enqueue(Scenario::text("for generation"));
    fake.enqueue(Scenario {
        count_tokens: Some(4242),
        ..Scenario::default()
    });
    fake.enqueue(Scenario {
        operations: Some(vec![Operation::CountTokens]),
        ..Scenario::error("ThrottlingException", "count throttled")
    });
    let sdk = client(&fake);
    let count = sdk
        .count_tokens()
        .model_id(CLAUDE)
        .input(converse_input("[[fake:throttle]] ignored marker"))
        .send()
        .await
        .expect("counts");
    assert_eq!(count.input_tokens(), 4242);
    let error = sdk
        .count_tokens()
        .model_id(CLAUDE)
        .input(converse_input("hi"))
        .send()
        .await
        .expect_err("throttled");
    let service = error.as_service_error().expect("service error");
    assert!(matches!(service, CountTokensError::ThrottlingException(_)));
    assert_eq!(service.message(), Some("count throttled"));
    assert_eq!(fake.queued(), vec![Scenario::text("for generation")]);
}

#[tokio::test]
async fn count_tokens_is_strict() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let sdk = client(&fake);
    let error = sdk
        .count_tokens()
        .model_id("amazon.nova-pro-v1:0")
        .input(converse_input("hi"))
        .send()
        .await
        .expect_err("unsupported");
    assert!(matches!(
        error.as_service_error(),
        Some(CountTokensError::ValidationException(_))
    ));
    let mut body = invoke_body("hi");
    body["model"] = json!("claude");
    let error = sdk
        .count_tokens()
        .model_id(CLAUDE)
        .input(invoke_input(&body))
        .send()
        .await
        .expect_err("extra key");
    let service = error.as_service_error().expect("service error");
    assert_eq!(
        service.message(),
        Some("model: Extra inputs are not permitted")
    );
}
