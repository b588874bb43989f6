//! Converse and ConverseStream through the real SDK: content blocks, usage, stop reasons, tiers, and the
//! stream event sequence.

use aws_sdk_bedrockruntime::operation::converse_stream::ConverseStreamOutput as StreamCall;
use aws_sdk_bedrockruntime::types::{
    ContentBlock as SdkBlock, ContentBlockDelta, ContentBlockStart, ConverseStreamOutput,
    InferenceConfiguration, ReasoningContentBlock, ReasoningContentBlockDelta, ServiceTier,
    ServiceTierType, StopReason,
};
use fake_bedrock::{ContentBlock, FakeBedrock, Operation, Scenario, Usage};
use serde_json::{Value, json};

use crate::common::{CLAUDE, CLAUDE_ARN, client, document_to_json, user};

/// Every event of a stream, and the error that ended it if any.
pub async fn drain(
    mut call: StreamCall,
) -> (
    Vec<ConverseStreamOutput>,
    Option<
        aws_sdk_bedrockruntime::error::SdkError<
            aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError,
            aws_smithy_types::event_stream::RawMessage,
        >,
    >,
) {
    let mut events = Vec::new();
    loop {
        match call.stream.recv().await {
            Ok(Some(event)) => events.push(event),
            Ok(None) => return (events, None),
            Err(error) => return (events, Some(error)),
        }
    }
}

fn rich_scenario() -> Scenario {
    Scenario {
        usage: Some(Usage {
            input_tokens: Some(11),
            output_tokens: Some(22),
            cache_read_input_tokens: Some(33),
            cache_creation_input_tokens: Some(44),
            cache_creation_1h_input_tokens: None,
        }),
        ..Scenario::with_content(vec![
            ContentBlock::thinking("Let me consider the question carefully.", "sig-abc"),
            ContentBlock::RedactedThinking {
                data: "AAECAwQ=".into(),
            },
            ContentBlock::text("Here is a text answer that spans several deltas."),
            ContentBlock::tool_use(
                "toolu_bdrk_1",
                "Bash",
                json!({"command": "echo hi", "description": "Say hi"}),
            ),
        ])
    }
}

#[tokio::test]
async fn converse_returns_every_block_kind() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    fake.enqueue(rich_scenario());
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
    let content = out
        .output()
        .and_then(|o| o.as_message().ok())
        .expect("message")
        .content();
    assert_eq!(content.len(), 4);
    let SdkBlock::ReasoningContent(ReasoningContentBlock::ReasoningText(reasoning)) = &content[0]
    else {
        panic!("expected reasoning text, got {:?}", content[0]);
    };
    assert_eq!(reasoning.text(), "Let me consider the question carefully.");
    assert_eq!(reasoning.signature(), Some("sig-abc"));
    let SdkBlock::ReasoningContent(ReasoningContentBlock::RedactedContent(blob)) = &content[1]
    else {
        panic!("expected redacted content");
    };
    assert_eq!(blob.as_ref(), &[0, 1, 2, 3, 4]);
    assert_eq!(
        content[2].as_text().ok().map(String::as_str),
        Some("Here is a text answer that spans several deltas.")
    );
    let tool = content[3].as_tool_use().expect("tool use");
    assert_eq!((tool.tool_use_id(), tool.name()), ("toolu_bdrk_1", "Bash"));
    assert_eq!(
        document_to_json(tool.input()),
        json!({"command": "echo hi", "description": "Say hi"})
    );
    assert_eq!(out.stop_reason(), &StopReason::ToolUse);
    let usage = out.usage().expect("usage");
    assert_eq!(
        (
            usage.input_tokens(),
            usage.output_tokens(),
            usage.total_tokens()
        ),
        (11, 22, 110)
    );
    assert_eq!(
        (
            usage.cache_read_input_tokens(),
            usage.cache_write_input_tokens()
        ),
        (Some(33), Some(44))
    );
    assert_eq!(
        out.service_tier().map(|t| t.r#type()),
        Some(&ServiceTierType::Priority)
    );
    assert!(out.metrics().is_some_and(|m| m.latency_ms() >= 1));
}

