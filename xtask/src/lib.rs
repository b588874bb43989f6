//! Library side of xtask: pure helpers that the commands and the end-to-end tests share.

pub mod envoy_render;
