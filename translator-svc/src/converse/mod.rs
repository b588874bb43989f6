//! Bedrock Converse wire types, shaped exactly like the Converse JSON on the wire (what the fake
//! Bedrock records and what `bedrock/` maps to SDK types): serde only, no logic.

pub mod request;
pub mod response;
pub mod stream;
