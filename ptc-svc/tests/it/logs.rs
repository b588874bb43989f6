//! The built binary's logs: flat JSON lines, and the lines of a call carry the gateway request id
//! translator-svc sends as `x-request-id` metadata. Needs the Docker engine and the sandbox image
//! (a session is created); skips outside CI without them, like the other Docker tests.

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use gateway_proto::ptc::v1 as pb;
use gateway_proto::ptc::v1::ptc_client::PtcClient;
use serde_json::Value;
use support::{KEY, docker, image, new_container_id, random_suffix};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStderr;

const REQUEST_ID: &str = "req_PtcLogsTest000000000001";

async fn next_json(lines: &mut Lines<BufReader<ChildStderr>>) -> Value {
    let line = lines.next_line().await.unwrap().expect("a log line");
    let json: Value = serde_json::from_str(&line).expect("a JSON line");
    assert!(
        json.as_object().unwrap().values().all(|v| !v.is_object()),
        "not flat: {line}"
    );
    json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lines_of_a_call_carry_the_callers_request_id() {
    if docker().await.is_none() {
        return;
    }
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ptc-svc"));
    command
        .env_clear()
        .env("PTC_LISTEN", "127.0.0.1:0")
        .env("PTC_REPLICA_ID", format!("logs-{}", random_suffix(10)))
        .env("PTC_IMAGE", image())
        .env("PTC_DRAIN_S", "2")
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        command.env("DOCKER_HOST", host);
    }
    let mut child = command.spawn().expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(addr) = next_json(&mut lines).await["local_addr"].as_str() {
                return addr.to_owned();
            }
        }
    })
    .await
    .expect("ptc-svc did not report its address");
    let mut client = PtcClient::connect(format!("http://{addr}")).await.unwrap();
    let container_id = new_container_id();
    let mut request = tonic::Request::new(pb::CreateSessionRequest {
        container_id: container_id.clone(),
        key_id: KEY.to_owned(),
        caller_type: "code_execution_20250825".to_owned(),
        code_tool_name: "code_execution".to_owned(),
        limits: None,
    });
    request
        .metadata_mut()
        .insert("x-request-id", REQUEST_ID.parse().unwrap());
    client.create_session(request).await.unwrap();

    let created = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = next_json(&mut lines).await;
            if line["message"] == "session created" {
                return line;
            }
        }
    })
    .await
    .expect("no session created line");
    assert_eq!(created["request_id"], REQUEST_ID, "{created}");
    assert_eq!(created["span"], "grpc", "{created}");
    assert_eq!(created["container"], container_id.as_str(), "{created}");
    assert!(created["timestamp"].is_string() && created["level"] == "INFO");

    // Stopping drains and removes the container.
    let pid = child.id().unwrap().to_string();
    tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("ptc-svc did not stop")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_bad_log_level_exits_2_naming_it() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ptc-svc"))
        .env_clear()
        .env("LOG_LEVEL", "loud")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LOG_LEVEL"), "{stderr}");
}
