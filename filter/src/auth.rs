//! The `Auth/Check` contract as the gate uses it: the request it sends, how an answer becomes a
//! verdict (a grant or an Anthropic-shaped denial), how long that verdict may be cached, and the
//! `GrpcService` bytes that name the Envoy cluster. Encoding only, no I/O.

use gateway_proto::auth::v1::{CheckRequest, CheckResponse};
use prost::Message;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::headers::header_safe;
use crate::reply::{ErrorType, LocalReply};

/// gRPC service and method of the key check.
pub const SERVICE: &str = "gateway.auth.v1.Auth";
pub const METHOD: &str = "Check";

/// SHA-256 of the presented key: the cache key (the key itself is never stored).
pub type KeyHash = [u8; 32];

pub fn key_hash(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// What an allowed key carries into the request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub key_id: String,
    pub tier: &'static str,
    pub requests_per_minute: u32,
    pub tokens_per_minute: u32,
}

/// A grant, or the reply that denies the request.
pub type Verdict = Result<Grant, LocalReply>;

pub fn check_request(api_key: &str, path: &str, request_id: &str) -> CheckRequest {
    CheckRequest {
        api_key: api_key.to_owned(),
        path: path.to_owned(),
        model: String::new(),
        request_id: request_id.to_owned(),
    }
}

pub fn decode_response(bytes: &[u8]) -> Result<CheckResponse, String> {
    CheckResponse::decode(bytes).map_err(|e| format!("undecodable Auth/Check response: {e}"))
}

/// Turns an answer into a verdict, defending against odd values: an unknown tier becomes
/// `default`, a denial always gets a 4xx status and an Anthropic error type.
pub fn verdict(response: &CheckResponse) -> Verdict {
    if response.allowed {
        return Ok(Grant {
            key_id: header_safe(&response.key_id),
            tier: tier(&response.tier),
            requests_per_minute: response.requests_per_minute,
            tokens_per_minute: response.tokens_per_minute,
        });
    }
    let named_type = ErrorType::parse(&response.error_type);
    let status = match u16::try_from(response.status) {
        Ok(status @ 400..=499) => status,
        _ if named_type == Some(ErrorType::Permission) => 403,
        _ => 401,
    };
    let error_type = named_type.unwrap_or_else(|| ErrorType::for_status(status));
    let message = if response.message.is_empty() {
        "invalid API key".to_owned()
    } else {
        response.message.clone()
    };
    Err(LocalReply::new(status, error_type, message))
}

fn tier(value: &str) -> &'static str {
    match value {
        "flex" => "flex",
        "priority" => "priority",
        "reserved" => "reserved",
        _ => "default",
    }
}

/// How long this answer may be cached: the service's word, else the configured default.
pub fn cache_ttl_ms(response: &CheckResponse, config: &Config) -> u64 {
    match response.cache_ttl_ms {
        0 if response.allowed => config.cache_positive_ttl_ms,
        0 => config.cache_negative_ttl_ms,
        ttl => u64::from(ttl),
    }
}

/// `envoy.config.core.v3.GrpcService { envoy_grpc { cluster_name } }`, the two fields we need.
/// Envoy first tries to parse the call's "upstream" as this message and only then as a bare
/// cluster name; some names happen to parse as (wrong) protobuf, so we always send the message.
#[derive(Clone, PartialEq, Message)]
struct GrpcService {
    #[prost(message, optional, tag = "1")]
    envoy_grpc: Option<EnvoyGrpc>,
}

#[derive(Clone, PartialEq, Message)]
struct EnvoyGrpc {
    #[prost(string, tag = "1")]
    cluster_name: String,
}

pub fn grpc_service(cluster_name: &str) -> Vec<u8> {
    GrpcService {
        envoy_grpc: Some(EnvoyGrpc {
            cluster_name: cluster_name.to_owned(),
        }),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> CheckResponse {
        CheckResponse {
            allowed: true,
            key_id: "key_1".into(),
            tier: "priority".into(),
            requests_per_minute: 50,
            tokens_per_minute: 40_000,
            ..Default::default()
        }
    }

    #[test]
    fn grant_carries_identity_and_limits() {
        let grant = verdict(&allowed()).unwrap();
        assert_eq!(
            grant,
            Grant {
                key_id: "key_1".into(),
                tier: "priority",
                requests_per_minute: 50,
                tokens_per_minute: 40_000
            }
        );
        let odd = CheckResponse {
            tier: "gold".into(),
            key_id: "a\nb".into(),
            ..allowed()
        };
        let grant = verdict(&odd).unwrap();
        assert_eq!((grant.tier, grant.key_id.as_str()), ("default", "a_b"));
    }

    #[test]
    fn denial_uses_the_answer() {
        let denied = CheckResponse {
            status: 403,
            error_type: "permission_error".into(),
            message: "budget exhausted until 2025-12-01".into(),
            ..Default::default()
        };
        let reply = verdict(&denied).unwrap_err();
        assert_eq!(reply.status, 403);
        assert_eq!(reply.error_type, ErrorType::Permission);
        assert_eq!(reply.message, "budget exhausted until 2025-12-01");
    }

    #[test]
    fn denial_defaults_are_anthropic() {
        let reply = verdict(&CheckResponse::default()).unwrap_err();
        assert_eq!(
            (reply.status, reply.error_type),
            (401, ErrorType::Authentication)
        );
        assert_eq!(reply.message, "invalid API key");
        let odd = CheckResponse {
            status: 200,
            error_type: "internal_error".into(),
            ..Default::default()
        };
        let reply = verdict(&odd).unwrap_err();
        assert_eq!(
            (reply.status, reply.error_type),
            (401, ErrorType::Authentication)
        );
        let typed = CheckResponse {
            error_type: "permission_error".into(),
            ..Default::default()
        };
        assert_eq!(verdict(&typed).unwrap_err().status, 403);
    }

    #[test]
    fn ttl_from_answer_or_config() {
        let config = Config::default();
        assert_eq!(cache_ttl_ms(&allowed(), &config), 10_000);
        assert_eq!(cache_ttl_ms(&CheckResponse::default(), &config), 2_000);
        let told = CheckResponse {
            cache_ttl_ms: 123,
            ..allowed()
        };
        assert_eq!(cache_ttl_ms(&told, &config), 123);
    }

    #[test]
    fn key_hash_is_sha256() {
        let hash = key_hash("abc");
        assert_eq!(hash[..4], [0xba, 0x78, 0x16, 0xbf]);
    }

    #[test]
    fn grpc_service_bytes() {
        // field 1 (envoy_grpc, len 17) { field 1 (cluster_name, len 15) "translator_grpc" }
        let mut want = vec![0x0a, 17, 0x0a, 15];
        want.extend_from_slice(b"translator_grpc");
        assert_eq!(grpc_service("translator_grpc"), want);
        assert!(std::str::from_utf8(&grpc_service("translator_grpc")).is_ok());
    }

    #[test]
    fn request_and_response_wire_round_trip() {
        let request = check_request("sk-1", "/v1/messages", "req_1");
        let decoded = CheckRequest::decode(request.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.api_key, "sk-1");
        let bytes = allowed().encode_to_vec();
        assert_eq!(decode_response(&bytes).unwrap(), allowed());
        assert!(decode_response(&[0xff, 0xff]).is_err());
    }
}
