//! The HTTP context: reads request headers/body from the host, calls `decide`, applies effects.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use crate::auth;
use crate::cache::AuthCache;
use crate::config::Config;
use crate::decide::{AuthAnswer, Effect, Flow, Gate, RequestView, Step};
use crate::metrics::GateMetrics;
use crate::usage;

pub(super) struct GateHttp {
    config: Rc<Config>,
    cache: Rc<RefCell<AuthCache>>,
    metrics: GateMetrics,
    gate: Gate,
}

impl GateHttp {
    pub(super) fn new(
        config: Rc<Config>,
        cache: Rc<RefCell<AuthCache>>,
        metrics: GateMetrics,
        request_id: String,
    ) -> Self {
        Self {
            config,
            cache,
            metrics,
            gate: Gate::new(request_id),
        }
    }

    fn finish(&mut self, step: Step) -> Action {
        self.apply(step.effects);
        match step.flow {
            Flow::Continue => Action::Continue,
            Flow::Pause => Action::Pause,
        }
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        // Every cache use is followed by applying its effects: report the lookups here.
        super::report_lookups(&self.metrics, &self.cache);
        for effect in effects {
            match effect {
                Effect::RemoveHeader(name) => {
                    log_failure(
                        "remove header",
                        hostcalls::set_map_value(MapType::HttpRequestHeaders, &name, None),
                    );
                }
                Effect::SetHeader(name, value) => {
                    let result =
                        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(&value));
                    log_failure("set header", result);
                }
                Effect::CallAuth(request) => {
                    if let Err(reason) = self.call_auth(&request) {
                        log::warn!(
                            "{}: Auth/Check not dispatched: {reason}",
                            self.gate.request_id()
                        );
                        let config = Rc::clone(&self.config);
                        let cache = Rc::clone(&self.cache);
                        let effects = self.gate.on_auth_answer(
                            AuthAnswer::Failed(reason),
                            &config,
                            &mut cache.borrow_mut(),
                            super::now_ms(),
                        );
                        self.apply(effects);
                        return;
                    }
                }
                Effect::Reply(reply) => {
                    let headers: Vec<(&str, &str)> = reply
                        .headers
                        .iter()
                        .map(|(n, v)| (*n, v.as_str()))
                        .collect();
                    let result = hostcalls::send_http_response(
                        u32::from(reply.status),
                        headers,
                        Some(reply.body.as_bytes()),
                    );
                    log_failure("send local reply", result);
                    return;
                }
                Effect::Resume => log_failure("resume", hostcalls::resume_http_request()),
            }
        }
    }

    fn call_auth(&self, request: &gateway_proto::auth::v1::CheckRequest) -> Result<(), String> {
        use prost::Message;
        let service = auth::grpc_service(&self.config.auth_cluster);
        // The host takes the service as &str; the encoded GrpcService is ASCII for ASCII names.
        let upstream = std::str::from_utf8(&service).unwrap_or(&self.config.auth_cluster);
        hostcalls::dispatch_grpc_call(
            upstream,
            auth::SERVICE,
            auth::METHOD,
            Vec::new(),
            Some(&request.encode_to_vec()),
            Duration::from_millis(self.config.auth_timeout_ms),
        )
        .map(|_token| ())
        .map_err(|status| format!("{status:?}"))
    }

    fn read_request_body(size: usize) -> Vec<u8> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}

/// Request headers with values decoded lossily: `hostcalls::get_map` panics (and so kills the
/// worker's VM) on a value that is not UTF-8, which any client can send as obs-text.
fn request_headers() -> Vec<(String, String)> {
    hostcalls::get_map_bytes(MapType::HttpRequestHeaders)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect()
}

/// Moves translator-svc's `x-gw-usage-tokens` from the response headers or trailers (`map`) into
/// the filter state the rate-limit filter's stream-done charge reads; the client never sees it.
fn take_usage_tokens(map: MapType) {
    let Ok(Some(value)) = hostcalls::get_map_value_bytes(map, usage::USAGE_TOKENS) else {
        return;
    };
    log_failure(
        "remove usage tokens",
        hostcalls::remove_map_value(map, usage::USAGE_TOKENS),
    );
    if let Some(tokens) = usage::tokens(&value) {
        let result = hostcalls::set_property(
            vec![usage::USAGE_TOKENS_STATE],
            Some(tokens.to_string().as_bytes()),
        );
        log_failure("store usage tokens", result);
    }
}

fn log_failure(what: &str, result: Result<(), proxy_wasm::types::Status>) {
    if let Err(status) = result {
        log::warn!("gate: {what} failed: {status:?}");
    }
}

impl Context for GateHttp {
    fn on_grpc_call_response(&mut self, _token_id: u32, status_code: u32, response_size: usize) {
        let answer = if status_code != 0 {
            let (_, message) = hostcalls::get_grpc_status().unwrap_or((status_code, None));
            AuthAnswer::Failed(format!(
                "gRPC status {status_code}: {}",
                message.unwrap_or_default()
            ))
        } else {
            let bytes = hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, response_size)
                .ok()
                .flatten()
                .unwrap_or_default();
            match auth::decode_response(&bytes) {
                Ok(response) => AuthAnswer::Answered(response),
                Err(reason) => AuthAnswer::Failed(reason),
            }
        };
        if let AuthAnswer::Failed(reason) = &answer {
            log::warn!("{}: Auth/Check failed: {reason}", self.gate.request_id());
        }
        let config = Rc::clone(&self.config);
        let cache = Rc::clone(&self.cache);
        let effects =
            self.gate
                .on_auth_answer(answer, &config, &mut cache.borrow_mut(), super::now_ms());
        self.apply(effects);
    }
}

impl HttpContext for GateHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let headers = request_headers();
        let method = crate::headers::get(&headers, ":method")
            .unwrap_or_default()
            .to_owned();
        let path = crate::headers::get(&headers, ":path")
            .unwrap_or_default()
            .to_owned();
        let view = RequestView {
            method: &method,
            path: &path,
            headers: &headers,
            end_of_stream,
            now_ms: super::now_ms(),
        };
        let config = Rc::clone(&self.config);
        let cache = Rc::clone(&self.cache);
        let step = self
            .gate
            .on_request_headers(&view, &config, &mut cache.borrow_mut());
        self.finish(step)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let config = Rc::clone(&self.config);
        let step = self.gate.on_request_body(
            body_size,
            end_of_stream,
            || Self::read_request_body(body_size),
            &config,
        );
        self.finish(step)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let config = Rc::clone(&self.config);
        let step = self
            .gate
            .on_request_trailers(|| Self::read_request_body(usize::MAX), &config);
        self.finish(step)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        take_usage_tokens(MapType::HttpResponseHeaders);
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        take_usage_tokens(MapType::HttpResponseTrailers);
        Action::Continue
    }
}
