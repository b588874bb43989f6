//! Auth/Check through a real tonic client against an in-process server on 127.0.0.1:0.

use std::sync::Arc;
use std::time::Duration;

use gateway_proto::auth::v1::auth_client::AuthClient;
use gateway_proto::auth::v1::{CheckRequest, CheckResponse};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;

use super::*;

async fn serve(verifier: Arc<dyn KeyVerifier>) -> AuthClient<Channel> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(auth_service(verifier))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    AuthClient::connect(format!("http://{addr}")).await.unwrap()
}

async fn check(client: &mut AuthClient<Channel>, key: &str) -> CheckResponse {
    let request = CheckRequest {
        api_key: key.into(),
        path: "/v1/messages".into(),
        ..Default::default()
    };
    client.check(request).await.unwrap().into_inner()
}

fn master(key: &str) -> Arc<dyn KeyVerifier> {
    Arc::new(MasterKeyVerifier::new(Some(key.to_owned())))
}

#[tokio::test]
async fn master_key_is_allowed_as_master_default_unlimited() {
    let mut client = serve(master("sk-gw-master-123")).await;
    let response = check(&mut client, "sk-gw-master-123").await;
    assert_eq!(
        response,
        CheckResponse {
            allowed: true,
            key_id: "master".into(),
            tier: "default".into(),
            requests_per_minute: 0,
            tokens_per_minute: 0,
            cache_ttl_ms: 0,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn other_keys_are_invalid() {
    let mut client = serve(master("sk-gw-master-123")).await;
    for key in [
        "sk-gw-master-12",
        "sk-gw-master-1234",
        "SK-GW-MASTER-123",
        "",
    ] {
        let response = check(&mut client, key).await;
        assert!(!response.allowed, "{key:?}");
        assert_eq!(response.status, 401);
        assert_eq!(response.error_type, "authentication_error");
        assert_eq!(response.message, "invalid API key");
        assert!(response.key_id.is_empty());
    }
}

#[tokio::test]
async fn no_master_key_refuses_everything() {
    for configured in [None, Some(String::new())] {
        let mut client = serve(Arc::new(MasterKeyVerifier::new(configured))).await;
        assert!(!check(&mut client, "anything").await.allowed);
        assert!(!check(&mut client, "").await.allowed);
    }
}

struct Fixed(Result<Verdict, VerifyError>);

#[tonic::async_trait]
impl KeyVerifier for Fixed {
    async fn verify(&self, _presented_key: &str) -> Result<Verdict, VerifyError> {
        self.0.clone()
    }
}

#[tokio::test]
async fn grants_and_denials_map_to_the_wire() {
    let grant = KeyGrant {
        key_id: "key_7".into(),
        tier: Tier::Priority,
        requests_per_minute: 50,
        tokens_per_minute: 40_000,
        cache_ttl: Some(Duration::from_millis(1_500)),
    };
    let mut client = serve(Arc::new(Fixed(Ok(Verdict::Allowed(grant))))).await;
    let response = check(&mut client, "k").await;
    assert!(response.allowed);
    assert_eq!(response.tier, "priority");
    assert_eq!(
        (response.requests_per_minute, response.tokens_per_minute),
        (50, 40_000)
    );
    assert_eq!(response.cache_ttl_ms, 1_500);

    let denial = Verdict::Denied(Denial::NotPermitted(
        "monthly budget exhausted; resets 2026-01-01".into(),
    ));
    let mut client = serve(Arc::new(Fixed(Ok(denial)))).await;
    let response = check(&mut client, "k").await;
    assert_eq!((response.allowed, response.status), (false, 403));
    assert_eq!(response.error_type, "permission_error");
    assert_eq!(
        response.message,
        "monthly budget exhausted; resets 2026-01-01"
    );
}

#[tokio::test]
async fn verifier_failure_is_unavailable_not_a_verdict() {
    let mut client = serve(Arc::new(Fixed(Err(VerifyError("store down".into()))))).await;
    let request = CheckRequest {
        api_key: "k".into(),
        ..Default::default()
    };
    let status = client.check(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        !status.message().contains("store down"),
        "internals stay in logs"
    );
}

#[test]
fn tiers_have_their_wire_names() {
    let names: Vec<&str> = [Tier::Default, Tier::Flex, Tier::Priority, Tier::Reserved]
        .into_iter()
        .map(Tier::as_str)
        .collect();
    assert_eq!(names, ["default", "flex", "priority", "reserved"]);
}
