//! ptc-svc: Programmatic Tool Calling sandboxes. One hardened container per session driven
//! through bollard, the line-framed runner protocol, the session table with its timeouts, and
//! the `gateway.ptc.v1` gRPC service. Never talks to Bedrock.

pub mod api;
pub mod config;
pub mod image;
pub mod metrics;
pub mod runner;
pub mod sandbox;
pub mod server;
pub mod session;
pub mod telemetry;
