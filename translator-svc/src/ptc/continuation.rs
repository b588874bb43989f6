//! A continuation round (ptc.md 5.3, 5.6): detect and validate the answers to a pause, deliver
//! them, replay a stored round for a retry (or finish one its first request left), then finish
//! the turn (queued code, model calls).

use std::collections::{HashMap, HashSet};

use gateway_proto::ptc::v1::{
    DeliverResultsRequest, GetRoundRequest, GetSessionRequest, SessionState, StoreRoundRequest,
    ToolResult,
};
use serde_json::Value;

use super::claim::{Claim, ROUND_LEASE_MS};
use super::round::{End, Live, Round, Step};
use super::sandbox::to_api_error;
use super::transcript::{
    SANDBOX_ID_PREFIX, fill_code_results, is_sandbox_call, render_result_content, to_model_id,
    to_server_id, unanswered_code_uses,
};
use crate::error::ApiError;

pub enum Resumed {
    /// A stored response of an identical earlier continuation.
    Replay(Value),
    Done(Value),
}

const JSON: &str = "application/json";
const MAX_ROUND_WAIT: std::time::Duration = std::time::Duration::from_secs(590);

fn str_of<'a>(b: &'a Value, key: &str) -> &'a str {
    b.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The id of the message answering the continuation round that delivers `ids` to `container`:
