//! Errors as the SDK sees them: pre-stream HTTP errors map to the right variant, mid-stream exception
//! frames surface as `Err` with the matching variant, retries are countable, tiers can be refused.

use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::operation::converse_stream::ConverseStreamError;
use aws_sdk_bedrockruntime::operation::invoke_model::InvokeModelError;
use aws_sdk_bedrockruntime::operation::invoke_model_with_response_stream::InvokeModelWithResponseStreamError;
use aws_sdk_bedrockruntime::types::error::{ConverseStreamOutputError, ResponseStreamError};
use aws_sdk_bedrockruntime::types::{ConverseStreamOutput, ServiceTier, ServiceTierType};
use fake_bedrock::{ErrorSpec, FakeBedrock, Scenario, StreamErrorSpec};

use crate::common::{CLAUDE, client, client_with, invoke_body, to_blob, user};
use crate::converse::drain;

/// Whether an SDK error is the variant a marker should produce.
type IsExpected = fn(&ConverseError) -> bool;

#[tokio::test]
async fn converse_errors_map_to_sdk_variants() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let converse = |text: &'static str| {
        client(&fake)
            .converse()
            .model_id(CLAUDE)
            .messages(user(text))
            .send()
    };
    let error = converse("[[fake:throttle]]").await.expect_err("throttled");
    let service = error.as_service_error().expect("service error");
    assert!(
        matches!(service, ConverseError::ThrottlingException(_)),
        "{service:?}"
    );
    assert_eq!(
        service.message(),
        Some("Too many requests, please wait before trying again.")
    );
    let error = converse("[[fake:context_overflow]]")
        .await
        .expect_err("too long");
    let service = error.as_service_error().expect("service error");
    assert!(matches!(service, ConverseError::ValidationException(_)));
    assert_eq!(
        service.message(),
        Some("Input is too long for requested model.")
    );
    let cases: [(&str, IsExpected); 8] = [
        ("[[fake:access_denied]]", |e| {
            matches!(e, ConverseError::AccessDeniedException(_))
        }),
        ("[[fake:not_found]]", |e| {
            matches!(e, ConverseError::ResourceNotFoundException(_))
        }),
        ("[[fake:quota]]", |e| {
            e.code() == Some("ServiceQuotaExceededException")
        }),
        ("[[fake:not_ready]]", |e| {
            matches!(e, ConverseError::ModelNotReadyException(_))
        }),
        ("[[fake:unavailable]]", |e| {
            matches!(e, ConverseError::ServiceUnavailableException(_))
        }),
        ("[[fake:internal]]", |e| {
            matches!(e, ConverseError::InternalServerException(_))
        }),
        ("[[fake:model_timeout]]", |e| {
            matches!(e, ConverseError::ModelTimeoutException(_))
        }),
        (
            "[[fake:model_error]]",
            |e| matches!(e, ConverseError::ModelErrorException(m) if m.original_status_code() == Some(529)),
        ),
    ];
    for (marker, is_expected) in cases {
        let error = converse(marker).await.expect_err(marker);
        let service = error.as_service_error().expect("service error");
        assert!(is_expected(service), "{marker}: {service:?}");
    }
}

#[tokio::test]
async fn pre_stream_errors_for_every_operation() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let sdk = client(&fake);
    let error = sdk
        .converse_stream()
        .model_id(CLAUDE)
        .messages(user("[[fake:throttle]]"))
        .send()
        .await
        .expect_err("throttled");
    assert!(matches!(
        error.as_service_error(),
        Some(ConverseStreamError::ThrottlingException(_))
    ));
    let error = sdk
        .invoke_model()
        .model_id(CLAUDE)
        .body(to_blob(&invoke_body("[[fake:validation]]")))
        .send()
        .await
        .expect_err("invalid");
    assert!(matches!(
        error.as_service_error(),
        Some(InvokeModelError::ValidationException(_))
    ));
    fake.enqueue(Scenario::error("AccessDeniedException", "no access"));
    let error = sdk
        .invoke_model_with_response_stream()
        .model_id(CLAUDE)
        .body(to_blob(&invoke_body("hi")))
        .send()
        .await
        .expect_err("denied");
    let service = error.as_service_error().expect("service error");
    assert!(matches!(
        service,
        InvokeModelWithResponseStreamError::AccessDeniedException(_)
    ));
    assert_eq!(service.message(), Some("no access"));
    assert!(
        fake.queued().is_empty(),
        "an error without error_times is consumed"
    );
}

