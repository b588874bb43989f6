//! The gate filter: header hygiene, API-key verification (cached, gRPC `Auth/Check`), cheap body
//! checks and Anthropic-shaped local replies in front of translator-svc; on the way back, it hands
//! the response's token count to the rate limiter's stream-done charge.
//!
//! Every module except `host` is plain Rust that never imports proxy-wasm: `decide` turns a view
//! of the request into effects, and `host` (the only proxy-wasm user) applies them.

pub mod auth;
pub mod body;
pub mod cache;
pub mod config;
pub mod decide;
pub mod headers;
pub mod key;
pub mod metrics;
pub mod reply;
pub mod request_id;
pub mod route;
pub mod usage;

mod host;
