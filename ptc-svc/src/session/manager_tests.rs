use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::config::Config;
use crate::sandbox::ExitReason;
use crate::sandbox::fake::{FakeContainer, FakeSandbox};
use crate::session::{
    FailureCode, Outcome, OutcomeKind, Phase, QueuedExecution, RoundLookup, StoredRound, ToolCall,
    now_ms,
};

const KEY: &str = "key-1";

fn config(pairs: &[(&str, &str)]) -> Arc<Config> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Arc::new(Config::from_lookup(|name| map.get(name).cloned()).unwrap())
}

fn container_id(n: u32) -> String {
    format!("container_{n:0>32}")
}

fn new_session(n: u32, key: &str) -> NewSession {
    NewSession {
        container_id: container_id(n),
        key_id: key.into(),
        caller_type: "code_execution_20250825".into(),
        code_tool_name: "code_execution".into(),
        limits: Limits::default(),
    }
}

fn code(id: &str, code: &str, tools: &[&str]) -> QueuedExecution {
    QueuedExecution {
        execution_id: id.into(),
        code: code.into(),
        tool_names: tools.iter().map(|t| (*t).to_owned()).collect(),
    }
}

fn paused(outcome: &Outcome) -> Vec<ToolCall> {
    match &outcome.kind {
        OutcomeKind::Paused(calls) => calls.clone(),
        other => panic!("expected a pause, got {other:?}"),
    }
}

fn finished(outcome: &Outcome) -> crate::session::Finished {
    match &outcome.kind {
        OutcomeKind::Finished(finished) => finished.clone(),
        other => panic!("expected a finish, got {other:?}"),
    }
}

/// Sessions on the real runner in a local python3 (no isolation; protocol and runner logic only).
fn python_sessions(pairs: &[(&str, &str)]) -> (Arc<Sessions>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = FakeSandbox::local_python(dir.path().to_path_buf());
    (Sessions::new(config(pairs), Arc::new(sandbox)), dir)
}

#[tokio::test]
async fn one_call_then_a_gathered_batch_then_an_exception() {
    let (sessions, _dir) = python_sessions(&[]);
    let id = container_id(1);
    sessions.create(new_session(1, KEY)).await.unwrap();
    let source = r#"
w = await get_weather(city="Paris")
print("weather:", w)
r = await asyncio.gather(*[query(region=x) for x in ["West", "East", "Central"]], return_exceptions=True)
print([type(x).__name__ + ":" + str(x) for x in r])
raise RuntimeError("boom")
"#;
    let outcome = sessions
        .execute(
            &id,
            KEY,
            code("srvtoolu_1", source, &["get_weather", "query"]),
            vec![],
        )
        .await
        .unwrap();
    let calls = paused(&outcome);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].tool, "get_weather");
    assert_eq!(calls[0].arguments_json, r#"{"city":"Paris"}"#);
    assert!(calls[0].id.starts_with("toolu_ptc_"));
    let record = sessions.get(&id, KEY).unwrap();
    assert_eq!(record.phase, Phase::Paused);
    assert_eq!(record.execution.as_ref().unwrap().pending, calls);

    let outcome = sessions
        .deliver(
            &id,
            KEY,
            "srvtoolu_1",
            vec![(calls[0].id.clone(), false, "sunny".into())],
        )
        .await
        .unwrap();
    let batch = paused(&outcome);
    assert_eq!(batch.len(), 3, "asyncio.gather yields one batch");
    let regions: Vec<&str> = batch.iter().map(|c| c.arguments_json.as_str()).collect();
    assert_eq!(
        regions,
        [
            r#"{"region":"West"}"#,
            r#"{"region":"East"}"#,
            r#"{"region":"Central"}"#
        ]
    );

    // Answers in reverse order; the middle one is an error.
    let answers = vec![
        (batch[2].id.clone(), false, "C=3".into()),
        (batch[1].id.clone(), true, "east is down".into()),
        (batch[0].id.clone(), false, "W=1".into()),
    ];
    let outcome = sessions
        .deliver(&id, KEY, "srvtoolu_1", answers)
        .await
        .unwrap();
    let done = finished(&outcome);
    assert_eq!(
        done.stdout,
        "weather: sunny\n['str:W=1', 'ToolError:east is down', 'str:C=3']\n"
    );
    assert_eq!(done.return_code, 1);
    assert!(
        done.stderr.contains("RuntimeError: boom"),
        "{}",
        done.stderr
    );
    assert!(
        done.stderr.contains("File \"<code>\", line 6"),
        "{}",
        done.stderr
    );
    assert!(!done.stderr.contains("ptc-runner"), "{}", done.stderr);
    assert_eq!(sessions.get(&id, KEY).unwrap().phase, Phase::Idle);
}