#[tokio::test]
async fn converse_default_reply_estimates_usage_and_echoes_no_tier() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let text = "x".repeat(400);
    let out = client(&fake)
        .converse()
        .model_id("amazon.nova-pro-v1:0")
        .messages(user(&text))
        .send()
        .await
        .expect("ok");
    let content = out
        .output()
        .and_then(|o| o.as_message().ok())
        .expect("message")
        .content();
    assert_eq!(
        content[0].as_text().ok().map(String::as_str),
        Some("Hello from fake Bedrock (amazon.nova-pro-v1:0)")
    );
    assert_eq!(out.usage().map(|u| u.input_tokens()), Some(100));
    assert_eq!(out.stop_reason(), &StopReason::EndTurn);
    assert!(out.service_tier().is_none());
}

#[tokio::test]
async fn converse_reports_stop_sequence_for_claude_when_asked() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let config = InferenceConfiguration::builder()
        .max_tokens(100)
        .stop_sequences("END")
        .build();
    let call = |model: &str| {
        client(&fake)
            .converse()
            .model_id(model)
            .messages(user("count [[fake:stop_sequence]]"))
            .inference_config(config.clone())
            .additional_model_response_field_paths("/stop_sequence")
    };
    let claude = call(CLAUDE).send().await.expect("ok");
    assert_eq!(claude.stop_reason(), &StopReason::StopSequence);
    let fields = claude
        .additional_model_response_fields()
        .map(document_to_json);
    assert_eq!(fields, Some(json!({"stop_sequence": "END"})));
    let nova = call("amazon.nova-lite-v1:0").send().await.expect("ok");
    assert!(nova.additional_model_response_fields().is_none());
}

#[tokio::test]
async fn converse_stream_emits_the_bedrock_event_sequence() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    fake.enqueue(rich_scenario());
    let call = client(&fake)
        .converse_stream()
        .model_id(CLAUDE_ARN)
        .messages(user("hello"))
        .service_tier(
            ServiceTier::builder()
                .r#type(ServiceTierType::Flex)
                .build()
                .expect("tier"),
        )
        .send()
        .await
        .expect("stream starts");
    let (events, error) = drain(call).await;
    assert!(error.is_none(), "{error:?}");
    assert!(matches!(
        events.first(),
        Some(ConverseStreamOutput::MessageStart(_))
    ));
    let (mut text, mut reasoning, mut signature, mut redacted, mut tool_input, mut tool_fragments) = (
        String::new(),
        String::new(),
        String::new(),
        Vec::new(),
        String::new(),
        0,
    );
    let mut starts = Vec::new();
    for event in &events {
        match event {
            ConverseStreamOutput::ContentBlockStart(start) => {
                starts.push((start.content_block_index(), start.start().cloned()))
            }
            ConverseStreamOutput::ContentBlockDelta(delta) => match delta.delta() {
                Some(ContentBlockDelta::Text(piece)) => text.push_str(piece),
                Some(ContentBlockDelta::ReasoningContent(ReasoningContentBlockDelta::Text(
                    piece,
                ))) => reasoning.push_str(piece),
                Some(ContentBlockDelta::ReasoningContent(
                    ReasoningContentBlockDelta::Signature(s),
                )) => signature.push_str(s),
                Some(ContentBlockDelta::ReasoningContent(
                    ReasoningContentBlockDelta::RedactedContent(b),
                )) => redacted.extend_from_slice(b.as_ref()),
                Some(ContentBlockDelta::ToolUse(tool)) => {
                    tool_input.push_str(tool.input());
                    tool_fragments += 1;
                }
                other => panic!("unexpected delta {other:?}"),
            },
            _ => {}
        }
    }
    assert_eq!(text, "Here is a text answer that spans several deltas.");
    assert!(events.iter().filter(|e| matches!(e, ConverseStreamOutput::ContentBlockDelta(d) if d.content_block_index() == 2)).count() >= 3);
    assert_eq!(reasoning, "Let me consider the question carefully.");
    assert_eq!(signature, "sig-abc");
    assert_eq!(redacted, vec![0, 1, 2, 3, 4]);
    assert!(tool_fragments >= 2);
    assert_eq!(
        serde_json::from_str::<Value>(&tool_input).ok(),
        Some(json!({"command": "echo hi", "description": "Say hi"}))
    );
    assert_eq!(starts.len(), 1, "only tool use blocks get a start");
    let Some(ContentBlockStart::ToolUse(start)) = &starts[0].1 else {
        panic!("tool start")
    };
    assert_eq!(
        (starts[0].0, start.tool_use_id(), start.name()),
        (3, "toolu_bdrk_1", "Bash")
    );
    let tail: Vec<&ConverseStreamOutput> = events.iter().rev().take(2).collect();
    let ConverseStreamOutput::Metadata(metadata) = tail[0] else {
        panic!("metadata must come last")
    };
    let ConverseStreamOutput::MessageStop(stop) = tail[1] else {
        panic!("messageStop before metadata")
    };
    assert_eq!(stop.stop_reason(), &StopReason::ToolUse);
    let usage = metadata.usage().expect("usage");
    assert_eq!(
        (
            usage.input_tokens(),
            usage.output_tokens(),
            usage.cache_write_input_tokens()
        ),
        (11, 22, Some(44))
    );
    assert_eq!(
        metadata.service_tier().map(|t| t.r#type()),
        Some(&ServiceTierType::Flex)
    );
    let recorded = fake.requests();
    assert_eq!(recorded[0].operation, Operation::ConverseStream);
    assert_eq!(recorded[0].model_id, CLAUDE_ARN);
}

