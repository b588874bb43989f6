//! Errors against the fake Bedrock: every exception of spec 5.3 reaches `BedrockError` with the
//! right kind and maps to the right client error; the SDK retries at most once and only what spec
//! 5.6 allows; mid-stream exception frames keep their kind (13.6); dropping a stream closes the
//! upstream connection; undecodable frames are `Decode`.

use super::fake_tests::{
    CLAUDE, client_for, client_with_read_timeout, converse_call, invoke_call, simple_converse,
    start,
};
use super::*;
use crate::error::ErrorType;
use fake_bedrock::{ErrorSpec, Scenario, StreamErrorSpec};
use futures::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn error_scenario(kind: &str, message: &str, original: Option<u16>, times: u32) -> Scenario {
    Scenario {
        error: Some(ErrorSpec {
            status: None,
            kind: kind.into(),
            message: Some(message.into()),
            original_status_code: original,
        }),
        error_times: Some(times),
        ..Scenario::default()
    }
}

struct Row {
    exception: &'static str,
    original: Option<u16>,
    message: &'static str,
    kind: ExceptionKind,
    /// SDK attempts expected (2 for what spec 5.6 retries).
    attempts: usize,
    status: u16,
    error_type: ErrorType,
    client_message: &'static str,
}

fn rows() -> Vec<Row> {
    use ErrorType as T;
    use ExceptionKind as K;
    let row =
        |exception, original, message, kind, attempts, status, error_type, client_message| Row {
            exception,
            original,
            message,
            kind,
            attempts,
            status,
            error_type,
            client_message,
        };
    vec![
        row(
            "ValidationException",
            None,
            "messages.0: bad",
            K::Validation,
            1,
            400,
            T::InvalidRequest,
            "messages.0: bad",
        ),
        row(
            "ValidationException",
            None,
            "Input is too long for requested model.",
            K::Validation,
            1,
            400,
            T::InvalidRequest,
            "prompt is too long: input is too long for requested model",
        ),
        row(
            "AccessDeniedException",
            None,
            "User: arn:aws:sts::123456789012:assumed-role/x is not authorized",
            K::AccessDenied,
            1,
            403,
            T::Permission,
            "the gateway is not permitted to use model: claude-x",
        ),
        row(
            "ResourceNotFoundException",
            None,
            "nope",
            K::ResourceNotFound,
            1,
            404,
            T::NotFound,
            "model: claude-x not found",
        ),
        row(
            "ThrottlingException",
            None,
            "Too many requests",
            K::Throttling,
            2,
            429,
            T::RateLimit,
            "Too many requests",
        ),
        row(
            "ServiceQuotaExceededException",
            None,
            "Quota",
            K::ServiceQuotaExceeded,
            1,
            429,
            T::RateLimit,
            "Quota",
        ),
        row(
            "ModelNotReadyException",
            None,
            "Not ready",
            K::ModelNotReady,
            2,
            529,
            T::Overloaded,
            "Not ready",
        ),
        row(
            "ServiceUnavailableException",
            None,
            "Unavailable",
            K::ServiceUnavailable,
            2,
            529,
            T::Overloaded,
            "Unavailable",
        ),
        row(
            "ModelTimeoutException",
            None,
            "Timed out",
            K::ModelTimeout,
            1,
            500,
            T::Api,
            "Timed out",
        ),
        row(
            "ModelErrorException",
            Some(400),
            "The model returned the following errors: input length and `max_tokens` exceed context limit: 1 + 2 > 3",
            K::ModelError,
            1,
            400,
            T::InvalidRequest,
            "input length and `max_tokens` exceed context limit: 1 + 2 > 3",
        ),
        row(
            "ModelErrorException",
            Some(429),
            "busy",
            K::ModelError,
            1,
            429,
            T::RateLimit,
            "busy",
        ),
        row(
            "ModelErrorException",
            Some(529),
            "overloaded",
            K::ModelError,
            1,
            529,
            T::Overloaded,
            "overloaded",
        ),
        row(
            "ModelErrorException",
            Some(503),
            "unavailable",
            K::ModelError,
            1,
            529,
            T::Overloaded,
            "unavailable",
        ),
        row(
            "ModelErrorException",
            Some(500),
            "broke",
            K::ModelError,
            1,
            500,
            T::Api,
            "broke",
        ),
        row(
            "InternalServerException",
            None,
            "Internal",
            K::InternalServer,
            1,
            500,
            T::Api,
            "Internal",
        ),
        row(
            "ConflictException",
            None,
            "conflict",
            K::Conflict,
            1,
            500,
            T::Api,
            "unexpected error from the model service; quote the request_id when reporting it",
        ),
        row(
            "BrandNewException",
            None,
            "new",
            K::Unknown("BrandNewException".into()),
            1,
            500,
            T::Api,
            "unexpected error from the model service; quote the request_id when reporting it",
        ),
    ]
}

