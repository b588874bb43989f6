//! Pure translation between the Anthropic Messages API and Bedrock: no I/O, no clock, no
//! environment. Request side: normalization, `to_invoke_body`, `to_converse_request`, count_tokens
//! input and estimate. Response side: responses, stop reasons and the stream state machines.

mod blocks;
mod converse_blocks;
pub mod count_tokens;
mod fields;
pub mod invoke;
pub mod media;
mod normalize;
pub mod options;
pub mod response;
pub mod sse;
pub mod stream;
mod thinking;
pub mod to_converse;
mod tools;
mod validate;
mod validate_content;

pub use count_tokens::{CountTokensPlan, estimate_input_tokens, to_count_tokens_input};
pub use invoke::{InvokeRequest, to_invoke_body};
pub use media::{
    FetchedMedia, MediaKind, URL_SOURCES_DISABLED, UrlSource, inline_fetched, url_sources,
};
pub use options::{RequestOptions, ServerToolsPolicy};
pub use to_converse::{ConverseContext, to_converse_request};

#[cfg(test)]
mod request_tests;