/// `msg_` + 24 base62 characters of a SHA-256 of the round's identity (key, container, answered
/// ids in any order). Every request serving the round agrees on it without asking anyone: a
/// duplicate that raced the first past validation commits its stream (`message_start`) before it
/// learns the round is another's, and then replays that round's stored response under the same
/// id. Still new per round: no other round answers the same tool call ids.
pub fn round_message_id(key_id: &str, container: &str, ids: &[String]) -> String {
    use sha2::{Digest, Sha256};
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    let mut digest = Sha256::new();
    for part in [key_id, container].into_iter().chain(ids) {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    let tail: String = digest
        .finalize()
        .iter()
        .take(24)
        .map(|b| char::from(BASE62[usize::from(*b) % BASE62.len()]))
        .collect();
    format!("msg_{tail}")
}

/// The sandbox-called ids the last (user) message answers, when this round is a continuation.
pub fn answered_ids(messages: &[Value]) -> Option<Vec<String>> {
    let last = messages.last()?;
    if str_of(last, "role") != "user" {
        return None;
    }
    let sandbox_ids: HashSet<&str> = messages
        .iter()
        .filter_map(|m| m.get("content")?.as_array())
        .flatten()
        .filter(|b| is_sandbox_call(b))
        .map(|b| str_of(b, "id"))
        .collect();
    let ids: Vec<String> = last
        .get("content")?
        .as_array()?
        .iter()
        .filter(|b| str_of(b, "type") == "tool_result")
        .map(|b| str_of(b, "tool_use_id"))
        .filter(|id| id.starts_with(SANDBOX_ID_PREFIX) || sandbox_ids.contains(id))
        .map(str::to_string)
        .collect();
    (!ids.is_empty()).then_some(ids)
}

fn results_of(last: &Value) -> Vec<&Value> {
    last.get("content")
        .and_then(Value::as_array)
        .map(|b| b.iter().collect())
        .unwrap_or_default()
}

/// What ptc-svc holds for a set of answered ids (ptc.md 5.6).
enum Stored {
    Found(Value),
    /// Another request still serves the round these ids opened.
    InProgress,
    /// Nobody serves it any more: a repeated delivery returns its outcome and hands it over.
    Resumable,
    None,
}

/// The stored round answering `ids`, waiting while another request still serves it.
async fn stored(round: &Round<'_>, container: &str, ids: &[String]) -> Stored {
    // As long as a round may run, but under the 600 s stream idle timeout of the ptc-svc router.
    let wait = (round.ptc.config.round_budget + round.ptc.code_deadline()).min(MAX_ROUND_WAIT);
    let request = GetRoundRequest {
        container_id: container.to_string(),
        key_id: round.key_id.clone(),
        tool_use_ids: ids.to_vec(),
        wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
    };
    let Ok(found) = round.ptc.sandbox.get_round(request).await else {
        return Stored::None;
    };
    if found.found {
        return serde_json::from_slice(&found.response).map_or(Stored::None, Stored::Found);
    }
    if found.in_progress {
        Stored::InProgress
    } else if found.resumable {
        Stored::Resumable
    } else {
        Stored::None
    }
}

fn busy(container: &str) -> ApiError {
    ApiError::invalid_request(format!("container {container} is busy"))
}

pub async fn resume(
    round: &mut Round<'_>,
    client_messages: &[Value],
    messages: Vec<Value>,
    answered: Vec<String>,
    container: Option<String>,
) -> Result<Resumed, ApiError> {
    let Some(container) = container else {
        return Err(ApiError::invalid_request(
            "container is required when there are pending tool uses generated by code execution",
        ));
    };
    let last = client_messages.last().unwrap_or(&Value::Null);
    let blocks = results_of(last);
    if blocks.iter().any(|b| str_of(b, "type") != "tool_result") {
        return Err(ApiError::invalid_request(
            "answers to code-execution tool calls may contain only tool_result blocks",
        ));
    }
    let session = match round
        .ptc
        .sandbox
        .get_session(GetSessionRequest {
            container_id: container.clone(),
            key_id: round.key_id.clone(),
        })
        .await
    {
        Ok(session) => session,
        Err(status) => {
            // A session closed by its execution's failure keeps its last round for replay.
            if status.code() == tonic::Code::NotFound
                && let Stored::Found(message) = stored(round, &container, &answered).await
            {
                return Ok(Resumed::Replay(message));
            }
            return Err(to_api_error(&status));
        }
    };
    let execution = session.execution.clone().unwrap_or_default();
    let pending: Vec<String> = execution.pending.iter().map(|c| c.id.clone()).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &answered {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let paused = session.state == SessionState::Paused as i32;
    let same_set = paused
        && pending.len() == counts.len()
        && pending.iter().all(|p| counts.get(p.as_str()) == Some(&1))
        && answered.len() == pending.len();
    if !same_set {
        // A retry of a delivered round: its stored response, the wait for the request still
        // serving it, or taking over a round nobody serves any more.
        match stored(round, &container, &answered).await {
            Stored::Found(message) => return Ok(Resumed::Replay(message)),
            Stored::InProgress => return Err(busy(&container)),
            Stored::Resumable => {}
            Stored::None => return Err(mismatch(&container, paused, &pending, &counts, &answered)),
        }
    }
    let results: Vec<ToolResult> = blocks
        .iter()
        .filter(|b| answered.iter().any(|id| id == str_of(b, "tool_use_id")))
        .map(|b| ToolResult {
            id: str_of(b, "tool_use_id").to_string(),
            is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
            content: render_result_content(b.get("content")),
        })
        .collect();
    round.session = Some(Live {
        id: container.clone(),
        expires_at: session.expires_at.clone(),
    });
    // Validated: a streaming continuation commits now, so pings can flow while the code runs.
    round.commit(0);
    let execution_id = execution.execution_id.clone();
    let (mut outcome, mut claim) =
        deliver(round, &container, &execution_id, &results, &answered).await?;
    if outcome.replayed && !outcome.round_claimed {
        // Another request delivered these results first (it passed validation alongside this
        // one) and serves the round: its response is ours, under the same id (the id names the
        // round). Should it fail instead, it releases the round, which this request then takes
        // over, as a retry arriving while it ran would.
        claim.disarm();
        match stored(round, &container, &answered).await {
            Stored::Found(message) => return Ok(Resumed::Replay(message)),
            Stored::Resumable => {
                (outcome, claim) =
                    deliver(round, &container, &execution_id, &results, &answered).await?;
                if !outcome.round_claimed {
                    claim.disarm();
                    return Err(busy(&container));
                }
            }
            _ => return Err(busy(&container)),
        }
    }
    if outcome.replayed {
        tracing::info!(request_id = %round.call.request_id, container = %container, execution_id, "finishing a PTC round its first request left unfinished");
    }
    round.last_execution = Some(execution_id.clone());
    let end = finish_turn(round, messages, outcome, &execution_id).await?;
    let message = round.response(&end);
    if store(round, &container, &answered, &message).await {
        claim.disarm();
    }
    Ok(Resumed::Done(message))
}

/// Delivers the results on behalf of a new claim on the round they open: the outcome and the
/// claim (armed unless the delivery was refused).
async fn deliver(
    round: &Round<'_>,
    container: &str,
    execution_id: &str,
    results: &[ToolResult],
    answered: &[String],
) -> Result<(gateway_proto::ptc::v1::Outcome, Claim), ApiError> {
    // Armed before the call: a delivery whose answer is lost (transport failure) may have opened
    // the round, which must not stay claimed by nobody.
    let claim = Claim::new(round, container, answered);
    let delivered = round
        .ptc
        .sandbox
        .deliver_results(
            DeliverResultsRequest {
                container_id: container.to_string(),
                key_id: round.key_id.clone(),
                execution_id: execution_id.to_string(),
                results: results.to_vec(),
                round_owner: claim.owner(),
                round_lease_ms: ROUND_LEASE_MS,
            },
            round.ptc.code_deadline(),
        )
        .await;
    match delivered {
        Ok(outcome) => Ok((outcome, claim)),
        Err(status) => {
            if !matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Cancelled
                    | tonic::Code::Unknown
            ) {
                // Refused (mismatch, busy, gone): nothing was opened for this request.
                claim.disarm();
            }
            Err(to_api_error(&status))
        }
    }
}

/// The 400 for answers that match neither the pending batch nor an earlier round.
fn mismatch(
    container: &str,
    paused: bool,
    pending: &[String],
    counts: &HashMap<&str, usize>,
    answered: &[String],
) -> ApiError {
    if !paused {
        return ApiError::invalid_request(format!(
            "container {container} has no pending tool calls answering {}",
            answered.join(", ")
        ));
    }
    let missing: Vec<&str> = pending
        .iter()
        .filter(|p| !counts.contains_key(p.as_str()))
        .map(String::as_str)
        .collect();
    let duplicated: Vec<&str> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    let unknown: Vec<&str> = counts
        .keys()
        .filter(|id| !pending.iter().any(|p| p == *id))
        .copied()
        .collect();
    ApiError::invalid_request(format!(
        "tool results do not match the pending tool calls of container {container}: missing [{}], duplicated [{}], unknown [{}]",
        missing.join(", "),
        duplicated.join(", "),
        unknown.join(", ")
    ))
}

/// After delivery: a new pause is shape C; a finished execution runs the turn's queued code, then
/// answers direct tools (D') or calls the model again.
async fn finish_turn(
    round: &mut Round<'_>,
    messages: Vec<Value>,
    outcome: gateway_proto::ptc::v1::Outcome,
    execution_id: &str,
) -> Result<End, ApiError> {
    let mut results = HashMap::new();
    match round.apply(outcome, execution_id)? {
        Step::Paused => return Ok(End::tool_use()),
        Step::Finished(text, is_error) => {
            results.insert(to_model_id(execution_id), (text, is_error));
        }
    }
    let unanswered = unanswered_code_uses(&messages, &round.tools.code_tool_name);
    let resumed_at = unanswered
        .iter()
        .position(|(id, _)| *id == to_model_id(execution_id));
    if let Some(at) = resumed_at {
        let queued: Vec<(String, Value)> = unanswered[at + 1..].to_vec();
        for (i, (id, input)) in queued.iter().enumerate() {
            match round
                .run_code(&to_server_id(id), input, &queued[i + 1..])
                .await?
            {
                Step::Paused => return Ok(End::tool_use()),
                Step::Finished(text, is_error) => {
                    results.insert(id.clone(), (text, is_error));
                }
            }
        }
    }
    let messages = fill_code_results(messages, &round.tools.code_tool_name, &results);
    if has_unanswered_direct(&messages) {
        return Ok(End::tool_use());
    }
    round.model_loop(messages).await
}

/// Direct tool_uses of the last assistant turn whose results the client has not sent yet.
fn has_unanswered_direct(messages: &[Value]) -> bool {
    let Some(at) = messages
        .iter()
        .rposition(|m| str_of(m, "role") == "assistant")
    else {
        return false;
    };
    let answered: HashSet<&str> = messages[at + 1..]
        .iter()
        .filter_map(|m| m.get("content")?.as_array())
        .flatten()
        .filter(|b| str_of(b, "type") == "tool_result")
        .map(|b| str_of(b, "tool_use_id"))
        .collect();
    messages[at]
        .get("content")
        .and_then(Value::as_array)
        .is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| str_of(b, "type") == "tool_use" && !answered.contains(str_of(b, "id")))
        })
}