#[tokio::test]
async fn converse_stream_can_omit_metadata_or_truncate() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let stream = |text: &'static str| {
        client(&fake)
            .converse_stream()
            .model_id(CLAUDE)
            .messages(user(text))
            .send()
    };
    let (events, error) = drain(stream("[[fake:no_metadata]]").await.expect("starts")).await;
    assert!(error.is_none());
    assert!(matches!(
        events.last(),
        Some(ConverseStreamOutput::MessageStop(_))
    ));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ConverseStreamOutput::Metadata(_)))
    );
    let (events, error) = drain(stream("[[fake:truncated]]").await.expect("starts")).await;
    assert!(error.is_none());
    assert_eq!(events.len(), 3);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ConverseStreamOutput::MessageStop(_)))
    );
}

#[tokio::test]
async fn slow_and_silent_streams_keep_their_timing() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    fake.enqueue(Scenario {
        first_event_delay_ms: 400,
        event_delay_ms: 30,
        ..Scenario::text("timed")
    });
    let started = std::time::Instant::now();
    let call = client(&fake)
        .converse_stream()
        .model_id(CLAUDE)
        .messages(user("hi"))
        .send()
        .await
        .expect("starts");
    let (events, _) = drain(call).await;
    let elapsed = started.elapsed();
    // messageStart, one delta, stop, messageStop, metadata: 400 ms then 4 x 30 ms.
    assert_eq!(events.len(), 5);
    assert!(
        elapsed >= std::time::Duration::from_millis(520),
        "{elapsed:?}"
    );
    assert!(elapsed < std::time::Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn builtin_slow_huge_and_parallel_tools() {
    let fake = FakeBedrock::start().await.expect("fake starts");
    let stream = |text: &'static str| {
        client(&fake)
            .converse_stream()
            .model_id(CLAUDE)
            .messages(user(text))
            .send()
    };
    // slow: every event 300 ms after the previous one.
    let mut call = stream("[[fake:slow]]").await.expect("starts");
    let mut arrivals = Vec::new();
    while let Some(_event) = call.stream.recv().await.expect("event") {
        arrivals.push(std::time::Instant::now());
    }
    assert!(arrivals.len() >= 5);
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= std::time::Duration::from_millis(250), "{gap:?}");
    }
    // huge: about 200 KB of text, in many deltas.
    let (events, error) = drain(stream("[[fake:huge]]").await.expect("starts")).await;
    assert!(error.is_none());
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            ConverseStreamOutput::ContentBlockDelta(d) => {
                d.delta().and_then(|d| d.as_text().ok()).cloned()
            }
            _ => None,
        })
        .collect();
    assert!(text.len() >= 200_000, "{}", text.len());
    assert!(text.starts_with("Line 00001: "));
    // parallel_tools: two tool blocks, each started, stop reason tool_use.
    let (events, _) = drain(stream("[[fake:parallel_tools]]").await.expect("starts")).await;
    let starts: Vec<i32> = events
        .iter()
        .filter_map(|e| match e {
            ConverseStreamOutput::ContentBlockStart(s) => Some(s.content_block_index()),
            _ => None,
        })
        .collect();
    assert_eq!(starts, vec![0, 1]);
    assert!(events.iter().any(
        |e| matches!(e, ConverseStreamOutput::MessageStop(s) if s.stop_reason() == &StopReason::ToolUse)
    ));
}
