//! The SSE response: headers that keep proxies from buffering or compressing, a body that writes
//! each already-encoded event as soon as the relay yields it, and a closing HTTP/2 trailer with
//! the tokens used (Envoy's rate limiter charges them; its Lua filter strips the trailer).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use http_body_util::StreamBody;
use hyper::body::Frame;

use crate::convert::response::TokenUsage;
use crate::relay::{SseBody, SseChunk};

/// Response header (JSON) or trailer (SSE) carrying the tokens a response used.
pub const USAGE_TOKENS_HEADER: &str = "x-gw-usage-tokens";

/// Tokens charged against a key's tokens-per-minute limit: everything the model processed or
/// produced except cache reads, which Anthropic does not count against input limits either.
pub fn usage_tokens(usage: &TokenUsage) -> HeaderValue {
    HeaderValue::from(usage.input_tokens + usage.cache_creation_input_tokens + usage.output_tokens)
}

pub fn response(stream: SseBody) -> Response {
    let frames = stream.map(|chunk| {
        Ok::<_, std::convert::Infallible>(match chunk {
            SseChunk::Event(bytes) => Frame::data(bytes),
            SseChunk::End(usage) => {
                let mut trailers = HeaderMap::new();
                trailers.insert(USAGE_TOKENS_HEADER, usage_tokens(&usage));
                Frame::trailers(trailers)
            }
        })
    });
    let mut response = Response::new(Body::new(StreamBody::new(frames)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx-style proxies buffer SSE unless told not to.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