#[tokio::test]
async fn every_exception_maps_on_every_operation() {
    let (fake, bedrock) = start().await;
    for row in rows() {
        for op in ["converse", "converse_stream", "invoke", "invoke_stream"] {
            fake.reset();
            fake.enqueue(error_scenario(row.exception, row.message, row.original, 5));
            let err = match op {
                "converse" => bedrock
                    .converse(converse_call(simple_converse("hi")))
                    .await
                    .err(),
                "converse_stream" => bedrock
                    .converse_stream(converse_call(simple_converse("hi")))
                    .await
                    .err(),
                "invoke" => bedrock.invoke(invoke_call("hi")).await.err(),
                _ => bedrock.invoke_stream(invoke_call("hi")).await.err(),
            };
            let err = err.unwrap_or_else(|| panic!("{} on {op}: call succeeded", row.exception));
            let what = format!("{} {:?} on {op}", row.exception, row.original);
            assert_eq!(err.kind, row.kind, "{what}");
            assert_eq!(err.message, row.message, "{what}");
            if row.kind == ExceptionKind::ModelError {
                assert_eq!(err.original_status_code, row.original, "{what}");
            }
            assert!(
                err.aws_request_id.is_some(),
                "{what}: x-amzn-requestid kept for logs"
            );
            assert_eq!(fake.requests().len(), row.attempts, "{what}: attempts");
            let api = err.to_api_error("claude-x");
            assert_eq!(api.status.as_u16(), row.status, "{what}");
            assert_eq!(api.error_type, row.error_type, "{what}");
            assert_eq!(api.message, row.client_message, "{what}");
            assert!(!api.message.contains("123456789012"), "{what}");
        }
    }
}

#[tokio::test]
async fn the_sdk_retries_a_throttle_exactly_once() {
    let (fake, bedrock) = start().await;
    fake.enqueue(error_scenario("ThrottlingException", "slow", None, 1));
    bedrock
        .converse(converse_call(simple_converse("hi")))
        .await
        .unwrap();
    let attempts: Vec<Option<u32>> = fake.requests().iter().map(|r| r.attempt()).collect();
    assert_eq!(attempts, vec![Some(1), Some(2)]);

    fake.reset();
    fake.enqueue(error_scenario("ThrottlingException", "slow", None, 3));
    let err = bedrock.invoke(invoke_call("hi")).await.unwrap_err();
    assert_eq!(err.kind, ExceptionKind::Throttling);
    let attempts: Vec<Option<u32>> = fake.requests().iter().map(|r| r.attempt()).collect();
    assert_eq!(attempts, vec![Some(1), Some(2)], "at most one retry");
    assert_eq!(
        err.to_api_error("m").retry_after_secs,
        Some(RATE_LIMIT_RETRY_AFTER_SECS)
    );
}

#[tokio::test]
async fn fake_markers_reach_the_same_mapping() {
    let (_fake, bedrock) = start().await;
    let err = bedrock
        .converse(converse_call(simple_converse(
            "please [[fake:context_overflow]]",
        )))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_api_error("m").message,
        "prompt is too long: input is too long for requested model"
    );
    let err = bedrock
        .invoke(invoke_call("[[fake:prompt_too_long]]"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_api_error("m").message,
        "prompt is too long: 250000 tokens > 200000 maximum"
    );
    let err = bedrock
        .invoke(invoke_call("[[fake:model_error]]"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind.clone(), err.original_status_code),
        (ExceptionKind::ModelError, Some(529))
    );
    assert_eq!(err.to_api_error("m").status.as_u16(), 529);
}

