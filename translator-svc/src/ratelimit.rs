//! Charges tokens to a key's tokens-per-minute limit in ratelimit-svc directly, for what Envoy
//! cannot charge: a streaming client that disconnects before the end, a PTC round finished or
//! failed after its client left, a PTC round answered with an error. Envoy's stream-done charge
//! reads the count from the response's usage header or trailer (envoy/RATELIMIT.md), which those
//! never carry, so without this the tokens Bedrock already spent would never count against the key.
//! Fire and forget: a charge never blocks or fails a response; it is retried in the background
//! while ratelimit-svc is unreachable for a moment (see `Failure` for what a retry may cost).

use std::time::Duration;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::google::protobuf::UInt64Value;
use tonic::transport::{Channel, Endpoint};

use crate::config::{ConfigError, Source, bad};

/// How long one attempt may take; the stream it belongs to is already gone. Generous next to
/// ratelimit-svc's usual few milliseconds, so an attempt rarely times out after it was applied.
const CHARGE_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts per charge, and the pause before the second one (doubled before each later one, plus
/// up to half again of jitter): about 2 s of retrying, besides the attempts' own timeouts, rides
/// out a ratelimit-svc restart or a dropped connection, and the charge still lands in the minute
/// it belongs to. Bounded, so an outage costs a few short-lived tasks per charge, not a backlog.
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Why an attempt failed, which decides whether it is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No connection to ratelimit-svc: the charge was never sent, so a retry cannot count it
    /// twice.
    NotSent,
    /// Sent without an answer (the attempt timed out, the connection broke) or answered
    /// `UNAVAILABLE`: transient, retried. ratelimit-svc cannot tell a retry from a new charge, so
    /// if it had applied the charge and only its answer was lost, the retry counts it twice. That
    /// is the one double count accepted, and the unavoidable one without an idempotency key in the
    /// rate-limit protocol: not retrying would lose every charge sent into an outage instead, and
    /// both failures are rare next to the 2 s attempt timeout.
    Unanswered,
    /// Any other answer (invalid descriptor, internal error): a retry would get the same.
    Refused,
}

impl Failure {
    fn of(status: &tonic::Status) -> Self {
        match status.code() {
            tonic::Code::Unavailable if never_connected(status) => Failure::NotSent,
            // `Cancelled` is how tonic reports the channel's own timeout expiring.
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                Failure::Unanswered
            }
            // A status with a source is the client's own transport failing (a connection closed
            // mid-call), not an answer: ratelimit-svc's statuses arrive without one.
            tonic::Code::Unknown | tonic::Code::Internal
                if std::error::Error::source(status).is_some() =>
            {
                Failure::Unanswered
            }
            _ => Failure::Refused,
        }
    }

    fn transient(self) -> bool {
        self != Failure::Refused
    }

    fn label(self) -> &'static str {
        match self {
            Failure::NotSent => "not_sent",
            Failure::Unanswered => "unanswered",
            Failure::Refused => "refused",
        }
    }
}

/// True when the status comes from failing to connect (tonic's `ConnectError` in its sources).
fn never_connected(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// The pause before attempt `attempt` (2, 3, ...): `FIRST_BACKOFF` doubled per earlier retry,
/// plus up to half of it again at random, so charges failing together do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let base = FIRST_BACKOFF * 2u32.pow(attempt.saturating_sub(2).min(8));
    base + base.mul_f64(rand::random::<f64>() / 2.0)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeConfig {
    /// `RATELIMIT_ENDPOINT`, ratelimit-svc's gRPC address (`http://host:port`); unset = tokens of
    /// disconnected streams are recorded in usage but not charged to the key's TPM limit.
    pub endpoint: Option<String>,
    /// `RATELIMIT_DOMAIN`: the `domain` of Envoy's rate-limit filter (`gateway` in
    /// `envoy/ratelimit.fragment.yaml`), so the charge lands in the bucket Envoy uses.
    pub domain: String,
}

impl ChargeConfig {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let endpoint = src
            .get("RATELIMIT_ENDPOINT")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        if let Some(e) = &endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(bad(
                "RATELIMIT_ENDPOINT",
                format!("{e:?}: expected http://host:port"),
            ));
        }
        let domain = src
            .get("RATELIMIT_DOMAIN")
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "gateway".into());
        if domain.is_empty() {
            return Err(bad("RATELIMIT_DOMAIN", "must not be empty"));
        }
        Ok(ChargeConfig { endpoint, domain })
    }
}

