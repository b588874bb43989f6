//! The sign-in brake: a token bucket per client address plus one for all clients together, in
//! process memory (so with N replicas a client gets N times the rate; the master key's length
//! makes guessing hopeless anyway, this only keeps the log and the store quiet). A successful
//! sign-in gives its token back. Time is passed in, so tests need no clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Client addresses tracked at once; past this, idle (full) buckets are dropped, and clients
/// that still find no room share one bucket.
const MAX_CLIENTS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, at: Instant) -> Bucket {
        Bucket {
            tokens: capacity,
            at,
        }
    }

    fn refill(&mut self, capacity: f64, per_sec: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(capacity);
        self.at = now;
    }

    /// Seconds until one token is there.
    fn wait(&self, per_sec: f64) -> u64 {
        ((1.0 - self.tokens) / per_sec).ceil().max(1.0) as u64
    }
}

struct Buckets {
    clients: HashMap<IpAddr, Bucket>,
    overflow: Bucket,
    global: Bucket,
}

pub struct SignInLimiter {
    per_client: f64,
    global: f64,
    buckets: Mutex<Buckets>,
}

impl SignInLimiter {
    /// `per_minute` attempts per client (also its burst); ten times that for everyone.
    pub fn new(per_minute: u32, now: Instant) -> SignInLimiter {
        let per_client = f64::from(per_minute.max(1));
        let global = per_client * 10.0;
        SignInLimiter {
            per_client,
            global,
            buckets: Mutex::new(Buckets {
                clients: HashMap::new(),
                overflow: Bucket::full(per_client, now),
                global: Bucket::full(global, now),
            }),
        }
    }

    /// Take a token for an attempt from `client`; `Err(seconds to wait)` when there is none.
    pub fn acquire(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let Ok(mut b) = self.buckets.lock() else {
            return Err(60);
        };
        let (per_client, global) = (self.per_client, self.global);
        let (client_rate, global_rate) = (per_client / 60.0, global / 60.0);
        b.global.refill(global, global_rate, now);
        if b.clients.len() >= MAX_CLIENTS && !b.clients.contains_key(&client) {
            b.clients.retain(|_, bucket| {
                bucket.refill(per_client, client_rate, now);
                bucket.tokens < per_client
            });
        }
        let room = b.clients.len() < MAX_CLIENTS || b.clients.contains_key(&client);
        let Buckets {
            clients,
            overflow,
            global: all,
        } = &mut *b;
        let bucket = if room {
            clients
                .entry(client)
                .or_insert_with(|| Bucket::full(per_client, now))
        } else {
            overflow
        };
        bucket.refill(per_client, client_rate, now);
        if bucket.tokens < 1.0 {
            return Err(bucket.wait(client_rate));
        }
        if all.tokens < 1.0 {
            return Err(all.wait(global_rate));
        }
        bucket.tokens -= 1.0;
        all.tokens -= 1.0;
        Ok(())
    }

    /// A sign-in succeeded: its attempt does not count against the client.
    pub fn succeeded(&self, client: IpAddr) {
        if let Ok(mut b) = self.buckets.lock() {
            let (per_client, global) = (self.per_client, self.global);
            if let Some(bucket) = b.clients.get_mut(&client) {
                bucket.tokens = (bucket.tokens + 1.0).min(per_client);
            }
            b.global.tokens = (b.global.tokens + 1.0).min(global);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_waits_others_are_unaffected() {
        let t0 = Instant::now();
        let limiter = SignInLimiter::new(3, t0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.acquire(a, t0), Ok(()));
        }
        let wait = limiter.acquire(a, t0).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(limiter.acquire(b, t0), Ok(()));
        // 3 per minute: one token back after 20 s.
        assert_eq!(limiter.acquire(a, t0 + Duration::from_secs(21)), Ok(()));
        assert!(limiter.acquire(a, t0 + Duration::from_secs(21)).is_err());
        // A success is refunded.
        limiter.succeeded(a);
        assert_eq!(limiter.acquire(a, t0 + Duration::from_secs(21)), Ok(()));
    }

    #[test]
    fn all_clients_together_are_capped() {
        let t0 = Instant::now();
        let limiter = SignInLimiter::new(1, t0);
        let refused = (0..20u8)
            .filter(|i| {
                limiter
                    .acquire(IpAddr::from([198, 51, 100, *i]), t0)
                    .is_err()
            })
            .count();
        assert_eq!(refused, 10, "ten per minute for everyone");
    }
}