fn stream_error(kind: &str, after: usize, original: Option<u16>) -> Scenario {
    Scenario {
        stream_error: Some(StreamErrorSpec {
            after_events: after,
            kind: kind.into(),
            message: Some(format!("{kind} happened")),
            original_status_code: original,
            original_message: None,
        }),
        ..Scenario::text("a reply long enough to stream several events before failing")
    }
}

#[tokio::test]
async fn mid_stream_exceptions_keep_their_kind() {
    let (fake, bedrock) = start().await;
    let cases = [
        (
            "throttlingException",
            None,
            ExceptionKind::Throttling,
            ErrorType::RateLimit,
        ),
        (
            "serviceUnavailableException",
            None,
            ExceptionKind::ServiceUnavailable,
            ErrorType::Overloaded,
        ),
        (
            "modelStreamErrorException",
            Some(529),
            ExceptionKind::ModelStreamError,
            ErrorType::Overloaded,
        ),
        (
            "modelStreamErrorException",
            Some(429),
            ExceptionKind::ModelStreamError,
            ErrorType::RateLimit,
        ),
        (
            "modelStreamErrorException",
            Some(500),
            ExceptionKind::ModelStreamError,
            ErrorType::Api,
        ),
        (
            "validationException",
            None,
            ExceptionKind::Validation,
            ErrorType::InvalidRequest,
        ),
        (
            "internalServerException",
            None,
            ExceptionKind::InternalServer,
            ErrorType::Api,
        ),
        (
            "modelTimeoutException",
            None,
            ExceptionKind::ModelTimeout,
            ErrorType::Api,
        ),
    ];
    for (exception, original, kind, error_type) in cases {
        for converse in [true, false] {
            // ConverseStream has no modelTimeoutException member; Invoke streams do.
            if converse && exception == "modelTimeoutException" {
                continue;
            }
            fake.enqueue(stream_error(exception, 2, original));
            let stream = if converse {
                bedrock
                    .converse_stream(converse_call(simple_converse("hi")))
                    .await
            } else {
                bedrock
                    .invoke_stream(invoke_call("hi"))
                    .await
                    .map(|s| s.events)
            };
            let items: Vec<Result<serde_json::Value, BedrockError>> =
                stream.unwrap().collect().await;
            let what = format!("{exception} converse={converse}");
            assert_eq!(
                items.len(),
                3,
                "{what}: two events then the error, then the end"
            );
            assert!(items[0].is_ok() && items[1].is_ok(), "{what}");
            let err = items[2].as_ref().unwrap_err();
            assert_eq!(err.kind, kind, "{what}");
            assert_eq!(err.message, format!("{exception} happened"), "{what}");
            if kind == ExceptionKind::ModelStreamError {
                assert_eq!(err.original_status_code, original, "{what}");
            }
            assert_eq!(err.to_stream_api_error().error_type, error_type, "{what}");
        }
    }
}

#[tokio::test]
async fn an_exception_as_the_first_frame_is_the_first_item() {
    let (fake, bedrock) = start().await;
    fake.enqueue(stream_error("throttlingException", 0, None));
    let mut stream = bedrock
        .converse_stream(converse_call(simple_converse("hi")))
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap_err();
    assert_eq!(first.kind, ExceptionKind::Throttling);
    assert_eq!(first.to_api_error("m").status.as_u16(), 429);
    assert!(
        stream.next().await.is_none(),
        "the stream ends after an error"
    );
}

/// A one-connection HTTP server that answers any request with an event-stream body made of
/// `frames`, then keeps the connection open; the returned receiver fires when the client closes it.
async fn raw_stream_server(frames: Vec<Bytes>) -> (String, tokio::sync::oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let header_end = loop {
            let n = socket.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        while buf.len() < header_end + length {
            let n = socket.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
        }
        let mut response = b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.amazon.eventstream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for frame in frames {
            response.extend_from_slice(format!("{:x}\r\n", frame.len()).as_bytes());
            response.extend_from_slice(&frame);
            response.extend_from_slice(b"\r\n");
        }
        socket.write_all(&response).await.unwrap();
        loop {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = closed_tx.send(());
    });
    (url, closed_rx)
}

fn frame(event_type: &str, payload: serde_json::Value) -> Bytes {
    fake_bedrock::eventstream::event_frame(event_type, &payload).unwrap()
}

