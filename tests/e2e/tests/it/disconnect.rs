//! A streaming client that disconnects mid-answer is still charged for what Bedrock consumed:
//! through the whole gateway (real Envoy + gate wasm + translator-svc + ratelimit-svc + the fake
//! Bedrock), the key's tokens-per-minute bucket loses the input tokens plus the output streamed
//! before the drop, and the usage record says `client_disconnected` with the same counts. Envoy
//! cannot charge it itself (a reset stream has no usage trailer); translator-svc charges
//! ratelimit-svc directly.

use std::time::{Duration, Instant};

use e2e::stack::{Stack, StackOptions};
use fake_bedrock::{Pause, Scenario, Usage};
use serde_json::{Value, json};

const MODEL: &str = "claude-sonnet-4-5-20250929";
const TPM: u64 = 100_000;
const INPUT_TOKENS: u64 = 1_000;
/// The fake streams text in 16-character deltas: 4 tokens each by the local estimate.
const PIECE: &str = "0123456789abcdef";
const DELTAS_BEFORE_DROP: usize = 5;

fn message(stream: bool) -> Value {
    json!({"model": MODEL, "max_tokens": 1000, "stream": stream,
           "messages": [{"role": "user", "content": "Tell me a long story."}]})
}

/// Tokens left in the key's bucket, as the rate limiter reports it on the next request (which
/// costs nothing: its scripted usage is zero).
async fn tokens_remaining(stack: &Stack, http: &reqwest::Client, secret: &str) -> u64 {
    stack.fake.enqueue(Scenario {
        usage: Some(Usage {
            input_tokens: Some(0),
            output_tokens: Some(0),
            cache_read_input_tokens: Some(0),
            cache_creation_input_tokens: Some(0),
            cache_creation_1h_input_tokens: None,
        }),
        ..Scenario::text("free")
    });
    let response = http
        .post(format!("{}/v1/messages", stack.url))
        .header("x-api-key", secret)
        .json(&message(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.headers()["anthropic-ratelimit-tokens-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_is_charged_input_plus_streamed_output() {
    let Some(stack) = Stack::start(StackOptions::default().with_ratelimit())
        .await
        .expect("start the gateway")
    else {
        return;
    };
    let http = stack.http();
    let (key_id, secret) = stack
        .create_key(json!({"name": "e2e-disconnect", "tpm": TPM}))
        .await
        .expect("create a key");
    assert_eq!(tokens_remaining(&stack, &http, &secret).await, TPM);

    // message_start, content_block_start, then DELTAS_BEFORE_DROP deltas, then a long silence in
    // which the client goes away (Bedrock would have billed 500 output tokens at the end).
    stack.fake.enqueue(Scenario {
        usage: Some(Usage {
            input_tokens: Some(INPUT_TOKENS),
            output_tokens: Some(500),
            cache_read_input_tokens: Some(0),
            cache_creation_input_tokens: Some(0),
            cache_creation_1h_input_tokens: None,
        }),
        pause: Some(Pause {
            after_events: 2 + DELTAS_BEFORE_DROP,
            ms: 60_000,
        }),
        ..Scenario::text(PIECE.repeat(40))
    });
    let mut response = http
        .post(format!("{}/v1/messages", stack.url))
        .header("x-api-key", &secret)
        .json(&message(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut seen = String::new();
    while seen.matches("text_delta").count() < DELTAS_BEFORE_DROP {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("deltas arrive before the pause")
            .unwrap()
            .expect("the stream is still open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(seen.matches("text_delta").count(), DELTAS_BEFORE_DROP);
    drop(response);

    let streamed_output = (DELTAS_BEFORE_DROP * PIECE.len() / 4) as u64;
    let charged = INPUT_TOKENS + streamed_output;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let remaining = tokens_remaining(&stack, &http, &secret).await;
        if remaining == TPM - charged {
            break;
        }
        assert!(
            remaining == TPM && Instant::now() < deadline,
            "after the drop the bucket should lose {charged} tokens, it has {remaining} of {TPM}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The usage record has the same counts, and says how the request ended.
    let page: Value = http
        .get(format!("{}/admin/v1/keys/{key_id}/requests", stack.url))
        .header("x-api-key", &stack.master_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dropped = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "client_disconnected")
        .unwrap_or_else(|| panic!("no client_disconnected record: {page:#}"));
    assert_eq!(dropped["input_tokens"], INPUT_TOKENS, "{dropped:#}");
    assert_eq!(dropped["output_tokens"], streamed_output, "{dropped:#}");
    // The upstream call was cancelled with the client.
    assert_eq!(stack.fake.active_streams(), 0);
}
