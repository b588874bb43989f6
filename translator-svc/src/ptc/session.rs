//! The session side of a round (ptc.md section 8): container ids, the lazily created session
//! (with this service's limits), and a container named by a new request.

use gateway_proto::ptc::v1::{CreateSessionRequest, GetSessionRequest, SessionState};
use rand::Rng;

use super::round::Round;
use super::sandbox::to_api_error;
use crate::error::ApiError;

/// The session a round uses: id and refreshed expiry.
#[derive(Debug, Clone)]
pub struct Live {
    pub id: String,
    pub expires_at: String,
}

/// `container_` + 32 chars of [a-z2-7] (160 random bits).
pub fn container_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::rng();
    let tail: String = (0..32)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("container_{tail}")
}

impl Round<'_> {
    /// The session code runs in: the named live one, or a new one (created lazily).
    pub(super) async fn ensure_session(&mut self) -> Result<String, ApiError> {
        if let Some(live) = &self.session {
            return Ok(live.id.clone());
        }
        if let Some(named) = self.named.take() {
            self.session = Some(named.clone());
            return Ok(named.id);
        }
        let id = container_id();
        let created = self
            .ptc
            .sandbox
            .create_session(CreateSessionRequest {
                container_id: id.clone(),
                key_id: self.key_id.clone(),
                caller_type: self.tools.caller_type.clone(),
                code_tool_name: self.tools.client_code_name.clone(),
                limits: Some(self.ptc.limits()),
            })
            .await
            .map_err(|s| to_api_error(&s))?;
        let expires_at = created.session.map(|s| s.expires_at).unwrap_or_default();
        self.session = Some(Live {
            id: id.clone(),
            expires_at,
        });
        Ok(id)
    }

    /// A container named by a new request: live and idle is reused; pending calls are a 400;
    /// unknown, expired or foreign is ignored (a new session is created when code runs).
    pub async fn check_named(&mut self, container: &str) -> Result<(), ApiError> {
        let request = GetSessionRequest {
            container_id: container.to_string(),
            key_id: self.key_id.clone(),
        };
        match self.ptc.sandbox.get_session(request).await {
            Ok(session) => {
                let pending: Vec<String> = session
                    .execution
                    .iter()
                    .flat_map(|e| e.pending.iter().map(|c| c.id.clone()))
                    .collect();
                if session.state == SessionState::Paused as i32 && !pending.is_empty() {
                    return Err(ApiError::invalid_request(format!(
                        "container {container} has pending tool calls: {}",
                        pending.join(", ")
                    )));
                }
                self.named = Some(Live {
                    id: container.to_string(),
                    expires_at: session.expires_at,
                });
                Ok(())
            }
            Err(status) if status.code() == tonic::Code::NotFound => Ok(()),
            Err(status) => Err(to_api_error(&status)),
        }
    }
}