#[tokio::test]
async fn dropping_the_stream_closes_the_upstream_connection() {
    let (url, closed) =
        raw_stream_server(vec![frame("messageStart", json!({"role": "assistant"}))]).await;
    let bedrock = client_for(&url);
    let mut stream = bedrock
        .converse_stream(converse_call(simple_converse("hi")))
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first, json!({"messageStart": {"role": "assistant"}}));
    let started = Instant::now();
    drop(stream);
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("upstream connection not closed after the stream was dropped")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn dropping_an_invoke_stream_closes_the_upstream_connection() {
    use base64::Engine;
    let event = base64::engine::general_purpose::STANDARD.encode(br#"{"type":"ping"}"#);
    let (url, closed) =
        raw_stream_server(vec![frame("chunk", json!({"bytes": event, "p": "abcdef"}))]).await;
    let bedrock = client_for(&url);
    let mut stream = bedrock
        .invoke_stream(invoke_call("hi"))
        .await
        .unwrap()
        .events;
    assert_eq!(
        stream.next().await.unwrap().unwrap(),
        json!({"type": "ping"})
    );
    drop(stream);
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("upstream connection not closed after the stream was dropped")
        .unwrap();
}

#[tokio::test]
async fn unknown_events_and_bad_frames() {
    let mut corrupted = frame("contentBlockStop", json!({"contentBlockIndex": 0})).to_vec();
    let last = corrupted.len() - 1;
    corrupted[last] ^= 0xff;
    let (url, _closed) = raw_stream_server(vec![
        frame("messageStart", json!({"role": "assistant"})),
        frame("brandNewEvent", json!({"x": 1})),
        Bytes::from(corrupted),
    ])
    .await;
    let bedrock = client_for(&url);
    let items: Vec<_> = bedrock
        .converse_stream(converse_call(simple_converse("hi")))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(items[1].as_ref().unwrap(), &json!({"unknown": {}}));
    let err = items[2].as_ref().unwrap_err();
    assert_eq!(err.kind, ExceptionKind::Decode, "{err:?}");
    assert_eq!(err.to_stream_api_error().error_type, ErrorType::Api);
}

#[tokio::test]
async fn non_json_invoke_chunk_is_a_decode_error() {
    use base64::Engine;
    let bad = base64::engine::general_purpose::STANDARD.encode(b"not json");
    let (url, _closed) = raw_stream_server(vec![frame("chunk", json!({"bytes": bad}))]).await;
    let items: Vec<_> = client_for(&url)
        .invoke_stream(invoke_call("hi"))
        .await
        .unwrap()
        .events
        .collect()
        .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].as_ref().unwrap_err().kind, ExceptionKind::Decode);
}

#[tokio::test]
async fn unreachable_endpoint_is_a_transport_error() {
    // Bind then drop a listener so the port is (almost certainly) closed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = client_for(&url)
        .converse(converse_call(simple_converse("hi")))
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind, ExceptionKind::Transport | ExceptionKind::Timeout),
        "{err:?}"
    );
    let api = err.to_api_error(CLAUDE);
    assert_eq!(
        (api.status.as_u16(), api.message.as_str()),
        (500, "upstream request failed")
    );
}

#[tokio::test]
async fn no_headers_within_the_read_timeout_is_a_timeout() {
    let (fake, _) = start().await;
    let slow = Scenario {
        first_event_delay_ms: 3_000,
        ..Scenario::text("late")
    };
    fake.enqueue(slow.clone());
    fake.enqueue(slow);
    let bedrock = client_with_read_timeout(&fake.url(), Duration::from_millis(300));
    let err = bedrock
        .converse(converse_call(simple_converse("hi")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ExceptionKind::Timeout, "{err:?}");
    assert_eq!(fake.requests().len(), 2, "a timeout is retried once");
    let api = err.to_api_error(CLAUDE);
    assert_eq!(
        (api.status.as_u16(), api.message.as_str()),
        (500, "upstream request failed")
    );
}

#[tokio::test]
async fn connect_builds_a_client_without_network() {
    let mut settings = BedrockSettings::new("us-east-1");
    assert!(connect(&settings).await.is_ok());
    settings.role_arn = Some("arn:aws:iam::123456789012:role/bedrock".into());
    settings.role_region = Some("eu-west-1".into());
    assert!(connect(&settings).await.is_ok());
    settings.max_attempts = 0;
    assert!(connect(&settings).await.is_err());
}
