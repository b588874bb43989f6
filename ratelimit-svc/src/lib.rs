//! ratelimit-svc: Envoy's RateLimitService v3 on Redis (or memory), with per-key requests- and
//! tokens-per-minute limits and Anthropic-shaped 429s. The library is what `main`, the tests
//! and the benchmark share.

pub mod check;
pub mod config;
pub mod http;
pub mod limiter;
pub mod limits;
pub mod metrics;
pub mod reply;
pub mod rls;
pub mod server;
pub mod store;
pub mod telemetry;
