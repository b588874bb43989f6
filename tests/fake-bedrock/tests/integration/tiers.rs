//! The tier Bedrock reports it ran a call at (which may differ from the requested one, e.g. a
//! priority request that overflowed to the standard tier) and cache writes reported per TTL, as
//! the real SDK reads them.

use aws_sdk_bedrockruntime::types::{ResponseStream, ServiceTier, ServiceTierType};
use fake_bedrock::{FakeBedrock, Scenario, Usage};
use serde_json::Value;

use crate::common::{CLAUDE, client, invoke_body, to_blob, user};

fn overflowed(text: &str) -> Scenario {
    Scenario {
        served_tier: Some("default".into()),
        usage: Some(Usage {
            cache_creation_input_tokens: Some(300),
            cache_creation_1h_input_tokens: Some(200),
            ..Usage::default()
        }),
        ..Scenario::text(text)
    }
}

#[tokio::test]
async fn invoke_reports_the_served_tier_and_cache_writes_per_ttl() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    fake.enqueue(overflowed("non-stream"));
    let out = client(&fake)
        .invoke_model()
        .model_id(CLAUDE)
        .content_type("application/json")
        .accept("application/json")
        .service_tier(ServiceTierType::Priority)
        .body(to_blob(&invoke_body("hello")))
        .send()
        .await
        .expect("invoke succeeds");
    assert_eq!(out.service_tier(), Some(&ServiceTierType::Default));
    let message: Value = serde_json::from_slice(out.body().as_ref()).expect("JSON body");
    assert_eq!(message["usage"]["cache_creation_input_tokens"], 300);
    assert_eq!(
        message["usage"]["cache_creation"]["ephemeral_5m_input_tokens"],
        100
    );
    assert_eq!(
        message["usage"]["cache_creation"]["ephemeral_1h_input_tokens"],
        200
    );

    fake.enqueue(overflowed("stream"));
    let mut stream = client(&fake)
        .invoke_model_with_response_stream()
        .model_id(CLAUDE)
        .content_type("application/json")
        .service_tier(ServiceTierType::Flex)
        .body(to_blob(&invoke_body("hello")))
        .send()
        .await
        .expect("stream starts");
    assert_eq!(stream.service_tier(), Some(&ServiceTierType::Default));
    let Some(ResponseStream::Chunk(first)) = stream.body.recv().await.expect("first chunk") else {
        panic!("no first chunk");
    };
    let start: Value =
        serde_json::from_slice(first.bytes().expect("bytes").as_ref()).expect("JSON");
    assert_eq!(
        start["message"]["usage"]["cache_creation"]["ephemeral_1h_input_tokens"],
        200
    );

    // Without a scripted overflow the requested tier is the one reported; without a request, none.
    fake.enqueue(Scenario::text("as asked"));
    let out = client(&fake)
        .invoke_model()
        .model_id(CLAUDE)
        .service_tier(ServiceTierType::Priority)
        .body(to_blob(&invoke_body("hello")))
        .send()
        .await
        .expect("invoke succeeds");
    assert_eq!(out.service_tier(), Some(&ServiceTierType::Priority));
    let message: Value = serde_json::from_slice(out.body().as_ref()).expect("JSON body");
    assert!(message["usage"].get("cache_creation").is_none());
}

#[tokio::test]
async fn converse_reports_the_served_tier_and_cache_details() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    fake.enqueue(overflowed("converse"));
    let out = client(&fake)
        .converse()
        .model_id(CLAUDE)
        .messages(user("hello"))
        .service_tier(
            ServiceTier::builder()
                .r#type(ServiceTierType::Priority)
                .build()
                .expect("tier"),
        )
        .send()
        .await
        .expect("converse succeeds");
    assert_eq!(
        out.service_tier().map(|t| t.r#type()),
        Some(&ServiceTierType::Default)
    );
    let usage = out.usage().expect("usage");
    assert_eq!(usage.cache_write_input_tokens(), Some(300));
    let details: Vec<(String, i32)> = usage
        .cache_details()
        .iter()
        .map(|d| (d.ttl().as_str().to_owned(), d.input_tokens()))
        .collect();
    assert_eq!(details, vec![("5m".into(), 100), ("1h".into(), 200)]);
}
