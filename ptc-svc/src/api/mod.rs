//! The `gateway.ptc.v1.Ptc` gRPC face: the only module that knows tonic server types. Each
//! handler validates, routes (local table, else peers), and calls the session manager.

pub mod convert;
pub mod forward;

use std::sync::Arc;
use std::time::Duration;

use gateway_proto::ptc::v1 as pb;
use gateway_proto::ptc::v1::ptc_server::Ptc;
use tonic::{Request, Response, Status};

use self::convert::{limits_from, now_unix, outcome_to, queued_from, session_to, to_status};
use self::forward::{Peers, is_forwarded};
use crate::runner::runner_version;
use crate::session::manager::NewSession;
use crate::session::{QueuedExecution, RoundLookup, Sessions, StoredRound};

const MAX_TOOLS: usize = 1000;
const MAX_ID_LEN: usize = 256;

pub struct PtcService {
    sessions: Arc<Sessions>,
    peers: Arc<Peers>,
}

impl PtcService {
    pub fn new(sessions: Arc<Sessions>, peers: Arc<Peers>) -> Self {
        Self { sessions, peers }
    }

    /// Forwards to the owning peer when this replica does not hold the id (and the call was not
    /// itself forwarded). None = serve locally.
    async fn route<T, R, F, Fut>(
        &self,
        request: &Request<T>,
        container_id: &str,
        call: F,
    ) -> Option<Result<Response<R>, Status>>
    where
        T: Clone,
        F: Fn(pb::ptc_client::PtcClient<tonic::transport::Channel>, Request<T>) -> Fut,
        Fut: std::future::Future<Output = Result<Response<R>, Status>>,
    {
        if is_forwarded(request) || self.sessions.holds(container_id) {
            return None;
        }
        // The owner logs the forwarded call under the same gateway request id.
        let request_id = request.metadata().get(forward::REQUEST_ID).cloned();
        self.peers
            .forward(container_id, request.get_ref().clone(), request_id, call)
            .await
    }

    async fn replica_health(&self) -> pb::ReplicaHealth {
        let engine = self.sessions.sandbox.health().await;
        let config = &self.sessions.config;
        let draining = self.sessions.is_draining();
        pb::ReplicaHealth {
            id: config.replica_id.clone(),
            docker: if engine.reachable {
                "reachable"
            } else {
                "unreachable"
            }
            .to_owned(),
            docker_version: engine.version,
            image: config.sandbox.image.clone(),
            image_present: engine.image_present,
            runner_version: runner_version(),
            active_sessions: u32::try_from(self.sessions.active_sessions()).unwrap_or(u32::MAX),
            max_sessions: config.max_sessions_per_replica,
            draining,
            usable: engine.reachable && engine.image_present && !draining,
            error: if draining && engine.error.is_empty() {
                "draining".to_owned()
            } else {
                engine.error
            },
        }
    }
}

fn check_ids(container_id: &str, key_id: &str) -> Result<(), Status> {
    if container_id.is_empty() || key_id.is_empty() {
        return Err(Status::invalid_argument(
            "container_id and key_id are required",
        ));
    }
    if container_id.len() > MAX_ID_LEN || key_id.len() > MAX_ID_LEN {
        return Err(Status::invalid_argument("id too long"));
    }
    Ok(())
}

fn check_execution(execution_id: &str, tool_names: &[String]) -> Result<(), Status> {
    if execution_id.is_empty() || execution_id.len() > MAX_ID_LEN {
        return Err(Status::invalid_argument(
            "execution_id must be 1-256 characters",
        ));
    }
    if tool_names.len() > MAX_TOOLS || tool_names.iter().any(|t| t.is_empty() || t.len() > 128) {
        return Err(Status::invalid_argument(
            "tool names must be 1-128 characters, at most 1000",
        ));
    }
    Ok(())
}

