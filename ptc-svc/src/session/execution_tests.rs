use std::time::Duration;

use serde_json::json;

use super::*;
use crate::sandbox::fake::{FakeContainer, FakeSandbox};
use crate::sandbox::{ContainerSpec, Sandbox};

const POLICY: BatchPolicy = BatchPolicy {
    idle: Duration::from_millis(30),
    max_wait: Duration::from_millis(500),
    max_calls: 4,
};

async fn connect() -> (RunnerConn, FakeContainer) {
    let (sandbox, mut containers) = FakeSandbox::scripted();
    let spec = ContainerSpec {
        container_id: "container_x".into(),
        replica_id: "r".into(),
        expires_unix: 0,
        resources: Default::default(),
    };
    let started = sandbox.start(&spec).await.unwrap();
    let mut container = containers.recv().await.unwrap();
    let (conn, ()) = tokio::join!(
        async {
            RunnerConn::start(started, 1 << 20, Duration::from_secs(5), "t".into())
                .await
                .unwrap()
        },
        async { container.accept_injection().await.unwrap() }
    );
    (conn, container)
}

fn clock(timeout_ms: u64) -> ExecutionClock {
    ExecutionClock {
        execution_id: "e1".into(),
        tool_names: vec!["q".into()],
        timeout: Duration::from_millis(timeout_ms),
        used: Duration::ZERO,
        calls_made: 0,
        max_calls: 10,
    }
}

fn call(seq: u64) -> String {
    format!(
        "{}\n",
        json!({"type":"tool_call","v":1,"execution_id":"e1","seq":seq,"tool":"q","arguments":{"n":seq}})
    )
}

fn ids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("toolu_ptc_{n}")
    }
}

#[tokio::test(start_paused = true)]
async fn calls_split_across_chunks_form_one_batch_closed_by_blocked() {
    let (mut conn, container) = connect().await;
    let lines = format!(
        "{}{}{}{}\n",
        call(1),
        call(2),
        call(3),
        json!({"type":"blocked","v":1,"execution_id":"e1","calls":3})
    );
    let (a, b) = lines.split_at(57);
    container.send_stdout(a);
    container.send_stdout(b);
    let mut clock = clock(1000);
    let end = run_segment(&mut conn, &mut clock, POLICY, &mut ids()).await;
    let SegmentEnd::Paused(calls) = end else {
        panic!("{end:?}")
    };
    assert_eq!(calls.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(calls[1].id, "toolu_ptc_2");
    assert_eq!(calls[2].arguments_json, r#"{"n":3}"#);
    assert_eq!(clock.calls_made, 3);
}

#[tokio::test(start_paused = true)]
async fn without_blocked_the_idle_timer_closes_the_batch() {
    let (mut conn, container) = connect().await;
    container.send_stdout(&call(1));
    let mut clock = clock(10_000);
    let started = tokio::time::Instant::now();
    let end = run_segment(&mut conn, &mut clock, POLICY, &mut ids()).await;
    assert!(matches!(end, SegmentEnd::Paused(ref calls) if calls.len() == 1));
    assert_eq!(started.elapsed(), Duration::from_millis(30));
    // A stale blocked report (calls = 1) arriving in the next segment is ignored.
    container.send_stdout(&format!(
        "{}\n",
        json!({"type":"blocked","v":1,"execution_id":"e1","calls":1})
    ));
    container.send_stdout(&call(2));
    let end = run_segment(&mut conn, &mut clock, POLICY, &mut ids()).await;
    assert!(matches!(end, SegmentEnd::Paused(ref calls) if calls.len() == 1 && calls[0].seq == 2));
}

#[tokio::test(start_paused = true)]
async fn max_calls_closes_the_batch_at_once() {
    let (mut conn, container) = connect().await;
    for seq in 1..=5 {
        container.send_stdout(&call(seq));
    }
    let mut clock = clock(10_000);
    let end = run_segment(&mut conn, &mut clock, POLICY, &mut ids()).await;
    assert!(matches!(end, SegmentEnd::Paused(ref calls) if calls.len() == 4));
}

#[tokio::test(start_paused = true)]
async fn the_clock_stops_between_segments() {
    let (mut conn, container) = connect().await;
    let mut clock = clock(1000);
    // 600 ms of running, a call, then a long client wait (not counted), then 600 ms more.
    let runner = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        container.send_stdout(&call(1));
        container.send_stdout(&format!(
            "{}\n",
            json!({"type":"blocked","v":1,"execution_id":"e1","calls":1})
        ));
        container
    };
    let mut next_id = ids();
    let (end, container) = tokio::join!(
        run_segment(&mut conn, &mut clock, POLICY, &mut next_id),
        runner
    );
    assert!(matches!(end, SegmentEnd::Paused(_)));
    assert_eq!(clock.used, Duration::from_millis(600));
    tokio::time::sleep(Duration::from_secs(120)).await;
    let end = run_segment(&mut conn, &mut clock, POLICY, &mut ids()).await;
    assert_eq!(end, SegmentEnd::TimedOut);
    assert_eq!(clock.used, Duration::from_millis(1000));
    drop(container);
}

#[tokio::test(start_paused = true)]
async fn done_ends_the_segment_and_bad_messages_are_violations() {
    let (mut conn, container) = connect().await;
    container.send_stdout(
        "{\"type\":\"done\",\"v\":1,\"execution_id\":\"e1\",\"stdout\":\"a\\n\",\"stderr\":\"\",\"return_code\":0}\n",
    );
    let mut clock = clock(1000);
    let end = run_segment(&mut conn, &mut clock, POLICY, &mut ids()).await;
    assert!(matches!(end, SegmentEnd::Done(ref done) if done.stdout == "a\n"));
    container.send_stdout(&format!(
        "{}\n",
        json!({"type":"tool_call","v":1,"execution_id":"e1","seq":1,"tool":"secret","arguments":{}})
    ));
    let end = run_segment(&mut conn, &mut clock, POLICY, &mut ids()).await;
    assert!(matches!(end, SegmentEnd::Violation(ref why) if why.contains("unexposed")));
}

#[tokio::test(start_paused = true)]
async fn garbage_and_exit_end_the_segment() {
    let (mut conn, container) = connect().await;
    container.send_stdout("this is not json\n");
    let end = run_segment(&mut conn, &mut clock(1000), POLICY, &mut ids()).await;
    assert!(matches!(end, SegmentEnd::Violation(_)));

    let (mut conn, container) = connect().await;
    container.send_stderr("diagnostics are only logged\n");
    container.exit(crate::sandbox::ExitReason::OutOfMemory);
    let end = run_segment(&mut conn, &mut clock(1000), POLICY, &mut ids()).await;
    assert_eq!(end, SegmentEnd::Exited);
}
