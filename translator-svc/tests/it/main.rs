//! All of this crate's integration tests in one binary, a module per area. Each test binary
//! links the whole service (about 80 MB unoptimised), so one binary instead of one per file keeps
//! the build small enough for CI's disk and saves a link per file. nextest still runs every test
//! in its own process; select an area with `-E 'test(/^area::/)'`.
// Tests may panic on failed set-up: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

mod billing;
mod gatewayctl;
mod logs;
mod metrics;
mod otel;
mod ptc;
mod ptc_billing;
mod service;