#[tonic::async_trait]
impl Ptc for PtcService {
    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::CreateSessionResponse>, Status> {
        let request = request.into_inner();
        check_ids(&request.container_id, &request.key_id)?;
        let (record, created) = self
            .sessions
            .create(NewSession {
                container_id: request.container_id,
                key_id: request.key_id,
                caller_type: request.caller_type,
                code_tool_name: request.code_tool_name,
                limits: limits_from(request.limits),
            })
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CreateSessionResponse {
            session: Some(session_to(&record, &self.sessions.config.replica_id)),
            created,
        }))
    }

    async fn execute(
        &self,
        request: Request<pb::ExecuteRequest>,
    ) -> Result<Response<pb::Outcome>, Status> {
        let id = request.get_ref().container_id.clone();
        if let Some(answer) = self
            .route(&request, &id, |mut c, r| async move { c.execute(r).await })
            .await
        {
            return answer;
        }
        let request = request.into_inner();
        check_ids(&request.container_id, &request.key_id)?;
        check_execution(&request.execution_id, &request.tool_names)?;
        let execution = QueuedExecution {
            execution_id: request.execution_id,
            code: request.code,
            tool_names: request.tool_names,
        };
        let queue = request.queue.into_iter().map(queued_from).collect();
        let outcome = self
            .sessions
            .execute(&request.container_id, &request.key_id, execution, queue)
            .await
            .map_err(to_status)?;
        Ok(Response::new(outcome_to(&outcome)))
    }

    async fn deliver_results(
        &self,
        request: Request<pb::DeliverResultsRequest>,
    ) -> Result<Response<pb::Outcome>, Status> {
        let id = request.get_ref().container_id.clone();
        if let Some(answer) = self
            .route(&request, &id, |mut c, r| async move {
                c.deliver_results(r).await
            })
            .await
        {
            return answer;
        }
        let request = request.into_inner();
        check_ids(&request.container_id, &request.key_id)?;
        let results = request
            .results
            .into_iter()
            .map(|result| (result.id, result.is_error, result.content))
            .collect();
        let outcome = self
            .sessions
            .deliver_as(
                &request.container_id,
                &request.key_id,
                &request.execution_id,
                results,
                &request.round_owner,
                lease_of(request.round_lease_ms),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(outcome_to(&outcome)))
    }

    async fn get_session(
        &self,
        request: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let id = request.get_ref().container_id.clone();
        if let Some(answer) = self
            .route(
                &request,
                &id,
                |mut c, r| async move { c.get_session(r).await },
            )
            .await
        {
            return answer;
        }
        let request = request.into_inner();
        check_ids(&request.container_id, &request.key_id)?;
        let record = self
            .sessions
            .get(&request.container_id, &request.key_id)
            .map_err(to_status)?;
        Ok(Response::new(session_to(
            &record,
            &self.sessions.config.replica_id,
        )))
    }

    async fn store_round(
        &self,
        request: Request<pb::StoreRoundRequest>,
    ) -> Result<Response<pb::StoreRoundResponse>, Status> {
        let id = request.get_ref().container_id.clone();
        if let Some(answer) = self
            .route(
                &request,
                &id,
                |mut c, r| async move { c.store_round(r).await },
            )
            .await
        {
            return answer;
        }
        let request = request.into_inner();
        check_ids(&request.container_id, &request.key_id)?;
        if request.abandoned {
            self.sessions
                .release_round(
                    &request.container_id,
                    &request.key_id,
                    request.tool_use_ids,
                    &request.round_owner,
                )
                .map_err(to_status)?;
            return Ok(Response::new(pb::StoreRoundResponse::default()));
        }
        let round = StoredRound {
            tool_use_ids: request.tool_use_ids,
            response: request.response,
            content_type: request.content_type,
            stored_at_unix: now_unix(),
        };
        let expires_at_unix = self
            .sessions
            .store_round(&request.container_id, &request.key_id, round)
            .map_err(to_status)?;
        Ok(Response::new(pb::StoreRoundResponse { expires_at_unix }))
    }

    async fn renew_round(
        &self,
        request: Request<pb::RenewRoundRequest>,
    ) -> Result<Response<pb::RenewRoundResponse>, Status> {
        let id = request.get_ref().container_id.clone();
        if let Some(answer) = self
            .route(
                &request,
                &id,
                |mut c, r| async move { c.renew_round(r).await },
            )
            .await
        {
            return answer;
        }
        let request = request.into_inner();
        check_ids(&request.container_id, &request.key_id)?;
        let held = match lease_of(request.lease_ms) {
            Some(lease) => self
                .sessions
                .renew_round(
                    &request.container_id,
                    &request.key_id,
                    request.tool_use_ids,
                    &request.round_owner,
                    lease,
                )
                .map_err(to_status)?,
            None => false,
        };
        Ok(Response::new(pb::RenewRoundResponse { held }))
    }

    async fn get_round(
        &self,
        request: Request<pb::GetRoundRequest>,
    ) -> Result<Response<pb::GetRoundResponse>, Status> {
        let id = request.get_ref().container_id.clone();
        if let Some(answer) = self
            .route(
                &request,
                &id,
                |mut c, r| async move { c.get_round(r).await },
            )
            .await
        {
            return answer;
        }
        let request = request.into_inner();
        check_ids(&request.container_id, &request.key_id)?;
        // A round may legitimately run for PTC_ROUND_BUDGET_S (540 s) plus an execution.
        let wait = Duration::from_millis(u64::from(request.wait_ms.min(900_000)));
        let round = self
            .sessions
            .get_round(
                &request.container_id,
                &request.key_id,
                request.tool_use_ids,
                wait,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(match round {
            RoundLookup::Found(round) => pb::GetRoundResponse {
                found: true,
                response: round.response,
                content_type: round.content_type,
                ..Default::default()
            },
            RoundLookup::InProgress => pb::GetRoundResponse {
                in_progress: true,
                ..Default::default()
            },
            RoundLookup::Resumable => pb::GetRoundResponse {
                resumable: true,
                ..Default::default()
            },
            RoundLookup::NotFound => pb::GetRoundResponse::default(),
        }))
    }

    async fn close_session(
        &self,
        request: Request<pb::CloseSessionRequest>,
    ) -> Result<Response<pb::CloseSessionResponse>, Status> {
        let id = request.get_ref().container_id.clone();
        if let Some(answer) = self
            .route(
                &request,
                &id,
                |mut c, r| async move { c.close_session(r).await },
            )
            .await
        {
            return answer;
        }
        let request = request.into_inner();
        check_ids(&request.container_id, &request.key_id)?;
        let closed = self
            .sessions
            .close(&request.container_id, &request.key_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CloseSessionResponse { closed }))
    }

    async fn health(
        &self,
        request: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        let include_peers = request.get_ref().include_peers && !is_forwarded(&request);
        let mut replicas = vec![self.replica_health().await];
        if include_peers {
            let asks = self.peers.resolve().await.into_iter().map(|address| {
                let peers = Arc::clone(&self.peers);
                async move {
                    let answer = match peers.client(address) {
                        Ok(mut client) => {
                            let request = peers.mark(
                                pb::HealthRequest {
                                    include_peers: false,
                                },
                                "",
                            );
                            tokio::time::timeout(Duration::from_secs(1), client.health(request))
                                .await
                        }
                        Err(status) => Ok(Err(status)),
                    };
                    match answer {
                        Ok(Ok(response)) => response.into_inner().replicas,
                        Ok(Err(status)) => vec![unreachable_peer(address, status.message())],
                        Err(_) => vec![unreachable_peer(address, "timed out")],
                    }
                }
            });
            for replica in futures_util::future::join_all(asks)
                .await
                .into_iter()
                .flatten()
            {
                if !replicas.iter().any(|known| known.id == replica.id) {
                    replicas.push(replica);
                }
            }
        }
        let config = &self.sessions.config;
        Ok(Response::new(pb::HealthResponse {
            replicas,
            limits: Some(pb::SandboxLimits {
                network: "none".to_owned(),
                read_only_root: true,
                user: format!("{}:{}", config.sandbox.uid, config.sandbox.gid),
                memory_bytes: config.sandbox.memory_bytes,
                cpus: config.sandbox.cpus,
                pids: config.sandbox.pids,
            }),
            timeouts: Some(pb::Timeouts {
                execution_s: config.execution_timeout.as_secs(),
                session_idle_s: config.session_idle.as_secs(),
                session_max_lifetime_s: config.session_max_lifetime.as_secs(),
            }),
        }))
    }
}

fn unreachable_peer(address: std::net::SocketAddr, why: &str) -> pb::ReplicaHealth {
    pb::ReplicaHealth {
        id: address.to_string(),
        docker: "unknown".to_owned(),
        error: format!("peer unreachable: {why}"),
        ..Default::default()
    }
}

/// A round owner's lease (`round_lease_ms`, `lease_ms`); 0 = none. Capped like GetRound's wait:
/// a lease is meant to be short and renewed.
fn lease_of(ms: u32) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(u64::from(ms.min(900_000))))
}