/// One charge: `tokens` against the key whose limit is `tpm` tokens per minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCharge {
    pub request_id: String,
    pub key_id: String,
    /// The key's limit as the gate filter sent it (`x-gw-tpm`); it names the limit, as in
    /// Envoy's descriptor.
    pub tpm: u64,
    pub tokens: u64,
}

/// A ratelimit-svc client (connected lazily: ratelimit-svc being down never affects start-up).
#[derive(Clone)]
pub struct TokenCharger {
    client: RateLimitServiceClient<Channel>,
    domain: String,
}

impl TokenCharger {
    pub fn connect_lazy(config: &ChargeConfig) -> anyhow::Result<Option<Self>> {
        let Some(endpoint) = &config.endpoint else {
            return Ok(None);
        };
        let channel = Endpoint::from_shared(endpoint.clone())
            .map_err(|e| anyhow::anyhow!("RATELIMIT_ENDPOINT: {e}"))?
            .connect_timeout(Duration::from_secs(1))
            .timeout(CHARGE_TIMEOUT)
            .connect_lazy();
        Ok(Some(TokenCharger {
            client: RateLimitServiceClient::new(channel),
            domain: config.domain.clone(),
        }))
    }

    /// The stream-done descriptor of `envoy/ratelimit.fragment.yaml`
    /// (`route=messages, key_id, tpm`) with the tokens as its `hits_addend`: ratelimit-svc charges
    /// token limits even into debt, exactly as for Envoy's own stream-done call.
    pub fn request(&self, charge: &TokenCharge) -> RateLimitRequest {
        let entry = |key: &str, value: String| Entry {
            key: key.into(),
            value,
        };
        RateLimitRequest {
            domain: self.domain.clone(),
            descriptors: vec![RateLimitDescriptor {
                entries: vec![
                    entry("route", "messages".into()),
                    entry("key_id", charge.key_id.clone()),
                    entry("tpm", charge.tpm.to_string()),
                ],
                hits_addend: Some(UInt64Value {
                    value: charge.tokens,
                }),
                ..RateLimitDescriptor::default()
            }],
            hits_addend: 0,
        }
    }

