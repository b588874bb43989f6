//! `/metrics` of ptc-svc against a real Docker engine: sessions created, refused and closed,
//! executions that finish, fail in the code and time out, and tool calls, read back over
//! HTTP/1.1 from the gRPC port and checked against the reference table in
//! docs/observability.md (names and label names) and for the counts they must have produced.
//! Needs `dockerd` and the sandbox image; with CI=true a missing one fails instead of skipping.

use crate::support;

#[path = "../../../tests/observability/catalogue.rs"]
mod catalogue;

use gateway_proto::ptc::v1 as pb;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET /metrics` over plain HTTP/1.1 (what Prometheus sends), the body.
async fn scrape(server: &Server) -> String {
    let mut stream = tokio::net::TcpStream::connect(server.running.local_addr)
        .await
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: ptc\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length"),
        "a whole body, not chunks: {head}"
    );
    body.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_executions_timeouts_and_tool_calls_are_counted() {
    if docker().await.is_none() {
        return;
    }
    let mut server = start(&[
        ("PTC_EXECUTION_TIMEOUT_S", "2"),
        ("PTC_MAX_SESSIONS_PER_KEY", "1"),
    ])
    .await;

    // One tool call, answered; then code that raises (a non-zero exit) in the same session.
    let id = new_container_id();
    create(&mut server.client, &id).await;
    let refused = server
        .client
        .create_session(pb::CreateSessionRequest {
            container_id: new_container_id(),
            key_id: KEY.to_owned(),
            caller_type: "code_execution_20250825".to_owned(),
            code_tool_name: "code_execution".to_owned(),
            limits: None,
        })
        .await;
    assert!(refused.is_err(), "one session per key");
    let text = scrape(&server).await;
    assert_eq!(
        catalogue::value(&text, "ptc_sessions_active", &[]),
        1.0,
        "{text}"
    );

    let code = "w = await get_weather(city=\"Paris\")\nprint(w)";
    let paused = execute(
        &mut server.client,
        &id,
        "srvtoolu_m1",
        code,
        &["get_weather"],
    )
    .await;
    let call = calls(&paused).remove(0);
    let done = deliver(
        &mut server.client,
        &id,
        "srvtoolu_m1",
        &[(&call.id, false, "sunny")],
    )
    .await;
    assert_eq!(finished(&done).stdout, "sunny\n");
    let raised = execute(
        &mut server.client,
        &id,
        "srvtoolu_m2",
        "raise ValueError('x')",
        &[],
    )
    .await;
    assert_ne!(finished(&raised).return_code, 0);
    close(&mut server.client, &id).await;

    // An infinite loop: the execution times out and its session is closed.
    let (_, outcome) = run_once(&mut server, "while True:\n    pass").await;
    assert_eq!(
        failed(&outcome).code,
        pb::FailureCode::ExecutionTimeExceeded as i32
    );

    let text = scrape(&server).await;
    let problems = catalogue::problems("ptc-svc", &text);
    assert!(problems.is_empty(), "{problems:#?}\n{text}");
    for (name, having, wanted) in [
        ("ptc_sessions_created_total", vec![], 2.0),
        (
            "ptc_sessions_rejected_total",
            vec![("reason", "key_limit")],
            1.0,
        ),
        ("ptc_sessions_closed_total", vec![("reason", "closed")], 1.0),
        (
            "ptc_sessions_closed_total",
            vec![("reason", "execution_failed")],
            1.0,
        ),
        ("ptc_sessions_active", vec![], 0.0),
        ("ptc_executions_total", vec![("outcome", "ok")], 1.0),
        ("ptc_executions_total", vec![("outcome", "error")], 1.0),
        ("ptc_executions_total", vec![("outcome", "timeout")], 1.0),
        ("ptc_execution_duration_seconds_count", vec![], 3.0),
        ("ptc_sandbox_start_duration_seconds_count", vec![], 2.0),
        ("ptc_tool_calls_total", vec![], 1.0),
        ("ptc_tool_batches_total", vec![], 1.0),
    ] {
        assert_eq!(
            catalogue::value(&text, name, &having),
            wanted,
            "{name} {having:?}\n{text}"
        );
    }
    server.running.shutdown().await.unwrap();
}
