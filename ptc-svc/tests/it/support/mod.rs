//! Shared set-up for the tests against a real Docker engine: find the engine and the sandbox
//! image (in CI a missing one fails the test, elsewhere it skips with a notice), start ptc-svc
//! in-process on an ephemeral loopback port, and talk to it through the generated gRPC client.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::collections::HashMap;
use std::sync::Arc;

use bollard::Docker;
use gateway_proto::ptc::v1 as pb;
use gateway_proto::ptc::v1::ptc_client::PtcClient;
use ptc_svc::config::{Config, DEFAULT_IMAGE};
use ptc_svc::sandbox::docker::DockerSandbox;
use ptc_svc::sandbox::fake::FakeSandbox;
use ptc_svc::server::{self, Running};
use tonic::transport::Channel;

pub const KEY: &str = "key-test";

pub fn image() -> String {
    std::env::var("PTC_TEST_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_owned())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// The engine, when it is reachable and has the current sandbox image. In CI a missing engine or
/// image fails the test; elsewhere the test is skipped with a notice.
pub async fn docker() -> Option<Docker> {
    let missing = |what: String| {
        if in_ci() {
            panic!("{what} (CI=true: Docker tests never skip)");
        }
        eprintln!("SKIPPED (not CI): {what}");
        None
    };
    let docker = match Docker::connect_with_defaults() {
        Ok(docker) => docker,
        Err(error) => return missing(format!("no Docker engine: {error}")),
    };
    let docker = match docker.negotiate_version().await {
        Ok(docker) => docker,
        Err(error) => return missing(format!("Docker engine unreachable: {error}")),
    };
    match ptc_svc::image::image_is_current(&docker, &image()).await {
        Ok(true) => Some(docker),
        Ok(false) => missing(format!(
            "sandbox image {} with the current runner is missing: run `cargo run -p ptc-svc --bin ptc-image`",
            image()
        )),
        Err(error) => missing(format!("cannot inspect the sandbox image: {error:#}")),
    }
}

pub fn config(pairs: &[(&str, &str)]) -> Config {
    let mut map: HashMap<String, String> = HashMap::from([
        ("PTC_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        (
            "PTC_REPLICA_ID".to_owned(),
            format!("test-{}", random_suffix(10)),
        ),
        ("PTC_IMAGE".to_owned(), image()),
        ("LOG_LEVEL".to_owned(), "warn".to_owned()),
    ]);
    for (key, value) in pairs {
        map.insert((*key).to_owned(), (*value).to_owned());
    }
    Config::from_lookup(|name| map.get(name).cloned()).unwrap()
}

pub struct Server {
    pub running: Running,
    pub client: PtcClient<Channel>,
    pub replica_id: String,
}

pub async fn start(pairs: &[(&str, &str)]) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_on(listener, config(pairs)).await
}

pub async fn start_on(listener: tokio::net::TcpListener, config: Config) -> Server {
    let sandbox = DockerSandbox::connect(config.sandbox.clone()).await;
    start_with(listener, config, Arc::new(sandbox)).await
}

pub async fn start_with(
    listener: tokio::net::TcpListener,
    config: Config,
    sandbox: Arc<dyn ptc_svc::sandbox::Sandbox>,
) -> Server {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".to_owned()))
        .with_test_writer()
        .try_init();
    let replica_id = config.replica_id.clone();
    let running = server::serve(listener, config, sandbox).await.unwrap();
    let client = PtcClient::connect(format!("http://{}", running.local_addr))
        .await
        .unwrap();
    Server {
        running,
        client,
        replica_id,
    }
}

/// What runs the code of a replica pair.
pub enum Engine<'a> {
    /// The Docker engine from the environment.
    Docker,
    /// The runner as a local python3 through the fake sandbox, working under this folder.
    LocalPython(&'a std::path::Path),
}

/// Two replicas on loopback, each listing the other as its peer.
pub async fn replica_pair(engine: Engine<'_>) -> (Server, Server) {
    let listener_a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener_b = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr_a, addr_b) = (
        listener_a.local_addr().unwrap(),
        listener_b.local_addr().unwrap(),
    );
    let config_a = config(&[("PTC_PEERS", &addr_b.to_string())]);
    let config_b = config(&[("PTC_PEERS", &addr_a.to_string())]);
    match engine {
        Engine::Docker => (
            start_on(listener_a, config_a).await,
            start_on(listener_b, config_b).await,
        ),
        Engine::LocalPython(dir) => {
            let sandbox = || Arc::new(FakeSandbox::local_python(dir.to_path_buf()));
            (
                start_with(listener_a, config_a, sandbox()).await,
                start_with(listener_b, config_b, sandbox()).await,
            )
        }
    }
}

