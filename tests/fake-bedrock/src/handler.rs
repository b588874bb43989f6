//! The Bedrock face: records the call, validates it like Bedrock, picks a scenario and renders it for
//! the operation (JSON, event stream or count). Errors become Bedrock's HTTP error shape here.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State as AxumState;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use serde_json::{Value, json};

use crate::error::BedrockError;
use crate::eventstream::{self, event_frame, with_padding};
use crate::render::{Reply, converse, invoke, request_id};
use crate::request::{
    Operation, RecordedRequest, RequestView, estimate_tokens, record_headers, route,
};
use crate::scenario::Scenario;
use crate::state::{Decision, State};
use crate::stream::Schedule;
use crate::validate::{self, MAX_INVOKE_BODY_BYTES};

const TIER_HEADER: &str = "x-amzn-bedrock-service-tier";

/// Every request that is not a `/_fake/` control call lands here.
pub async fn bedrock(
    AxumState(state): AxumState<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = request_id();
    let (operation, model_id) = route(uri.path());
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    state.record(RecordedRequest {
        operation,
        model_id: model_id.clone(),
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers: record_headers(&headers),
        body: json
            .clone()
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&body).into_owned())),
        body_bytes: body.len(),
    });
    tracing::debug!(?operation, %model_id, bytes = body.len(), "bedrock call");
    let call = Call {
        state: &state,
        operation,
        model_id: &model_id,
        headers: &headers,
        body_bytes: body.len(),
    };
    let result = if method == Method::POST && operation != Operation::Unknown {
        call.answer(json.as_ref()).await
    } else {
        let mut error = BedrockError::new(
            "UnknownOperationException",
            format!("No operation at {} {}", method, uri.path()),
        );
        error.status = 404;
        Err(error)
    };
    let mut response = result.unwrap_or_else(|error| {
        tracing::debug!(name = %error.name, message = %error.message, "bedrock error");
        error.into_response(&request_id)
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}

struct Call<'a> {
    state: &'a State,
    operation: Operation,
    model_id: &'a str,
    headers: &'a HeaderMap,
    body_bytes: usize,
}

impl Call<'_> {
    async fn answer(&self, body: Option<&Value>) -> Result<Response, BedrockError> {
        let view = self.validate(body)?;
        let scenario = match self.state.decide(self.operation, self.model_id, &view) {
            Decision::Error(spec) => return Err(BedrockError::from_spec(&spec)),
            Decision::Reply(scenario) => *scenario,
        };
        if self.operation == Operation::CountTokens {
            let count = scenario
                .count_tokens
                .unwrap_or_else(|| estimate_tokens(view.text_chars));
            return Ok(json_response(&json!({ "inputTokens": count })));
        }
        let reply = Reply::resolve(&scenario, &view, self.model_id);
        let rendered = match self.operation {
            Operation::ConverseStream => self.converse_stream(&reply, &scenario),
            Operation::InvokeStream => self.invoke_stream(&reply, &scenario),
            _ => {
                if scenario.first_event_delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(scenario.first_event_delay_ms)).await;
                }
                if self.operation == Operation::Converse {
                    Ok(json_response(&converse::response_json(&reply)))
                } else {
                    Ok(self.invoke_json(&reply))
                }
            }
        };
        rendered.map_err(|error| {
            BedrockError::new(
                "InternalServerException",
                format!("fake render failed: {error}"),
            )
        })
    }

    /// Bedrock's checks for the operation, then the view scenario selection needs.
    fn validate(&self, body: Option<&Value>) -> Result<RequestView, BedrockError> {
        let tier = self.headers.get(TIER_HEADER).and_then(|v| v.to_str().ok());
        if matches!(self.operation, Operation::Invoke | Operation::InvokeStream)
            && self.body_bytes > MAX_INVOKE_BODY_BYTES
        {
            return Err(BedrockError::validation(format!(
                "Input is too long for requested model. The request body is {} bytes; the limit is {MAX_INVOKE_BODY_BYTES} bytes.",
                self.body_bytes
            )));
        }
        let body = body.ok_or_else(|| {
            BedrockError::validation("Malformed input request: the request body is not valid JSON, please reformat your input and try again.")
        })?;
        match self.operation {
            Operation::Converse | Operation::ConverseStream => {
                validate::converse::check(body, validate::converse::KEYS, self.model_id)?;
                Ok(RequestView::from_converse(body))
            }
            Operation::Invoke | Operation::InvokeStream => {
                validate::service_tier(tier)?;
                validate::invoke::check(body, self.model_id)?;
                Ok(RequestView::from_invoke(body, tier))
            }
            Operation::CountTokens | Operation::Unknown => {
                validate::count_tokens(body, self.model_id)
            }
        }
    }

    fn converse_stream(&self, reply: &Reply, scenario: &Scenario) -> anyhow::Result<Response> {
        let frames = converse::stream_events(reply, scenario.omit_metadata)
            .into_iter()
            .map(|(event_type, payload)| event_frame(event_type, &with_padding(payload)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(stream_response(
            Schedule::plan(frames, scenario)?.into_body(Arc::clone(&self.state.active_streams)),
            HeaderMap::new(),
        ))
    }

    fn invoke_stream(&self, reply: &Reply, scenario: &Scenario) -> anyhow::Result<Response> {
        let frames = invoke::stream_events(reply)
            .into_iter()
            .map(|event| {
                let bytes = STANDARD.encode(serde_json::to_vec(&event)?);
                event_frame("chunk", &with_padding(json!({ "bytes": bytes })))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut headers = tier_header(reply);
        headers.insert(
            "x-amzn-bedrock-content-type",
            HeaderValue::from_static("application/json"),
        );
        Ok(stream_response(
            Schedule::plan(frames, scenario)?.into_body(Arc::clone(&self.state.active_streams)),
            headers,
        ))
    }

    fn invoke_json(&self, reply: &Reply) -> Response {
        let mut response = json_response(&invoke::response_json(reply));
        let headers = response.headers_mut();
        headers.extend(tier_header(reply));
        for (name, value) in [
            ("x-amzn-bedrock-input-token-count", reply.usage.input_tokens),
            (
                "x-amzn-bedrock-output-token-count",
                reply.usage.output_tokens,
            ),
            ("x-amzn-bedrock-invocation-latency", reply.latency_ms),
        ] {
            headers.insert(name, HeaderValue::from(value));
        }
        response
    }
}

/// Invoke reports the tier it ran in `x-amzn-bedrock-service-tier` (the requested one, or the
/// scenario's `served_tier` when the call overflowed to another tier).
fn tier_header(reply: &Reply) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(tier) = reply
        .service_tier
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        headers.insert(TIER_HEADER, tier);
    }
    headers
}

fn json_response(body: &Value) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn stream_response(body: Body, headers: HeaderMap) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(eventstream::CONTENT_TYPE),
    );
    response.headers_mut().extend(headers);
    response
}