    /// Sends the charge in the background (needs a Tokio runtime; without one it is logged and
    /// dropped), retrying transient failures up to `ATTEMPTS` times with backoff. A charge given
    /// up is logged with its tokens (for reconciliation) and counted as `result="error"`; like
    /// Envoy's own stream-done charge, it only makes the key's minute more lenient.
    pub fn charge(&self, charge: TokenCharge) {
        if charge.tokens == 0 || charge.tpm == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(request_id = %charge.request_id, "no runtime to charge tokens on");
            return;
        };
        let charger = self.clone();
        runtime.spawn(async move {
            let result = match charger.send_with_retries(&charge).await {
                Ok(attempts) => {
                    tracing::info!(request_id = %charge.request_id, key_id = %charge.key_id, tokens = charge.tokens, attempts, "charged tokens to the key's TPM limit directly");
                    "ok"
                }
                Err((attempts, failure, status)) => {
                    tracing::error!(request_id = %charge.request_id, key_id = %charge.key_id, tokens = charge.tokens, attempts, failure = failure.label(), code = ?status.code(), "gave up charging tokens to the key's TPM limit");
                    "error"
                }
            };
            metrics::counter!("translator_disconnect_token_charges_total", "result" => result)
                .increment(1);
        });
    }

    /// Sends one charge until it is answered, it is refused, or the attempts run out: the number
    /// of attempts made, or the last failure.
    async fn send_with_retries(
        &self,
        charge: &TokenCharge,
    ) -> Result<u32, (u32, Failure, tonic::Status)> {
        let mut attempt = 1;
        loop {
            let mut client = self.client.clone();
            let mut request = tonic::Request::new(self.request(charge));
            if let Ok(id) = charge.request_id.parse() {
                request.metadata_mut().insert("x-request-id", id);
            }
            let status = match client.should_rate_limit(request).await {
                Ok(_) => return Ok(attempt),
                Err(status) => status,
            };
            let failure = Failure::of(&status);
            if !failure.transient() || attempt >= ATTEMPTS {
                return Err((attempt, failure, status));
            }
            attempt += 1;
            let pause = backoff(attempt);
            tracing::warn!(request_id = %charge.request_id, failure = failure.label(), code = ?status.code(), attempt, pause_ms = pause.as_millis(), "charging tokens to ratelimit-svc failed; retrying");
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn config_parses_and_validates() {
        let none: HashMap<&str, &str> = HashMap::new();
        let c = ChargeConfig::from_source(&none).unwrap();
        assert_eq!((c.endpoint, c.domain.as_str()), (None, "gateway"));
        let src = HashMap::from([
            ("RATELIMIT_ENDPOINT", "http://127.0.0.1:8081"),
            ("RATELIMIT_DOMAIN", "edge"),
        ]);
        let c = ChargeConfig::from_source(&src).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:8081"));
        assert_eq!(c.domain, "edge");
        let bad = HashMap::from([("RATELIMIT_ENDPOINT", "127.0.0.1:8081")]);
        assert!(ChargeConfig::from_source(&bad).is_err());
    }

    fn charger_for(endpoint: String) -> TokenCharger {
        let config = ChargeConfig {
            endpoint: Some(endpoint),
            domain: "gateway".into(),
        };
        TokenCharger::connect_lazy(&config).unwrap().unwrap()
    }

    fn charge() -> TokenCharge {
        TokenCharge {
            request_id: "req_1".into(),
            key_id: "key_a".into(),
            tpm: 5000,
            tokens: 42,
        }
    }

    /// A loopback port nothing listens on (bound, then released).
    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        for (attempt, base_ms) in [(2, 250), (3, 500), (4, 1000)] {
            let pause = backoff(attempt).as_millis();
            assert!(
                (base_ms..=base_ms * 3 / 2).contains(&pause),
                "attempt {attempt}: {pause} ms"
            );
        }
    }

    /// ratelimit-svc down: every attempt fails to connect (never sent, so retrying is safe),
    /// the charge is retried with backoff, then given up after `ATTEMPTS`.
    #[tokio::test]
    async fn a_charge_into_an_outage_is_retried_then_given_up() {
        let charger = charger_for(format!("http://127.0.0.1:{}", closed_port()));
        let started = std::time::Instant::now();
        let (attempts, failure, status) = charger.send_with_retries(&charge()).await.unwrap_err();
        assert_eq!(attempts, ATTEMPTS);
        assert_eq!(failure, Failure::NotSent, "{status:?}");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        // 250 + 500 + 1000 ms of backoff at least.
        assert!(
            started.elapsed() >= Duration::from_millis(1750),
            "{:?}",
            started.elapsed()
        );
    }

    /// A ratelimit-svc that takes the connection but never answers: the attempt times out, may
    /// have been applied, and is still transient (retried).
    #[tokio::test]
    async fn an_attempt_without_an_answer_is_transient_but_may_have_been_applied() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                held.push(socket);
            }
        });
        let charger = charger_for(format!("http://127.0.0.1:{port}"));
        let mut client = charger.client.clone();
        let status = client
            .should_rate_limit(charger.request(&charge()))
            .await
            .unwrap_err();
        silent.abort();
        let failure = Failure::of(&status);
        assert_eq!(failure, Failure::Unanswered, "{status:?}");
        assert!(failure.transient());
        let refused = tonic::Status::invalid_argument("bad descriptor");
        assert!(!Failure::of(&refused).transient());
    }

    /// A ratelimit-svc going away under the charge (the connection closes as soon as it is
    /// taken): transient.
    #[tokio::test]
    async fn a_connection_closed_under_the_charge_is_transient() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let closing = tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                drop(socket);
            }
        });
        let charger = charger_for(format!("http://127.0.0.1:{port}"));
        let mut client = charger.client.clone();
        let status = client
            .should_rate_limit(charger.request(&charge()))
            .await
            .unwrap_err();
        closing.abort();
        assert!(Failure::of(&status).transient(), "{status:?}");
    }

    #[tokio::test]
    async fn the_charge_is_envoys_stream_done_descriptor() {
        let config = ChargeConfig {
            endpoint: Some("http://127.0.0.1:9".into()),
            domain: "gateway".into(),
        };
        let charger = TokenCharger::connect_lazy(&config).unwrap().unwrap();
        let request = charger.request(&TokenCharge {
            request_id: "req_1".into(),
            key_id: "key_a".into(),
            tpm: 5000,
            tokens: 42,
        });
        assert_eq!(request.domain, "gateway");
        let d = &request.descriptors[0];
        let entries: Vec<(&str, &str)> = d
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            entries,
            [("route", "messages"), ("key_id", "key_a"), ("tpm", "5000")]
        );
        assert_eq!(d.hits_addend.map(|h| h.value), Some(42));
    }
}
