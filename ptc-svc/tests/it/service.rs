//! The gRPC service without a container engine: two replicas forwarding to each other (the
//! runner runs as a local python3 through the fake sandbox), and an unreachable engine answering
//! UNAVAILABLE (translator-svc: 529) while health reports it.

use crate::support;

use std::sync::Arc;

use gateway_proto::ptc::v1 as pb;
use ptc_svc::sandbox::docker::DockerSandbox;
use support::*;
use tokio::net::TcpListener;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_forward_calls_to_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = replica_pair(Engine::LocalPython(dir.path())).await;

    let id = new_container_id();
    create(&mut b.client, &id).await;
    let outcome = execute(
        &mut a.client,
        &id,
        "srvtoolu_1",
        "print(await lookup(q='x'))",
        &["lookup"],
    )
    .await;
    let pending = calls(&outcome);
    assert_eq!(pending[0].arguments_json, r#"{"q":"x"}"#);
    let session = get_session(&mut a.client, &id).await.unwrap();
    assert_eq!(session.replica_id, b.replica_id, "served by the owner");
    assert_eq!(session.state, pb::SessionState::Paused as i32);
    let outcome = deliver(
        &mut a.client,
        &id,
        "srvtoolu_1",
        &[(&pending[0].id, false, "found")],
    )
    .await;
    assert_eq!(finished(&outcome).stdout, "found\n");

    // Another key sees nothing, on either replica.
    let foreign = a
        .client
        .get_session(pb::GetSessionRequest {
            container_id: id.clone(),
            key_id: "other".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);

    // Rounds are stored and found through either replica.
    a.client
        .store_round(pb::StoreRoundRequest {
            container_id: id.clone(),
            key_id: KEY.into(),
            tool_use_ids: vec![pending[0].id.clone()],
            response: b"{}".to_vec(),
            content_type: "application/json".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let round = b
        .client
        .get_round(pb::GetRoundRequest {
            container_id: id.clone(),
            key_id: KEY.into(),
            tool_use_ids: vec![pending[0].id.clone()],
            wait_ms: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(round.found);

    let health = health(&mut a.client, true).await;
    let replicas: Vec<(&str, u32)> = health
        .replicas
        .iter()
        .map(|r| (r.id.as_str(), r.active_sessions))
        .collect();
    assert_eq!(
        replicas,
        [(a.replica_id.as_str(), 0), (b.replica_id.as_str(), 1)]
    );
    let closed = close(&mut a.client, &id).await;
    assert!(closed.closed);
    a.running.shutdown().await.unwrap();
    b.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_engine_is_unavailable_not_fatal() {
    let config = config(&[]);
    let sandbox =
        DockerSandbox::connect_unix("/nonexistent/ptc-test/docker.sock", config.sandbox.clone())
            .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut server = start_with(listener, config, Arc::new(sandbox)).await;
    let status = server
        .client
        .create_session(pb::CreateSessionRequest {
            container_id: new_container_id(),
            key_id: KEY.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.metadata().get("retry-after").is_some());
    let health = health(&mut server.client, false).await;
    let me = &health.replicas[0];
    assert_eq!((me.docker.as_str(), me.usable), ("unreachable", false));
    assert!(!me.error.is_empty());
    assert_eq!(health.timeouts.unwrap().execution_s, 60);
    server.running.shutdown().await.unwrap();
}

/// A round owner's lease over gRPC, called through the replica that does not own the session
/// (forwarded): renewals keep the round in progress past its lease; once they stop, a waiting
/// GetRound answers `resumable` within about one lease and a repeated delivery claims the round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_lease_is_renewed_and_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = replica_pair(Engine::LocalPython(dir.path())).await;
    let id = new_container_id();
    create(&mut b.client, &id).await;
    let outcome = execute(&mut a.client, &id, "srvtoolu_2", "print(await t())", &["t"]).await;
    let call = calls(&outcome)[0].id.clone();
    let delivery = pb::DeliverResultsRequest {
        container_id: id.clone(),
        key_id: KEY.into(),
        execution_id: "srvtoolu_2".into(),
        results: vec![pb::ToolResult {
            id: call.clone(),
            is_error: false,
            content: "z".into(),
        }],
        round_owner: "req_a:1".into(),
        round_lease_ms: 400,
    };
    let first = a
        .client
        .deliver_results(delivery.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(first.round_claimed && !first.replayed);
    let renew = |owner: &str| pb::RenewRoundRequest {
        container_id: id.clone(),
        key_id: KEY.into(),
        tool_use_ids: vec![call.clone()],
        round_owner: owner.into(),
        lease_ms: 400,
    };
    let get_round = |wait_ms: u32| pb::GetRoundRequest {
        container_id: id.clone(),
        key_id: KEY.into(),
        tool_use_ids: vec![call.clone()],
        wait_ms,
    };
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let renewed = a.client.renew_round(renew("req_a:1")).await.unwrap();
        assert!(renewed.into_inner().held);
    }
    let other = a.client.renew_round(renew("req_b:2")).await.unwrap();
    assert!(!other.into_inner().held, "only the owner renews");
    let round = a.client.get_round(get_round(0)).await.unwrap().into_inner();
    assert!(round.in_progress && !round.resumable, "{round:?}");

    // The owner stops renewing (it died): a retry waiting up to 10 s learns within the lease.
    let started = std::time::Instant::now();
    let round = a
        .client
        .get_round(get_round(10_000))
        .await
        .unwrap()
        .into_inner();
    assert!(round.resumable && !round.in_progress, "{round:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let taken = a
        .client
        .deliver_results(pb::DeliverResultsRequest {
            round_owner: "req_b:2".into(),
            ..delivery
        })
        .await
        .unwrap()
        .into_inner();
    assert!(taken.replayed && taken.round_claimed);
    assert_eq!(finished(&taken).stdout, "z\n");
    a.running.shutdown().await.unwrap();
    b.running.shutdown().await.unwrap();
}