#[tokio::test]
async fn results_must_match_the_batch_exactly_and_are_never_delivered_twice() {
    let (sessions, _dir) = python_sessions(&[]);
    let id = container_id(2);
    sessions.create(new_session(2, KEY)).await.unwrap();
    let source = "a, b = await asyncio.gather(t(n=1), t(n=2))\nprint(a, b)";
    let batch = paused(
        &sessions
            .execute(&id, KEY, code("srvtoolu_2", source, &["t"]), vec![])
            .await
            .unwrap(),
    );
    assert_eq!(batch.len(), 2);

    let missing = sessions
        .deliver(
            &id,
            KEY,
            "srvtoolu_2",
            vec![(batch[0].id.clone(), false, "x".into())],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(missing, SessionError::ResultsMismatch { ref missing, .. } if *missing == vec![batch[1].id.clone()])
    );
    let duplicated = sessions
        .deliver(
            &id,
            KEY,
            "srvtoolu_2",
            vec![
                (batch[0].id.clone(), false, "x".into()),
                (batch[0].id.clone(), false, "y".into()),
                (batch[1].id.clone(), false, "z".into()),
                (
                    "toolu_ptc_000000000000000000000000".into(),
                    false,
                    "?".into(),
                ),
            ],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(duplicated, SessionError::ResultsMismatch { ref duplicated, ref unknown, .. }
        if duplicated.len() == 1 && unknown.len() == 1)
    );
    // The batch is intact: a correct retry works, and a repeat gets the same outcome.
    let answers = vec![
        (batch[1].id.clone(), false, "two".into()),
        (batch[0].id.clone(), false, "one".into()),
    ];
    let first = sessions
        .deliver(&id, KEY, "srvtoolu_2", answers.clone())
        .await
        .unwrap();
    assert_eq!(finished(&first).stdout, "one two\n");
    assert!(!first.replayed);
    let again = sessions
        .deliver(&id, KEY, "srvtoolu_2", answers)
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.kind, first.kind);
    // Execute with the same id replays too; a new execution sees a fresh namespace.
    let replay = sessions
        .execute(&id, KEY, code("srvtoolu_2", source, &["t"]), vec![])
        .await
        .unwrap();
    assert!(replay.replayed);
    let fresh = sessions
        .execute(
            &id,
            KEY,
            code("srvtoolu_3", "print('a' in dir())", &[]),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(finished(&fresh).stdout, "False\n");
}

