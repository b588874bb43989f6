//! Charges tokens to a key's tokens-per-minute limit in ratelimit-svc directly, for the one case
//! Envoy cannot: a streaming client that disconnects before the end. Envoy's stream-done charge
//! reads the count from the response trailer (envoy/RATELIMIT.md), which a reset stream never
//! carries, so without this the tokens Bedrock already spent would never count against the key.
//! Fire and forget: a charge never blocks or fails a response.

use std::time::Duration;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::google::protobuf::UInt64Value;
use tonic::transport::{Channel, Endpoint};

use crate::config::{ConfigError, Source, bad};

/// How long one charge may take; the stream it belongs to is already gone.
const CHARGE_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// dropped). Failures are logged and counted, never retried: like Envoy's own stream-done
    /// charge, a lost charge only means the key's minute is more lenient.
    pub fn charge(&self, charge: TokenCharge) {
        if charge.tokens == 0 || charge.tpm == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(request_id = %charge.request_id, "no runtime to charge tokens on");
            return;
        };
        let mut client = self.client.clone();
        let mut request = tonic::Request::new(self.request(&charge));
        if let Ok(id) = charge.request_id.parse() {
            request.metadata_mut().insert("x-request-id", id);
        }
        runtime.spawn(async move {
            let result = match client.should_rate_limit(request).await {
                Ok(_) => "ok",
                Err(status) => {
                    tracing::warn!(request_id = %charge.request_id, code = ?status.code(), "charging the tokens of a disconnected stream failed");
                    "error"
                }
            };
            metrics::counter!("translator_disconnect_token_charges_total", "result" => result)
                .increment(1);
            tracing::info!(request_id = %charge.request_id, key_id = %charge.key_id, tokens = charge.tokens, result, "charged the tokens of a disconnected stream");
        });
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
