//! Where bucket state lives: Redis (shared by replicas) or memory (one process). Both apply a
//! whole request's operations atomically with the same algorithm (`limiter::evaluate`).

mod memory;
mod redis;

use std::future::Future;
use std::pin::Pin;

pub use memory::MemoryStore;
pub use redis::RedisStore;

use crate::limiter::{Op, OpResult};

/// The result of one atomic application of a request's operations.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub results: Vec<OpResult>,
    pub blocked: bool,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(String),
    #[error("redis did not answer within {0} ms")]
    Timeout(u64),
    #[error("redis script returned an unexpected reply: {0}")]
    Reply(String),
}

pub type StoreFuture<'a> = Pin<Box<dyn Future<Output = Result<Applied, StoreError>> + Send + 'a>>;

/// The counter-store seam. One call per RateLimitRequest: one round trip, all or nothing.
pub trait CounterStore: Send + Sync + 'static {
    /// Applies `ops` (bucket key, operation) in order, as of `now_ms`.
    fn apply<'a>(&'a self, now_ms: u64, ops: &'a [(String, Op)]) -> StoreFuture<'a>;

    /// `"redis"` or `"memory"`, for logs and `/ready`.
    fn kind(&self) -> &'static str;
}
