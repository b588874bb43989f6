//! Anthropic Messages API wire types: serde only, no logic.

pub mod request;
pub mod response;
pub mod stream;
