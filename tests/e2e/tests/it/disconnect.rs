//! A streaming client that disconnects mid-answer is still charged for what Bedrock consumed:
//! through the whole gateway (real Envoy + gate wasm + translator-svc + ratelimit-svc + the fake
//! Bedrock), the key's tokens-per-minute bucket loses the input tokens plus the output streamed
//! before the drop, and the usage record says `client_disconnected` with the same counts. Envoy
//! cannot charge it itself (a reset stream has no usage trailer); translator-svc charges
//! ratelimit-svc directly, retrying through a short ratelimit-svc outage.

use std::net::SocketAddr;
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

/// Streams a long answer and leaves after `DELTAS_BEFORE_DROP` deltas, while Bedrock is still
/// answering. Returns the tokens translator-svc charges for it: the input plus the output
/// streamed so far.
async fn leave_mid_stream(stack: &Stack, http: &reqwest::Client, secret: &str) -> u64 {
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
        .header("x-api-key", secret)
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
    INPUT_TOKENS + (DELTAS_BEFORE_DROP * PIECE.len() / 4) as u64
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

    let charged = leave_mid_stream(&stack, &http, &secret).await;
    let streamed_output = charged - INPUT_TOKENS;
    wait_for_bucket(&stack, &http, &secret, charged, "after the drop").await;

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

/// ratelimit-svc as translator-svc reaches it: a loopback port the test closes and reopens.
/// Closed, nothing listens there (connection refused, as while ratelimit-svc restarts); open,
/// each connection is forwarded to the real ratelimit-svc. Envoy keeps reaching it directly.
struct Outage {
    port: u16,
    forward: Option<tokio::task::JoinHandle<()>>,
}

impl Outage {
    /// A loopback port with nothing listening yet.
    fn closed() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Outage {
            port,
            forward: None,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// ratelimit-svc is back: forward connections on the port to `target`.
    async fn end(&mut self, target: SocketAddr) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.forward = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if let Some(task) = self.forward.take() {
            task.abort();
        }
    }
}

/// ratelimit-svc's gRPC address, from Envoy's view of its `ratelimit` cluster.
async fn ratelimit_addr(stack: &Stack, http: &reqwest::Client) -> SocketAddr {
    let clusters = http
        .get(format!("{}/clusters", stack.envoy_admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    clusters
        .lines()
        .find_map(|line| {
            line.strip_prefix("ratelimit::")?
                .split("::")
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no ratelimit cluster host in Envoy's /clusters"))
}

/// How many of translator-svc's log lines contain `text`.
fn log_count(stack: &Stack, text: &str) -> usize {
    stack.translator_logs()[0].matches(text).count()
}

/// Waits until translator-svc has logged `text` at least `count` times.
async fn wait_for_log(stack: &Stack, text: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while log_count(stack, text) < count {
        assert!(
            Instant::now() < deadline,
            "translator-svc never logged {text:?} {count} times:\n{}",
            stack.translator_logs()[0]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// translator-svc's count of direct token charges with `result`.
async fn charges(stack: &Stack, http: &reqwest::Client, result: &str) -> u64 {
    let metrics = http
        .get(format!("{}/metrics", stack.translator_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("translator_disconnect_token_charges_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until translator-svc counts `count` direct token charges with `result`.
async fn wait_for_charges(stack: &Stack, http: &reqwest::Client, result: &str, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let counted = charges(stack, http, result).await;
        if counted == count {
            return;
        }
        assert!(
            counted < count && Instant::now() < deadline,
            "{counted} charges with result={result}, expected {count}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const RETRYING: &str = "charging tokens to ratelimit-svc failed; retrying";
const GAVE_UP: &str = "gave up charging tokens to the key's TPM limit";

/// The direct charge of a dropped stream (the only way its tokens count: Envoy gets no usage
/// trailer) survives ratelimit-svc being unreachable for a moment: it is retried with backoff and
/// lands once ratelimit-svc is back, exactly once. An outage longer than the retries is given up
/// (bounded), logged with the tokens and counted as `result="error"`, charging nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_is_retried_through_a_short_outage_and_given_up_after_a_long_one() {
    let mut outage = Outage::closed();
    let options = StackOptions::default()
        .with_ratelimit()
        .translator_env("RATELIMIT_ENDPOINT", &outage.endpoint());
    let Some(stack) = Stack::start(options).await.expect("start the gateway") else {
        return;
    };
    let http = stack.http();
    let (_, secret) = stack
        .create_key(json!({"name": "e2e-charge-retry", "tpm": TPM}))
        .await
        .expect("create a key");
    assert_eq!(tokens_remaining(&stack, &http, &secret).await, TPM);

    // A long outage: every attempt is refused, the charge is given up after a bounded few.
    leave_mid_stream(&stack, &http, &secret).await;
    wait_for_log(&stack, GAVE_UP, 1).await;
    let retries = log_count(&stack, RETRYING);
    assert!(
        retries >= 1,
        "the charge was retried before it was given up"
    );
    wait_for_charges(&stack, &http, "error", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        log_count(&stack, RETRYING),
        retries,
        "no retry after giving up"
    );
    assert_eq!(tokens_remaining(&stack, &http, &secret).await, TPM);

    // A short one: the first attempt is refused, ratelimit-svc comes back, a retry lands.
    let charged = leave_mid_stream(&stack, &http, &secret).await;
    wait_for_log(&stack, RETRYING, retries + 1).await;
    outage.end(ratelimit_addr(&stack, &http).await).await;
    wait_for_bucket(&stack, &http, &secret, charged, "after the retried charge").await;
    wait_for_charges(&stack, &http, "ok", 1).await;
    assert_eq!(log_count(&stack, GAVE_UP), 1);
    // Once: nothing else lands later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        tokens_remaining(&stack, &http, &secret).await,
        TPM - charged
    );
}

/// Waits up to 15 s for the key's bucket to lose exactly `charged` tokens (the charge lands in
/// the background); it must stay full until then and never lose a different amount.
async fn wait_for_bucket(
    stack: &Stack,
    http: &reqwest::Client,
    secret: &str,
    charged: u64,
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let remaining = tokens_remaining(stack, http, secret).await;
        if remaining == TPM - charged {
            return;
        }
        assert!(
            remaining == TPM && Instant::now() < deadline,
            "{what}: the bucket should lose {charged} tokens, it has {remaining} of {TPM}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