#[tokio::test]
async fn state_checks_keys_and_queue() {
    let (sessions, _dir) = python_sessions(&[]);
    let id = container_id(3);
    sessions.create(new_session(3, KEY)).await.unwrap();
    assert_eq!(
        sessions.get(&id, "other-key").unwrap_err(),
        SessionError::NotFound
    );
    assert_eq!(
        sessions
            .create(new_session(3, "other-key"))
            .await
            .unwrap_err(),
        SessionError::AlreadyExists
    );
    let (_, created) = sessions.create(new_session(3, KEY)).await.unwrap();
    assert!(!created, "a repeated creation returns the session");
    let queued = vec![code("srvtoolu_b", "print(2)", &[])];
    let batch = paused(
        &sessions
            .execute(
                &id,
                KEY,
                code("srvtoolu_a", "print(await t())", &["t"]),
                queued.clone(),
            )
            .await
            .unwrap(),
    );
    assert_eq!(sessions.get(&id, KEY).unwrap().queue, queued);
    let busy = sessions
        .execute(&id, KEY, code("srvtoolu_b", "print(2)", &[]), vec![])
        .await
        .unwrap_err();
    assert_eq!(busy, SessionError::PendingCalls(vec![batch[0].id.clone()]));
    let wrong = sessions
        .deliver(&id, KEY, "srvtoolu_x", vec![])
        .await
        .unwrap_err();
    assert!(matches!(wrong, SessionError::WrongExecution(_)));
    let outcome = sessions
        .deliver(
            &id,
            KEY,
            "srvtoolu_a",
            vec![(batch[0].id.clone(), false, "ok".into())],
        )
        .await
        .unwrap();
    assert_eq!(finished(&outcome).stdout, "ok\n");
    let second = sessions
        .execute(&id, KEY, queued[0].clone(), vec![])
        .await
        .unwrap();
    assert_eq!(finished(&second).stdout, "2\n");
    assert!(sessions.get(&id, KEY).unwrap().queue.is_empty());
    assert!(sessions.close(&id, KEY).await.unwrap());
    assert_eq!(sessions.get(&id, KEY).unwrap_err(), SessionError::NotFound);
    assert!(!sessions.close(&id, KEY).await.unwrap());
}

#[tokio::test]
async fn capacity_per_replica_and_per_key() {
    let (sessions, _dir) = python_sessions(&[
        ("PTC_MAX_SESSIONS_PER_REPLICA", "2"),
        ("PTC_MAX_SESSIONS_PER_KEY", "1"),
    ]);
    sessions.create(new_session(10, "a")).await.unwrap();
    assert_eq!(
        sessions.create(new_session(11, "a")).await.unwrap_err(),
        SessionError::KeyLimit(1)
    );
    sessions.create(new_session(12, "b")).await.unwrap();
    assert!(matches!(
        sessions.create(new_session(13, "c")).await.unwrap_err(),
        SessionError::Unavailable(_)
    ));
    assert_eq!(sessions.active_sessions(), 2);
    assert!(matches!(
        sessions
            .create(NewSession {
                container_id: "container_BAD".into(),
                ..new_session(14, "d")
            })
            .await,
        Err(SessionError::InvalidArgument(_))
    ));
    sessions.drain().await;
    assert_eq!(sessions.active_sessions(), 0);
    assert!(matches!(
        sessions.create(new_session(15, "e")).await,
        Err(SessionError::Unavailable(_))
    ));
}

