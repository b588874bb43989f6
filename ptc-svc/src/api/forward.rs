//! Peer forwarding (ptc.md section 9): a replica that does not hold a container id asks its peers
//! before answering NOT_FOUND, so a call that lands on the wrong replica (round-robin, or a
//! consistent-hash ring that changed) still reaches the owner. Peers answer forwarded calls only
//! from their own table (`x-ptc-forwarded`), so a call is forwarded at most once.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use gateway_proto::ptc::v1::ptc_client::PtcClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

pub const FORWARDED: &str = "x-ptc-forwarded";
pub const CONTAINER_HEADER: &str = "x-gw-container-id";
/// The gateway request id a call belongs to (set by translator-svc, logged on every line).
pub const REQUEST_ID: &str = "x-request-id";

pub struct Peers {
    replica_id: String,
    addresses: Vec<String>,
    channels: std::sync::Mutex<HashMap<SocketAddr, Channel>>,
    /// Last known owner per container id, tried first.
    owners: std::sync::Mutex<HashMap<String, SocketAddr>>,
}

impl Peers {
    pub fn new(replica_id: String, addresses: Vec<String>) -> Self {
        Self {
            replica_id,
            addresses,
            channels: std::sync::Mutex::default(),
            owners: std::sync::Mutex::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// Every peer address; a DNS name (a headless service) may stand for several replicas.
    pub async fn resolve(&self) -> Vec<SocketAddr> {
        let mut all = Vec::new();
        for address in &self.addresses {
            match tokio::net::lookup_host(address.as_str()).await {
                Ok(found) => all.extend(found),
                Err(error) => tracing::warn!(peer = %address, %error, "cannot resolve peer"),
            }
        }
        all.sort();
        all.dedup();
        all
    }

    pub fn client(&self, address: SocketAddr) -> Result<PtcClient<Channel>, Status> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(channel) = channels.get(&address) {
            return Ok(PtcClient::new(channel.clone()));
        }
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| Status::internal(e.to_string()))?
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy();
        channels.insert(address, channel.clone());
        Ok(PtcClient::new(channel))
    }

    /// Marks a request as forwarded by this replica (and names the container for routing).
    pub fn mark<T>(&self, message: T, container_id: &str) -> Request<T> {
        let mut request = Request::new(message);
        if let Ok(value) = self.replica_id.parse() {
            request.metadata_mut().insert(FORWARDED, value);
        }
        if let Ok(value) = container_id.parse() {
            request.metadata_mut().insert(CONTAINER_HEADER, value);
        }
        request
    }

    /// Sends `message` to the peers (the last known owner first) until one answers other than
    /// NOT_FOUND. None when no peer holds the id.
    pub async fn forward<T, R, F, Fut>(
        &self,
        container_id: &str,
        message: T,
        request_id: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
        call: F,
    ) -> Option<Result<Response<R>, Status>>
    where
        T: Clone,
        F: Fn(PtcClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        if self.is_empty() {
            return None;
        }
        let known = self
            .owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(container_id)
            .copied();
        let mut candidates: Vec<SocketAddr> = known.into_iter().collect();
        candidates.extend(
            self.resolve()
                .await
                .into_iter()
                .filter(|a| Some(*a) != known),
        );
        for address in candidates {
            let Ok(client) = self.client(address) else {
                continue;
            };
            let mut request = self.mark(message.clone(), container_id);
            if let Some(id) = &request_id {
                request.metadata_mut().insert(REQUEST_ID, id.clone());
            }
            match call(client, request).await {
                Err(status) if status.code() == Code::NotFound => {
                    // Also this replica itself, when a headless Service's answer includes it.
                    tracing::debug!(
                        container = %container_id,
                        peer = %address,
                        "peer does not hold it"
                    );
                    continue;
                }
                Err(status) if status.code() == Code::Unavailable && is_transport(&status) => {
                    tracing::warn!(peer = %address, %status, "peer unreachable");
                    continue;
                }
                answer => {
                    // The evidence that a membership change moved this id (ptc spec 9).
                    tracing::info!(
                        container = %container_id,
                        peer = %address,
                        code = ?answer.as_ref().map_or_else(Status::code, |_| Code::Ok),
                        "call forwarded to the owning peer"
                    );
                    self.remember(container_id, address);
                    return Some(answer);
                }
            }
        }
        None
    }

    fn remember(&self, container_id: &str, address: SocketAddr) {
        let mut owners = self
            .owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A small cache: ids are only looked up while their sessions live.
        if owners.len() >= 4096 {
            owners.clear();
        }
        owners.insert(container_id.to_owned(), address);
    }
}

/// A connection failure (as opposed to a peer that answered UNAVAILABLE itself).
fn is_transport(status: &Status) -> bool {
    status.metadata().get("retry-after").is_none()
}

pub fn is_forwarded<T>(request: &Request<T>) -> bool {
    request.metadata().contains_key(FORWARDED)
}
