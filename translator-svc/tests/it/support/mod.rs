//! What the test modules share: translator-svc started in-process against the fake Bedrock
//! (`Service`), or its binary as a child process whose stderr lines are kept (`Binary`), the few
//! ways they talk to it, and ptc-svc for the PTC tests (`PtcSvc`). Each test still says which
//! settings it runs with.

pub mod ptc;
mod ptc_svc;

pub use ptc_svc::PtcSvc;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use fake_bedrock::FakeBedrock;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use translator_svc::app;
use translator_svc::bedrock::{self, BedrockSettings};
use translator_svc::config::Config;

/// Envoy's internal secret, as the services under test are configured with it.
pub const SECRET: &str = "test-internal-secret-0123456789";
/// The admin API's master key.
pub const MASTER: &str = "sk-gw-service-test-master-key";

/// translator-svc in-process, talking to its own fake Bedrock.
pub struct Service {
    pub fake: FakeBedrock,
    pub running: app::Running,
    pub http: reqwest::Client,
}

impl Service {
    /// The embedded key store in memory, text logs, a loopback port of its own, and `env` on
    /// top (a name in `env` replaces the default).
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let fake = FakeBedrock::start().await.unwrap();
        let mut source: HashMap<&str, &str> = HashMap::from([
            ("GATEWAY_INTERNAL_SECRET", SECRET),
            ("TRANSLATOR_LISTEN", "127.0.0.1:0"),
            ("LOG_FORMAT", "text"),
            ("KEY_STORE", "memory"),
            ("MASTER_API_KEY", MASTER),
        ]);
        source.extend(env.iter().copied());
        let config = Config::from_source(&source).unwrap();
        // As `app::bedrock_client` builds it, pointed at the fake with fixed credentials.
        let mut settings = BedrockSettings::new("us-east-1".to_string());
        settings.endpoint_url = Some(fake.url());
        settings.read_timeout = config.upstream_idle_timeout;
        let client =
            bedrock::connect_with_credentials(&settings, Credentials::for_tests()).unwrap();
        let running = app::spawn(config, client).await.unwrap();
        Self {
            fake,
            running,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.url())
    }

    /// A request as Envoy forwards it: with the internal secret.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("x-gw-internal-secret", SECRET)
    }

    /// A JSON POST as Envoy forwards it.
    pub fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path).json(body)
    }

    /// Status, headers and body of one `/v1/messages`.
    pub async fn messages(&self, body: &Value) -> (u16, reqwest::header::HeaderMap, String) {
        let response = self.post("/v1/messages", body).send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }

    /// An admin API request with the master key (the admin API is not behind the secret).
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("x-api-key", MASTER)
    }

    /// The JSON body of an admin API GET.
    pub async fn admin_get(&self, path: &str) -> Value {
        self.admin(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Creates a key through the admin API: its id and secret.
    pub async fn create_key(&self, body: &Value) -> (String, String) {
        let created: Value = self
            .admin(reqwest::Method::POST, "/admin/v1/keys")
            .json(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            created["key"]["id"].as_str().unwrap().to_string(),
            created["secret"].as_str().unwrap().to_string(),
        )
    }

    /// The usage record of one request sent without a key id (the `anonymous` key), from the
    /// admin API once it is there (records are written asynchronously).
    pub async fn usage_record(&self, request_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let page = self.admin_get("/admin/v1/keys/anonymous/requests").await;
            let found = page["data"]
                .as_array()
                .and_then(|rows| rows.iter().find(|r| r["request_id"] == request_id));
            if let Some(row) = found {
                return row.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no usage record for {request_id}: {page}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A streaming `/v1/messages` over HTTP/2, the way Envoy reaches the service, read to its
    /// end: the SSE text and the trailers (where the tokens to charge travel).
    pub async fn stream_with_trailers(
        &self,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (String, http::HeaderMap) {
        use http_body_util::{BodyExt, Full};
        let tcp = tokio::net::TcpStream::connect(self.running.addr)
            .await
            .unwrap();
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let mut request = http::Request::post(self.url("/v1/messages"))
            .header("x-gw-internal-secret", SECRET)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(bytes::Bytes::from(body.to_string())))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().expect("trailers");
        let text = String::from_utf8(collected.to_bytes().to_vec()).unwrap();
        (text, trailers)
    }
}

/// `(event, data)` pairs of an SSE body.
pub fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|chunk| !chunk.trim().is_empty())
        .map(|chunk| {
            let mut event = String::new();
            let mut data = Value::Null;
            for line in chunk.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap();
                }
            }
            (event, data)
        })
        .collect()
}

/// The translator-svc binary as a child process (killed on drop), with JSON logs whose stderr
/// lines are kept as they come.
pub struct Binary {
    child: Child,
    pub url: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Binary {
    /// Against `fake`, with the embedded key store in memory, static AWS credentials and `env`
    /// on top (a name in `env` replaces the default). Returns once the listening line names the
    /// address.
    pub async fn spawn(fake: &FakeBedrock, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_translator-svc"));
        command
            .env_clear()
            .env("GATEWAY_INTERNAL_SECRET", SECRET)
            .env("TRANSLATOR_LISTEN", "127.0.0.1:0")
            .env("KEY_STORE", "memory")
            .env("MASTER_API_KEY", MASTER)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "AKIATRANSLATORTEST01")
            .env("AWS_SECRET_ACCESS_KEY", "translator-test-secret")
            .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.url())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let sink = lines.clone();
        // Read to the end, so the service never blocks on a full pipe.
        tokio::spawn(async move {
            let mut addr_tx = Some(addr_tx);
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(parsed) = serde_json::from_str::<Value>(&line)
                    && let Some(addr) = parsed["addr"].as_str()
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(addr.to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(30), addr_rx)
            .await
            .expect("translator-svc did not report its address")
            .expect("translator-svc exited before listening");
        Self {
            child,
            url: format!("http://{addr}"),
            lines,
        }
    }

    /// The stderr lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// SIGTERM, then the exit, which must be a clean one; returns every stderr line.
    pub async fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("translator-svc did not stop on SIGTERM")
            .unwrap();
        assert!(status.success(), "{status}");
        // Let the reader take the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.lines()
    }
}
