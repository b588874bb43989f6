//! The Redis store: one EVALSHA of `gcra.lua` per RateLimitRequest, whatever the number of
//! descriptors. A lazy connection manager reconnects by itself; every call is bounded by a
//! timeout so a stuck Redis turns into the configured failure mode, not a stuck Envoy.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Applied, CounterStore, StoreError, StoreFuture};
use crate::limiter::{Mode, Op, OpResult};

const SCRIPT: &str = include_str!("gcra.lua");

pub struct RedisStore {
    connection: ConnectionManager,
    script: redis::Script,
    timeout: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Does not connect: the service starts (and fails open or closed) while Redis is down,
    /// and the first check connects.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::Redis(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
            // `run` bounds each call itself; a second, identical timer per call only cost a
            // timer-wheel insert and a wake-up of the I/O driver.
            .set_response_timeout(None)
            // Few, quick reconnection attempts per failed call: an outage is answered by the
            // failure mode at once, and the next call tries again.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::Redis(e.to_string()))?;
        Ok(Self {
            connection,
            script: redis::Script::new(SCRIPT),
            timeout,
        })
    }

    async fn run(&self, now_ms: u64, ops: &[(String, Op)]) -> Result<Applied, StoreError> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(now_ms);
        for (key, op) in ops {
            let mode = match op.mode {
                Mode::Check => 0,
                Mode::Debt => 1,
                Mode::Refund => 2,
            };
            invocation
                .key(key)
                .arg(op.period_ms)
                .arg(op.limit)
                .arg(op.hits)
                .arg(mode)
                .arg(u8::from(op.shadow));
        }
        let mut connection = self.connection.clone();
        let call = invocation.invoke_async::<String>(&mut connection);
        let reply = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout.as_millis() as u64))?
            .map_err(|e| StoreError::Redis(e.to_string()))?;
        parse_reply(&reply, ops.len())
    }
}

/// `"<blocked> <allowed_1> <before_1> <after_1> ..."`, as `gcra.lua` writes it.
fn parse_reply(text: &str, ops: usize) -> Result<Applied, StoreError> {
    let bad = || StoreError::Reply(format!("{text:?}"));
    let reply: Vec<&str> = text.split(' ').collect();
    if reply.len() != 1 + 3 * ops {
        return Err(bad());
    }
    let flag = |text: &str| match text {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(bad()),
    };
    let number = |text: &str| match text.parse::<f64>() {
        Ok(number) if number.is_finite() => Ok(number),
        _ => Err(bad()),
    };
    let results = reply[1..]
        .chunks_exact(3)
        .map(|chunk| {
            Ok(OpResult {
                allowed: flag(chunk[0])?,
                backlog_before_ms: number(chunk[1])?,
                backlog_after_ms: number(chunk[2])?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Applied {
        results,
        blocked: flag(reply[0])?,
    })
}

impl CounterStore for RedisStore {
    fn apply<'a>(&'a self, now_ms: u64, ops: &'a [(String, Op)]) -> StoreFuture<'a> {
        Box::pin(self.run(now_ms, ops))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_reply_and_rejects_malformed_ones() {
        let reply = "1 1 0 1200 0 60000 60000.5";
        let applied = parse_reply(reply, 2).unwrap();
        assert!(applied.blocked);
        assert_eq!(applied.results[0].backlog_after_ms, 1200.0);
        assert!(!applied.results[1].allowed);
        assert_eq!(applied.results[1].backlog_after_ms, 60000.5);
        assert!(parse_reply(reply, 1).is_err());
        assert!(parse_reply("1 x 0 0", 1).is_err());
        assert!(parse_reply("1 1 0 nan", 1).is_err());
        assert!(parse_reply("", 0).is_err());
    }
}
