//! A stand-in for translator-svc, for tests of the edge alone: the gateway's `Auth/Check`
//! answering from a fixed key table (and counting calls), and an echo of every other request as
//! it arrived (method, path, headers, body size). One h2c port, like the real service.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use gateway_proto::auth::v1::auth_server::{Auth, AuthServer};
use gateway_proto::auth::v1::{CheckRequest, CheckResponse};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running stub; stops when dropped.
pub struct StubTranslator {
    addr: SocketAddr,
    auth_calls: Arc<AtomicUsize>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl StubTranslator {
    /// Serves on 127.0.0.1:0. `keys` maps a presented key to the answer; any other key gets
    /// 401 `authentication_error` "invalid API key".
    pub async fn start(keys: HashMap<String, CheckResponse>) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the stub translator")?;
        let addr = listener.local_addr()?;
        let auth_calls = Arc::new(AtomicUsize::new(0));
        let auth = StubAuth {
            keys,
            calls: Arc::clone(&auth_calls),
        };
        let router = tonic::service::Routes::new(AuthServer::new(auth))
            .into_axum_router()
            .fallback(echo)
            .layer(DefaultBodyLimit::disable());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            auth_calls,
            shutdown: Some(shutdown),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many `Auth/Check` calls arrived so far.
    pub fn auth_calls(&self) -> usize {
        self.auth_calls.load(Ordering::SeqCst)
    }
}

impl Drop for StubTranslator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The stub's `Auth/Check` alone, to merge into a test's own axum router (one h2c port, like
/// translator-svc), with the counter of calls. Keys as in [`StubTranslator::start`].
pub fn auth_router(keys: HashMap<String, CheckResponse>) -> (axum::Router, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let auth = StubAuth {
        keys,
        calls: Arc::clone(&calls),
    };
    let router = tonic::service::Routes::new(AuthServer::new(auth)).into_axum_router();
    (router, calls)
}

/// An allowed key's answer.
pub fn grant(
    key_id: &str,
    tier: &str,
    requests_per_minute: u32,
    tokens_per_minute: u32,
) -> CheckResponse {
    CheckResponse {
        allowed: true,
        key_id: key_id.to_string(),
        tier: tier.to_string(),
        requests_per_minute,
        tokens_per_minute,
        ..CheckResponse::default()
    }
}

/// A refused key's answer.
pub fn denial(status: u32, error_type: &str, message: &str) -> CheckResponse {
    CheckResponse {
        allowed: false,
        status,
        error_type: error_type.to_string(),
        message: message.to_string(),
        ..CheckResponse::default()
    }
}

struct StubAuth {
    keys: HashMap<String, CheckResponse>,
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl Auth for StubAuth {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let key = request.into_inner().api_key;
        let answer = self
            .keys
            .get(&key)
            .cloned()
            .unwrap_or_else(|| denial(401, "authentication_error", "invalid API key"));
        Ok(tonic::Response::new(answer))
    }
}

/// Describes the request as received: `{"method", "path", "headers": {name: value}, "body_bytes"}`.
async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let mut seen = Map::new();
    for (name, value) in &headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match seen.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                seen.insert(name.as_str().to_string(), Value::String(value));
            }
        }
    }
    let request_id = headers
        .get("x-gw-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let described = json!({
        "method": method.as_str(),
        "path": uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "headers": seen,
        "body_bytes": body.len(),
    });
    (
        [
            ("content-type", "application/json".to_string()),
            ("request-id", request_id),
        ],
        described.to_string(),
    )
}