pub fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..len)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn new_container_id() -> String {
    format!("container_{}", random_suffix(32))
}

pub async fn create(client: &mut PtcClient<Channel>, container_id: &str) -> pb::Session {
    client
        .create_session(pb::CreateSessionRequest {
            container_id: container_id.to_owned(),
            key_id: KEY.to_owned(),
            caller_type: "code_execution_20250825".to_owned(),
            code_tool_name: "code_execution".to_owned(),
            limits: None,
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap()
}

/// A session as `KEY` sees it through this replica.
pub async fn get_session(
    client: &mut PtcClient<Channel>,
    container_id: &str,
) -> Result<pb::Session, tonic::Status> {
    client
        .get_session(pb::GetSessionRequest {
            container_id: container_id.to_owned(),
            key_id: KEY.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn close(
    client: &mut PtcClient<Channel>,
    container_id: &str,
) -> pb::CloseSessionResponse {
    client
        .close_session(pb::CloseSessionRequest {
            container_id: container_id.to_owned(),
            key_id: KEY.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
}

pub async fn health(client: &mut PtcClient<Channel>, include_peers: bool) -> pb::HealthResponse {
    client
        .health(pb::HealthRequest { include_peers })
        .await
        .unwrap()
        .into_inner()
}

pub async fn execute(
    client: &mut PtcClient<Channel>,
    container_id: &str,
    execution_id: &str,
    code: &str,
    tools: &[&str],
) -> pb::Outcome {
    client
        .execute(pb::ExecuteRequest {
            container_id: container_id.to_owned(),
            key_id: KEY.to_owned(),
            execution_id: execution_id.to_owned(),
            code: code.to_owned(),
            tool_names: tools.iter().map(|t| (*t).to_owned()).collect(),
            queue: vec![],
        })
        .await
        .unwrap()
        .into_inner()
}

pub async fn deliver(
    client: &mut PtcClient<Channel>,
    container_id: &str,
    execution_id: &str,
    results: &[(&str, bool, &str)],
) -> pb::Outcome {
    client
        .deliver_results(pb::DeliverResultsRequest {
            container_id: container_id.to_owned(),
            key_id: KEY.to_owned(),
            execution_id: execution_id.to_owned(),
            results: results
                .iter()
                .map(|(id, is_error, content)| pb::ToolResult {
                    id: (*id).to_owned(),
                    is_error: *is_error,
                    content: (*content).to_owned(),
                })
                .collect(),
            round_owner: String::new(),
            round_lease_ms: 0,
        })
        .await
        .unwrap()
        .into_inner()
}

pub fn calls(outcome: &pb::Outcome) -> Vec<pb::ToolCall> {
    match &outcome.result {
        Some(pb::outcome::Result::Paused(paused)) => paused.calls.clone(),
        other => panic!("expected a pause, got {other:?}"),
    }
}

pub fn finished(outcome: &pb::Outcome) -> pb::Finished {
    match &outcome.result {
        Some(pb::outcome::Result::Finished(finished)) => finished.clone(),
        other => panic!("expected a finish, got {other:?}"),
    }
}

pub fn failed(outcome: &pb::Outcome) -> pb::Failed {
    match &outcome.result {
        Some(pb::outcome::Result::Failed(failed)) => failed.clone(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Runs `code` (no tools) in a fresh session and returns its outcome.
pub async fn run_once(server: &mut Server, code: &str) -> (String, pb::Outcome) {
    let id = new_container_id();
    create(&mut server.client, &id).await;
    let outcome = execute(&mut server.client, &id, "srvtoolu_once", code, &[]).await;
    (id, outcome)
}

/// The engine's view of a session's container (None once removed).
pub async fn engine_container(
    docker: &Docker,
    container_id: &str,
) -> Option<bollard::models::ContainerInspectResponse> {
    docker
        .inspect_container(&format!("ptc-{container_id}"), None)
        .await
        .ok()
}