#[tokio::test]
async fn converse_stream_exception_mid_stream() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let call = client(&fake)
        .converse_stream()
        .model_id(CLAUDE)
        .messages(user("[[fake:stream_error]]"))
        .send()
        .await
        .expect("stream starts");
    let (events, error) = drain(call).await;
    assert_eq!(events.len(), 3);
    assert!(matches!(events[0], ConverseStreamOutput::MessageStart(_)));
    let error = error.expect("stream fails");
    assert!(
        matches!(
            error.as_service_error(),
            Some(ConverseStreamOutputError::ThrottlingException(_))
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn invoke_stream_model_stream_error_carries_original_status() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    fake.enqueue(Scenario {
        stream_error: Some(StreamErrorSpec {
            after_events: 2,
            kind: "modelStreamErrorException".into(),
            message: Some("upstream broke".into()),
            original_status_code: Some(529),
            original_message: Some("Overloaded".into()),
        }),
        ..Scenario::text("some text that will not all arrive")
    });
    let mut call = client(&fake)
        .invoke_model_with_response_stream()
        .model_id(CLAUDE)
        .body(to_blob(&invoke_body("hi")))
        .send()
        .await
        .expect("starts");
    let mut chunks = 0;
    let error = loop {
        match call.body.recv().await {
            Ok(Some(_)) => chunks += 1,
            Ok(None) => panic!("stream ended without the exception"),
            Err(error) => break error,
        }
    };
    assert_eq!(chunks, 2);
    let Some(ResponseStreamError::ModelStreamErrorException(exception)) = error.as_service_error()
    else {
        panic!("expected modelStreamErrorException, got {error:?}");
    };
    assert_eq!(exception.original_status_code(), Some(529));
    assert_eq!(exception.original_message(), Some("Overloaded"));
    assert_eq!(exception.message(), Some("upstream broke"));
}

#[tokio::test]
async fn invoke_stream_throttling_mid_stream_by_marker() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let mut call = client(&fake)
        .invoke_model_with_response_stream()
        .model_id(CLAUDE)
        .body(to_blob(&invoke_body("[[fake:stream_error]]")))
        .send()
        .await
        .expect("starts");
    let error = loop {
        match call.body.recv().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("stream ended without the exception"),
            Err(error) => break error,
        }
    };
    assert!(matches!(
        error.as_service_error(),
        Some(ResponseStreamError::ThrottlingException(_))
    ));
}

#[tokio::test]
async fn sdk_retries_are_counted_and_error_times_then_succeeds() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    fake.enqueue(Scenario {
        error: Some(ErrorSpec {
            status: None,
            kind: "ThrottlingException".into(),
            message: None,
            original_status_code: None,
        }),
        error_times: Some(2),
        ..Scenario::text("third time lucky")
    });
    let sdk = client_with(
        &fake,
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(std::time::Duration::from_millis(1)),
    );
    let out = sdk
        .converse()
        .model_id(CLAUDE)
        .messages(user("hi"))
        .send()
        .await
        .expect("succeeds after retries");
    let text = out
        .output()
        .and_then(|o| o.as_message().ok())
        .and_then(|m| m.content()[0].as_text().ok())
        .cloned();
    assert_eq!(text.as_deref(), Some("third time lucky"));
    let attempts: Vec<Option<u32>> = fake.requests().iter().map(|r| r.attempt()).collect();
    assert_eq!(attempts, vec![Some(1), Some(2), Some(3)]);
}

#[tokio::test]
async fn rejected_service_tier_is_a_validation_error_naming_the_tier() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let sdk = client(&fake);
    let tier = ServiceTier::builder()
        .r#type(ServiceTierType::Priority)
        .build()
        .expect("tier");
    let error = sdk
        .converse()
        .model_id(CLAUDE)
        .messages(user("[[fake:tier_reject]]"))
        .service_tier(tier)
        .send()
        .await
        .expect_err("rejected");
    let service = error.as_service_error().expect("service error");
    assert!(matches!(service, ConverseError::ValidationException(_)));
    assert!(
        service
            .message()
            .is_some_and(|m| m.contains("service tier") && m.contains("priority"))
    );
    let out = sdk
        .converse()
        .model_id(CLAUDE)
        .messages(user("[[fake:tier_reject]]"))
        .send()
        .await
        .expect("no tier is fine");
    assert!(out.service_tier().is_none());
    let error = sdk
        .invoke_model()
        .model_id(CLAUDE)
        .service_tier(ServiceTierType::Flex)
        .body(to_blob(&invoke_body("[[fake:tier_reject]]")))
        .send()
        .await
        .expect_err("rejected");
    assert!(matches!(
        error.as_service_error(),
        Some(InvokeModelError::ValidationException(_))
    ));
}

#[tokio::test]
async fn queued_tier_refusal_stays_queued_for_the_retry() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    fake.enqueue(Scenario {
        reject_service_tiers: vec!["priority".into()],
        ..Scenario::text("served without a tier")
    });
    let sdk = client(&fake);
    let tier = ServiceTier::builder()
        .r#type(ServiceTierType::Priority)
        .build()
        .expect("tier");
    let error = sdk
        .converse_stream()
        .model_id(CLAUDE)
        .messages(user("hi"))
        .service_tier(tier)
        .send()
        .await
        .expect_err("refused");
    assert!(matches!(
        error.as_service_error(),
        Some(ConverseStreamError::ValidationException(_))
    ));
    assert_eq!(fake.queued().len(), 1);
    let out = sdk
        .converse()
        .model_id(CLAUDE)
        .messages(user("hi"))
        .send()
        .await
        .expect("retry without tier");
    let text = out
        .output()
        .and_then(|o| o.as_message().ok())
        .and_then(|m| m.content()[0].as_text().ok())
        .cloned();
    assert_eq!(text.as_deref(), Some("served without a tier"));
    assert!(fake.queued().is_empty());
}
