//! translator-svc: the Anthropic Messages API served from Amazon Bedrock. The binary in `main.rs`
//! only wires these modules together; tests start the same service in-process.

pub mod admin;
pub mod anthropic;
pub mod api;
pub mod app;
pub mod auth;
pub mod bedrock;
pub mod beta;
pub mod config;
pub mod converse;
pub mod convert;
pub mod error;
pub mod ids;
pub mod keys;
pub mod media;
pub mod models;
pub mod pricing;
pub mod ptc;
pub mod ratelimit;
pub mod relay;
pub mod telemetry;
pub mod usage;