#[tokio::test]
async fn idle_sessions_expire_and_rounds_replay() {
    let (sessions, _dir) = python_sessions(&[("PTC_SESSION_IDLE_S", "1")]);
    let id = container_id(4);
    sessions.create(new_session(4, KEY)).await.unwrap();
    let batch = paused(
        &sessions
            .execute(
                &id,
                KEY,
                code("srvtoolu_4", "print(await t(n=1), await u())", &["t", "u"]),
                vec![],
            )
            .await
            .unwrap(),
    );
    let first = batch[0].id.clone();
    // No round is open for these ids yet: the answer comes at once, whatever the wait.
    assert_eq!(
        sessions
            .get_round(&id, KEY, vec![first.clone()], Duration::from_secs(30))
            .await
            .unwrap(),
        RoundLookup::NotFound
    );
    let delivered = sessions
        .deliver(
            &id,
            KEY,
            "srvtoolu_4",
            vec![(first.clone(), false, "1".into())],
        )
        .await
        .unwrap();
    assert!(delivered.round_claimed && !delivered.replayed);
    // The delivery opened a round: an identical retry waits for its stored response.
    let waiter = {
        let sessions = Arc::clone(&sessions);
        let id = id.clone();
        let first = first.clone();
        tokio::spawn(async move {
            sessions
                .get_round(&id, KEY, vec![first], Duration::from_secs(5))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    let round = StoredRound {
        tool_use_ids: vec![first.clone()],
        response: b"{\"id\":\"msg_1\"}".to_vec(),
        content_type: "application/json".into(),
        stored_at_unix: now_ms() / 1000,
    };
    sessions.store_round(&id, KEY, round).unwrap();
    let RoundLookup::Found(found) = waiter.await.unwrap().unwrap() else {
        panic!("the waiting retry gets the stored round");
    };
    assert_eq!(found.response, b"{\"id\":\"msg_1\"}");
    assert_eq!(
        sessions
            .get_round(&id, KEY, vec!["toolu_ptc_a".into()], Duration::ZERO)
            .await
            .unwrap(),
        RoundLookup::NotFound
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        sessions.get(&id, KEY).unwrap_err(),
        SessionError::NotFound,
        "expired"
    );
    sessions.sweep_expired().await;
    let record = record_of(&sessions.all()[0]).clone();
    assert_eq!(record.phase, Phase::Closed);
    // The stored round outlives the session for replays.
    assert!(matches!(
        sessions
            .get_round(&id, KEY, vec![first], Duration::ZERO)
            .await
            .unwrap(),
        RoundLookup::Found(_)
    ));
}

/// A round whose request gave up (client gone, model call failed) is released; an identical
/// retry re-delivers, gets the first delivery's outcome and serves the round, while the code
/// received the results once. A repeat while a request serves the round is told to wait.
#[tokio::test]
async fn a_released_round_is_taken_over_without_a_second_delivery() {
    let (sessions, _dir) = python_sessions(&[]);
    let id = container_id(5);
    sessions.create(new_session(5, KEY)).await.unwrap();
    let source = "import time\nv = await t(n=1)\ntime.sleep(0.3)\nprint('got', v)";
    let batch = paused(
        &sessions
            .execute(&id, KEY, code("srvtoolu_5", source, &["t"]), vec![])
            .await
            .unwrap(),
    );
    let answers = vec![(batch[0].id.clone(), false, "one".into())];
    let ids = vec![batch[0].id.clone()];
    // The first delivery's caller goes away while the code runs; the execution goes on.
    let first = {
        let sessions = Arc::clone(&sessions);
        let (id, answers) = (id.clone(), answers.clone());
        tokio::spawn(async move { sessions.deliver(&id, KEY, "srvtoolu_5", answers).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.abort();
    // Still served (claimed): a repeat replays the outcome but does not take the round.
    let repeat = sessions
        .deliver(&id, KEY, "srvtoolu_5", answers.clone())
        .await
        .unwrap();
    assert!(repeat.replayed && !repeat.round_claimed);
    assert_eq!(finished(&repeat).stdout, "got one\n");
    assert_eq!(
        sessions
            .get_round(&id, KEY, ids.clone(), Duration::from_millis(100))
            .await
            .unwrap(),
        RoundLookup::InProgress
    );
    // Released: a waiting retry stops waiting and may take the round over, once.
    let waiter = {
        let sessions = Arc::clone(&sessions);
        let (id, ids) = (id.clone(), ids.clone());
        tokio::spawn(async move {
            sessions
                .get_round(&id, KEY, ids, Duration::from_secs(30))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    sessions.release_round(&id, KEY, ids.clone(), "").unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), RoundLookup::Resumable);
    let taken = sessions
        .deliver(&id, KEY, "srvtoolu_5", answers.clone())
        .await
        .unwrap();
    assert!(taken.replayed && taken.round_claimed);
    assert_eq!(taken.kind, repeat.kind);
    let again = sessions
        .deliver(&id, KEY, "srvtoolu_5", answers)
        .await
        .unwrap();
    assert!(again.replayed && !again.round_claimed);
    let record = sessions.get(&id, KEY).unwrap();
    assert_eq!(record.execution.unwrap().calls_made, 1);
    assert_eq!(record.phase, Phase::Idle);
}

async fn scripted(pairs: &[(&str, &str)]) -> (Arc<Sessions>, Arc<FakeSandbox>, FakeContainer) {
    let (sandbox, mut containers) = FakeSandbox::scripted();
    let sandbox = Arc::new(sandbox);
    let sessions = Sessions::new(config(pairs), sandbox.clone());
    let creating = {
        let sessions = Arc::clone(&sessions);
        tokio::spawn(async move { sessions.create(new_session(5, KEY)).await })
    };
    let mut container = containers.recv().await.unwrap();
    container.accept_injection().await.unwrap();
    creating.await.unwrap().unwrap();
    (sessions, sandbox, container)
}

#[tokio::test(start_paused = true)]
async fn a_runaway_execution_times_out_and_closes_the_session() {
    let (sessions, sandbox, mut container) = scripted(&[("PTC_EXECUTION_TIMEOUT_S", "2")]).await;
    let id = container_id(5);
    let running = {
        let sessions = Arc::clone(&sessions);
        let id = id.clone();
        tokio::spawn(async move {
            sessions
                .execute(
                    &id,
                    KEY,
                    code("srvtoolu_t", "while True: pass", &[]),
                    vec![],
                )
                .await
        })
    };
    let execute = container.read_message().await.unwrap();
    assert_eq!(execute["type"], "execute");
    assert_eq!(execute["code"], "while True: pass");
    let outcome = running.await.unwrap().unwrap();
    assert!(matches!(
        outcome.kind,
        OutcomeKind::Failed {
            code: FailureCode::ExecutionTimeExceeded,
            duration_ms: 2000,
            ..
        }
    ));
    assert!(outcome.session_closed);
    assert_eq!(sandbox.removed().len(), 1);
    assert_eq!(sessions.get(&id, KEY).unwrap_err(), SessionError::NotFound);
    // A retry of the same call still gets the outcome.
    let replay = sessions
        .execute(&id, KEY, code("srvtoolu_t", "", &[]), vec![])
        .await
        .unwrap();
    assert!(replay.replayed && replay.session_closed);
}

#[tokio::test]
async fn an_oom_kill_is_reported_as_unavailable() {
    let (sessions, _sandbox, mut container) = scripted(&[]).await;
    let id = container_id(5);
    let running = {
        let sessions = Arc::clone(&sessions);
        let id = id.clone();
        tokio::spawn(async move {
            sessions
                .execute(
                    &id,
                    KEY,
                    code("srvtoolu_m", "x = b'a' * 2**40", &[]),
                    vec![],
                )
                .await
        })
    };
    container.read_message().await.unwrap();
    container.send_stdout(&format!("{}\n", json!({"type":"tool_call","v":1,"execution_id":"srvtoolu_m","seq":1,"tool":"nope","arguments":{}})));
    let outcome = running.await.unwrap().unwrap();
    assert!(
        matches!(outcome.kind, OutcomeKind::Failed { code: FailureCode::Unavailable, ref detail, .. } if detail.contains("protocol violation"))
    );

    let (sessions, _sandbox, mut container) = scripted(&[]).await;
    let running = {
        let sessions = Arc::clone(&sessions);
        let id = id.clone();
        tokio::spawn(async move {
            sessions
                .execute(
                    &id,
                    KEY,
                    code("srvtoolu_m", "x = b'a' * 2**40", &[]),
                    vec![],
                )
                .await
        })
    };
    container.read_message().await.unwrap();
    container.exit(ExitReason::OutOfMemory);
    let outcome = running.await.unwrap().unwrap();
    assert!(
        matches!(outcome.kind, OutcomeKind::Failed { code: FailureCode::Unavailable, ref detail, .. } if detail.contains("out of memory"))
    );
}

#[tokio::test]
async fn runner_semantics() {
    let (sessions, _dir) = python_sessions(&[("PTC_MAX_CALLS_PER_EXECUTION", "2")]);
    let id = container_id(6);
    sessions.create(new_session(6, KEY)).await.unwrap();
    let source = r#"
try:
    await get_data("positional")
except TypeError as e:
    print("TypeError:", e)
try:
    await get_data(when=object())
except TypeError as e:
    print("not JSON")
a = await get_data(n=1)
b = await call_tool("get-data", n=2)
try:
    await get_data(n=3)
except ToolError as e:
    print("ToolError:", e)
print(a, b)
return {"a": a}
"#;
    let first = sessions
        .execute(&id, KEY, code("srvtoolu_s", source, &["get-data"]), vec![])
        .await
        .unwrap();
    let call = paused(&first);
    assert_eq!(
        (call[0].tool.as_str(), call[0].arguments_json.as_str()),
        ("get-data", r#"{"n":1}"#)
    );
    let second = sessions
        .deliver(
            &id,
            KEY,
            "srvtoolu_s",
            vec![(call[0].id.clone(), false, "one".into())],
        )
        .await
        .unwrap();
    let call = paused(&second);
    assert_eq!(call[0].seq, 2);
    let done = sessions
        .deliver(
            &id,
            KEY,
            "srvtoolu_s",
            vec![(call[0].id.clone(), false, "two".into())],
        )
        .await
        .unwrap();
    let done = finished(&done);
    assert_eq!(
        done.stdout,
        "TypeError: get_data() takes keyword arguments only, e.g. get_data(name=value)\nnot JSON\nToolError: tool call limit reached\none two\n"
    );
    assert_eq!(done.return_value, "{'a': 'one'}");
    assert_eq!(done.return_code, 0, "{}", done.stderr);

    let exits = sessions
        .execute(
            &id,
            KEY,
            code("srvtoolu_e", "import sys\nprint('bye')\nsys.exit(4)", &[]),
            vec![],
        )
        .await
        .unwrap();
    let exits = finished(&exits);
    assert_eq!((exits.stdout.as_str(), exits.return_code), ("bye\n", 4));
    let syntax = sessions
        .execute(
            &id,
            KEY,
            code("srvtoolu_x", "print(1)\ndef (:", &[]),
            vec![],
        )
        .await
        .unwrap();
    let syntax = finished(&syntax);
    assert_eq!(syntax.return_code, 1);
    assert!(
        syntax.stderr.contains("SyntaxError") && syntax.stderr.contains("line 2"),
        "{}",
        syntax.stderr
    );
}

#[test]
fn requested_limits_tighten_but_never_loosen() {
    let sandbox = FakeSandbox::local_python(std::env::temp_dir());
    let sessions = Sessions::new(
        config(&[
            ("PTC_MEMORY", "256MiB"),
            ("PTC_CPUS", "0.5"),
            ("PTC_PIDS", "64"),
        ]),
        Arc::new(sandbox),
    );
    let own = sessions.resolve_limits(Limits::default());
    assert_eq!(own.memory_bytes, 256 << 20);
    assert_eq!(own.milli_cpus, 500);
    assert_eq!(own.pids, 64);
    assert_eq!(own.execution_timeout, Duration::from_secs(60));
    let tighter = sessions.resolve_limits(Limits {
        execution_timeout: Duration::from_secs(2),
        memory_bytes: 128 << 20,
        milli_cpus: 250,
        pids: 32,
        ..Limits::default()
    });
    assert_eq!(tighter.execution_timeout, Duration::from_secs(2));
    assert_eq!(tighter.memory_bytes, 128 << 20);
    assert_eq!(tighter.milli_cpus, 250);
    assert_eq!(tighter.pids, 32);
    let looser = sessions.resolve_limits(Limits {
        memory_bytes: 1 << 30,
        milli_cpus: 4000,
        pids: 1000,
        ..Limits::default()
    });
    assert_eq!(looser, own);
}

/// Session `n` paused on one call of `srvtoolu_<n>`: its id, the answers giving `value` to that
/// call, and the call ids (the round's key).
async fn paused_on_one_call(
    sessions: &Arc<Sessions>,
    n: u32,
    value: &str,
) -> (String, Vec<(String, bool, String)>, Vec<String>) {
    let id = container_id(n);
    sessions.create(new_session(n, KEY)).await.unwrap();
    let execution = format!("srvtoolu_{n}");
    let batch = paused(
        &sessions
            .execute(
                &id,
                KEY,
                code(&execution, "print(await t())", &["t"]),
                vec![],
            )
            .await
            .unwrap(),
    );
    let answers = vec![(batch[0].id.clone(), false, value.to_string())];
    let ids = vec![batch[0].id.clone()];
    (id, answers, ids)
}

/// The request serving a round may repeat its own delivery (a retry after a deadline) and still
/// serve it; another request's release leaves the round claimed.
#[tokio::test]
async fn a_round_belongs_to_the_request_that_delivered() {
    let (sessions, _dir) = python_sessions(&[]);
    let (id, answers, ids) = paused_on_one_call(&sessions, 6, "x").await;
    let first = sessions
        .deliver_as(&id, KEY, "srvtoolu_6", answers.clone(), "req_a:1", None)
        .await
        .unwrap();
    assert!(first.round_claimed && !first.replayed);
    let own = sessions
        .deliver_as(&id, KEY, "srvtoolu_6", answers.clone(), "req_a:1", None)
        .await
        .unwrap();
    assert!(own.replayed && own.round_claimed);
    let other = sessions
        .deliver_as(&id, KEY, "srvtoolu_6", answers.clone(), "req_b:2", None)
        .await
        .unwrap();
    assert!(other.replayed && !other.round_claimed);
    sessions
        .release_round(&id, KEY, ids.clone(), "req_b:2")
        .unwrap();
    assert_eq!(
        sessions
            .get_round(&id, KEY, ids.clone(), Duration::ZERO)
            .await
            .unwrap(),
        RoundLookup::InProgress
    );
    sessions
        .release_round(&id, KEY, ids.clone(), "req_a:1")
        .unwrap();
    assert_eq!(
        sessions
            .get_round(&id, KEY, ids.clone(), Duration::ZERO)
            .await
            .unwrap(),
        RoundLookup::Resumable
    );
    let taken = sessions
        .deliver_as(&id, KEY, "srvtoolu_6", answers, "req_b:2", None)
        .await
        .unwrap();
    assert!(taken.replayed && taken.round_claimed);
    assert_eq!(finished(&taken).stdout, "x\n");
}

/// A claim with a lease lapses when its owner stops renewing it (a crashed translator): a retry
/// waiting for the round learns within about one lease that it may take the round over, instead
/// of waiting out the round; while the owner renews, the round stays its own.
#[tokio::test]
async fn a_round_whose_owner_stops_renewing_is_taken_over() {
    let (sessions, _dir) = python_sessions(&[]);
    let (id, answers, ids) = paused_on_one_call(&sessions, 7, "y").await;
    let lease = Duration::from_millis(300);
    let first = sessions
        .deliver_as(
            &id,
            KEY,
            "srvtoolu_7",
            answers.clone(),
            "req_a:1",
            Some(lease),
        )
        .await
        .unwrap();
    assert!(first.round_claimed && !first.replayed);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            sessions
                .renew_round(&id, KEY, ids.clone(), "req_a:1", lease)
                .unwrap()
        );
    }
    assert!(
        !sessions
            .renew_round(&id, KEY, ids.clone(), "req_b:2", lease)
            .unwrap()
    );
    let other = sessions
        .deliver_as(
            &id,
            KEY,
            "srvtoolu_7",
            answers.clone(),
            "req_b:2",
            Some(lease),
        )
        .await
        .unwrap();
    assert!(
        other.replayed && !other.round_claimed,
        "renewed: still req_a's"
    );

    // req_a stops renewing: a retry willing to wait 10 s is told within about one lease.
    let started = std::time::Instant::now();
    let lookup = sessions
        .get_round(&id, KEY, ids.clone(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(lookup, RoundLookup::Resumable);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let taken = sessions
        .deliver_as(&id, KEY, "srvtoolu_7", answers, "req_b:2", Some(lease))
        .await
        .unwrap();
    assert!(taken.replayed && taken.round_claimed);
    assert_eq!(finished(&taken).stdout, "y\n");
    assert!(
        !sessions
            .renew_round(&id, KEY, ids.clone(), "req_a:1", lease)
            .unwrap()
    );
    assert!(
        sessions
            .renew_round(&id, KEY, ids, "req_b:2", lease)
            .unwrap()
    );
}