/// Stores the round's response for replay; false when it could not be stored.
async fn store(round: &Round<'_>, container: &str, ids: &[String], message: &Value) -> bool {
    let Ok(response) = serde_json::to_vec(message) else {
        return false;
    };
    let request = StoreRoundRequest {
        container_id: container.to_string(),
        key_id: round.key_id.clone(),
        tool_use_ids: ids.to_vec(),
        response,
        content_type: JSON.into(),
        ..Default::default()
    };
    match round.ptc.sandbox.store_round(request).await {
        Ok(_) => true,
        Err(status) => {
            tracing::warn!(code = ?status.code(), "cannot store the round for replay");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::round_message_id;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_round_has_one_message_id_whoever_serves_it() {
        let id = round_message_id(
            "key_a",
            "container_x",
            &ids(&["toolu_ptc_1", "toolu_ptc_2"]),
        );
        assert!(id.starts_with("msg_") && id.len() == 28, "{id}");
        assert!(id[4..].bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        // The same round, the answers in another order: the same id.
        let again = round_message_id(
            "key_a",
            "container_x",
            &ids(&["toolu_ptc_2", "toolu_ptc_1"]),
        );
        assert_eq!(again, id);
        // Another round, container or key: another id.
        for other in [
            round_message_id("key_a", "container_x", &ids(&["toolu_ptc_3"])),
            round_message_id(
                "key_a",
                "container_y",
                &ids(&["toolu_ptc_1", "toolu_ptc_2"]),
            ),
            round_message_id(
                "key_b",
                "container_x",
                &ids(&["toolu_ptc_1", "toolu_ptc_2"]),
            ),
            // Parts are separated: moving characters between them changes the id.
            round_message_id("key_a", "container_xtoolu_ptc_1", &ids(&["toolu_ptc_2"])),
        ] {
            assert_ne!(other, id);
        }
    }
}
