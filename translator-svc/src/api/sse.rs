//! The SSE response: headers that keep proxies from buffering or compressing, and a body that
//! writes each already-encoded event as soon as the relay yields it.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;

use crate::relay::SseBody;

pub fn response(stream: SseBody) -> Response {
    let body = Body::from_stream(stream.map(Ok::<_, std::convert::Infallible>));
    let mut response = Response::new(body);
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
