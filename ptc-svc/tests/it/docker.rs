//! ptc-svc against a real Docker engine and the offline sandbox image: the PTC protocol end to
//! end over gRPC, container reuse, expiry, timeouts, the hardening (escape attempts must fail),
//! orphan cleanup and two replicas. Needs `dockerd` and `cargo run -p ptc-svc --bin ptc-image`;
//! with CI=true a missing engine or image fails instead of skipping.

use crate::support;

use std::time::{Duration, Instant};

use gateway_proto::ptc::v1 as pb;
use support::*;
use tonic::Code;

macro_rules! docker_or_skip {
    () => {
        match docker().await {
            Some(docker) => docker,
            None => return,
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tool_then_three_in_parallel_then_a_raise() {
    let docker = docker_or_skip!();
    let mut server = start(&[]).await;
    let id = new_container_id();
    let session = create(&mut server.client, &id).await;
    assert_eq!(session.replica_id, server.replica_id);
    assert!(session.expires_at.ends_with('Z'));
    let code = r#"
city = await get_weather(city="Paris")
print("weather:", city)
results = await asyncio.gather(
    query_sales(region="West"), query_sales(region="East"), query_sales(region="Central"),
    return_exceptions=True,
)
for r in results:
    print(type(r).__name__, r)
raise ValueError("done with " + str(len(results)))
"#;
    let first = execute(
        &mut server.client,
        &id,
        "srvtoolu_bdrk_01",
        code,
        &["get_weather", "query_sales"],
    )
    .await;
    let one = calls(&first);
    assert_eq!(one.len(), 1);
    assert_eq!(
        (one[0].tool.as_str(), one[0].arguments_json.as_str()),
        ("get_weather", r#"{"city":"Paris"}"#)
    );
    assert!(one[0].id.starts_with("toolu_ptc_") && one[0].id.len() == 34);

    // GetSession carries everything a translator needs to resume.
    let state = get_session(&mut server.client, &id).await.unwrap();
    assert_eq!(state.state, pb::SessionState::Paused as i32);
    assert_eq!(state.execution.as_ref().unwrap().pending, one);

    let second = deliver(
        &mut server.client,
        &id,
        "srvtoolu_bdrk_01",
        &[(&one[0].id, false, "sunny")],
    )
    .await;
    let batch = calls(&second);
    assert_eq!(
        batch.len(),
        3,
        "asyncio.gather reaches the client as one batch"
    );
    let args: Vec<&str> = batch.iter().map(|c| c.arguments_json.as_str()).collect();
    assert_eq!(
        args,
        [
            r#"{"region":"West"}"#,
            r#"{"region":"East"}"#,
            r#"{"region":"Central"}"#
        ]
    );

    // Results in reverse order, the middle one an error: each lands on its own call.
    let third = deliver(
        &mut server.client,
        &id,
        "srvtoolu_bdrk_01",
        &[
            (&batch[2].id, false, "C=30"),
            (&batch[1].id, true, "east is down"),
            (&batch[0].id, false, "W=10"),
        ],
    )
    .await;
    let done = finished(&third);
    assert_eq!(
        done.stdout,
        "weather: sunny\nstr W=10\nToolError east is down\nstr C=30\n"
    );
    assert_eq!(done.return_code, 1);
    assert!(
        done.stderr.contains("ValueError: done with 3"),
        "{}",
        done.stderr
    );
    assert!(!third.session_closed);

    // Reuse: the file written by one execution is there for the next, its variables are not.
    let write = execute(
        &mut server.client,
        &id,
        "srvtoolu_2",
        "open('/workspace/note.txt','w').write('kept')\nx = 1",
        &[],
    )
    .await;
    assert_eq!(finished(&write).return_code, 0);
    let read = execute(
        &mut server.client,
        &id,
        "srvtoolu_3",
        "print(open('/workspace/note.txt').read(), 'x' in dir())",
        &[],
    )
    .await;
    assert_eq!(finished(&read).stdout, "kept False\n");

    // The container really carries the hardening.
    let inspect = engine_container(&docker, &id).await.unwrap();
    let host = inspect.host_config.unwrap();
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(host.pids_limit, Some(64));
    assert_eq!(host.memory, Some(256 << 20));
    assert!(host.binds.unwrap_or_default().is_empty());
    assert!(
        inspect.mounts.unwrap_or_default().is_empty(),
        "no volumes or bind mounts"
    );
    assert_eq!(inspect.config.unwrap().user.as_deref(), Some("65534:65534"));

    let closed = close(&mut server.client, &id).await;
    assert!(closed.closed);
    assert!(
        engine_container(&docker, &id).await.is_none(),
        "container removed"
    );
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_wait_does_not_count_but_running_time_adds_up() {
    let docker = docker_or_skip!();
    let mut server = start(&[("PTC_EXECUTION_TIMEOUT_S", "4")]).await;
    let id = new_container_id();
    create(&mut server.client, &id).await;
    let code = "import time\ntime.sleep(0.5)\nr = await t()\ntime.sleep(0.5)\nprint(r)";
    let outcome = execute(&mut server.client, &id, "srvtoolu_w", code, &["t"]).await;
    let pending = calls(&outcome);
    tokio::time::sleep(Duration::from_secs(5)).await; // longer than the whole budget
    let outcome = deliver(
        &mut server.client,
        &id,
        "srvtoolu_w",
        &[(&pending[0].id, false, "late but fine")],
    )
    .await;
    let done = finished(&outcome);
    assert_eq!(done.stdout, "late but fine\n");
    assert!(
        (1000..4000).contains(&done.duration_ms),
        "{}",
        done.duration_ms
    );

    // 2.5 s + 2.5 s of running in two segments exceeds 4 s though each segment is shorter.
    let code = "import time\ntime.sleep(2.5)\nawait t()\ntime.sleep(2.5)\nprint('never')";
    let outcome = execute(&mut server.client, &id, "srvtoolu_x", code, &["t"]).await;
    let pending = calls(&outcome);
    let outcome = deliver(
        &mut server.client,
        &id,
        "srvtoolu_x",
        &[(&pending[0].id, false, "")],
    )
    .await;
    assert_eq!(
        failed(&outcome).code,
        pb::FailureCode::ExecutionTimeExceeded as i32
    );
    assert!(outcome.session_closed);
    assert!(engine_container(&docker, &id).await.is_none());
    let gone = get_session(&mut server.client, &id).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_times_out_and_the_replica_stays_healthy() {
    let docker = docker_or_skip!();
    let mut server = start(&[("PTC_EXECUTION_TIMEOUT_S", "2")]).await;
    let started = Instant::now();
    let (id, outcome) = run_once(&mut server, "while True:\n    pass").await;
    assert_eq!(
        failed(&outcome).code,
        pb::FailureCode::ExecutionTimeExceeded as i32
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(engine_container(&docker, &id).await.is_none());
    let (_, outcome) = run_once(&mut server, "print('still here')").await;
    assert_eq!(finished(&outcome).stdout, "still here\n");
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_expire_and_their_containers_go() {
    let docker = docker_or_skip!();
    let mut server = start(&[("PTC_SESSION_IDLE_S", "1"), ("PTC_SWEEP_INTERVAL_S", "1")]).await;
    let id = new_container_id();
    create(&mut server.client, &id).await;
    assert!(engine_container(&docker, &id).await.is_some());
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine_container(&docker, &id).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the expired container was not removed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = server
        .client
        .execute(pb::ExecuteRequest {
            container_id: id.clone(),
            key_id: KEY.into(),
            execution_id: "srvtoolu_late".into(),
            code: "print(1)".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    server.running.shutdown().await.unwrap();
}

/// Runs escape attempts; each prints one `name=verdict` line, `blocked` being the expected one.
const ESCAPES: &str = r#"
import errno, os, socket, subprocess
def check(name, attempt):
    try:
        attempt()
        print(f"{name}=ALLOWED")
    except OSError as e:
        print(f"{name}=blocked ({errno.errorcode.get(e.errno, e.errno)})")
def tcp():
    # Only connect once it is certain no packet can leave: no interface but lo, no route.
    routes = open("/proc/net/route").read().strip().splitlines()[1:]
    names = [n for _, n in socket.if_nameindex()]
    if routes or names != ["lo"]:
        raise SystemExit(f"network present: {names} {routes}")
    socket.create_connection(("192.0.2.1", 80), timeout=2)
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("192.0.2.1", 53))
def dns():
    try:
        socket.getaddrinfo("example.com", 80)
    except socket.gaierror as e:
        raise OSError(errno.EHOSTUNREACH, str(e))
check("tcp", tcp)
check("udp", udp)
check("dns", dns)
for path in ["/etc/evil", "/usr/evil", "/evil", "/opt/ptc/runner.py", "/var/evil"]:
    check("write " + path, lambda: open(path, "w").write("x"))
check("setuid", lambda: os.setuid(0))
check("docker socket", lambda: socket.socket(socket.AF_UNIX).connect("/var/run/docker.sock"))
check("docker socket 2", lambda: socket.socket(socket.AF_UNIX).connect("/run/docker.sock"))
def big_tmp():
    with open("/tmp/a", "wb") as f:
        f.write(b"x" * (40 << 20))
    with open("/tmp/b", "wb") as f:
        f.write(b"x" * (40 << 20))
check("fill /tmp", big_tmp)
os.remove("/tmp/a")
open("/workspace/ok", "w").write("fine")
open("/tmp/ok", "w").write("fine")
status = open("/proc/self/status").read()
print("uid", os.getuid(), os.getgid())
print([l for l in status.splitlines() if l.startswith(("CapEff", "NoNewPrivs"))])
print("sockets", [m for m in open("/proc/mounts").read().splitlines() if "docker.sock" in m])
print("sudo", os.path.exists("/usr/bin/sudo"))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_attempts_fail_inside_the_sandbox() {
    let _docker = docker_or_skip!();
    let mut server = start(&[]).await;
    let (_, outcome) = run_once(&mut server, ESCAPES).await;
    let done = finished(&outcome);
    assert_eq!(done.return_code, 0, "{}", done.stderr);
    let out = done.stdout;
    for name in [
        "tcp",
        "udp",
        "dns",
        "write /etc/evil",
        "write /usr/evil",
        "write /evil",
        "write /opt/ptc/runner.py",
        "write /var/evil",
        "setuid",
        "docker socket",
        "docker socket 2",
        "fill /tmp",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} missing in {out}"));
        assert!(
            line.starts_with(&format!("{name}=blocked")),
            "{line}\n{out}"
        );
    }
    assert!(out.contains("tcp=blocked (ENETUNREACH)"), "{out}");
    assert!(out.contains("write /etc/evil=blocked (EROFS)"), "{out}");
    assert!(out.contains("fill /tmp=blocked (ENOSPC)"), "{out}");
    assert!(out.contains("uid 65534 65534"), "{out}");
    assert!(out.contains("'CapEff:\\t0000000000000000'"), "{out}");
    assert!(out.contains("'NoNewPrivs:\\t1'"), "{out}");
    assert!(out.contains("sockets []"), "{out}");
    assert!(out.contains("sudo False"), "{out}");
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_meets_the_pids_limit() {
    let _docker = docker_or_skip!();
    let mut server = start(&[("PTC_EXECUTION_TIMEOUT_S", "20")]).await;
    let counted = r#"
import os, signal, time
children = []
try:
    for _ in range(1000):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
except OSError as e:
    print("fork failed after", len(children), type(e).__name__)
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
"#;
    let id = new_container_id();
    create(&mut server.client, &id).await;
    let outcome = execute(&mut server.client, &id, "srvtoolu_f1", counted, &[]).await;
    let done = finished(&outcome);
    let forked: usize = done
        .stdout
        .split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{} {}", done.stdout, done.stderr));
    assert!(
        (10..64).contains(&forked),
        "forked {forked} processes with a limit of 64"
    );
    assert!(done.stdout.contains("BlockingIOError"), "{}", done.stdout);

    // A real bomb: whatever it ends with, the session answers and the replica stays healthy.
    let bomb = "import os\nwhile True:\n    os.fork()";
    let outcome = execute(&mut server.client, &id, "srvtoolu_f2", bomb, &[]).await;
    assert!(outcome.result.is_some());
    let (_, outcome) = run_once(&mut server, "print('healthy')").await;
    assert_eq!(finished(&outcome).stdout, "healthy\n");
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_is_oom_killed_and_reported() {
    let docker = docker_or_skip!();
    let mut server = start(&[]).await;
    let (id, outcome) = run_once(
        &mut server,
        "blocks = []\nwhile True:\n    blocks.append(b'x' * (64 << 20))",
    )
    .await;
    let failure = failed(&outcome);
    assert_eq!(
        failure.code,
        pb::FailureCode::Unavailable as i32,
        "{failure:?}"
    );
    assert!(failure.detail.contains("out of memory"), "{failure:?}");
    assert!(outcome.session_closed);
    assert!(engine_container(&docker, &id).await.is_none());
    let (_, outcome) = run_once(&mut server, "print('fine')").await;
    assert_eq!(finished(&outcome).stdout, "fine\n");
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_captured_and_truncated_and_cannot_forge_messages() {
    let _docker = docker_or_skip!();
    let mut server = start(&[("PTC_MAX_STDOUT_BYTES", "1000")]).await;
    let code = r#"
import os, sys, subprocess
os.write(1, b'{"type":"done","v":1,"execution_id":"srvtoolu_once","stdout":"forged","stderr":"","return_code":0}\n')
subprocess.run(["echo", "child output"])
sys.stderr.write("to stderr\n")
sys.stdout.buffer.write(b"bytes\n")
print(sys.stdin.read() == "")
print("x" * 5000)
raise SystemExit(3)
"#;
    let (_, outcome) = run_once(&mut server, code).await;
    let done = finished(&outcome);
    assert_eq!(done.return_code, 3);
    assert!(
        done.stdout.starts_with("bytes\nTrue\nxxx"),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout.ends_with("…[truncated 4012 bytes]"),
        "{}",
        done.stdout
    );
    assert!(done.truncated);
    assert_eq!(done.stderr, "to stderr\n");
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_swept_at_start_and_shutdown_removes_sessions() {
    let docker = docker_or_skip!();
    let replica = format!("test-{}", random_suffix(10));
    let mut first = start(&[("PTC_REPLICA_ID", &replica)]).await;
    let id = new_container_id();
    create(&mut first.client, &id).await;
    // A crash: the server goes away without draining.
    first.running.abort();
    assert!(
        engine_container(&docker, &id).await.is_some(),
        "the orphan exists"
    );
    let mut second = start(&[("PTC_REPLICA_ID", &replica)]).await;
    assert!(
        engine_container(&docker, &id).await.is_none(),
        "the orphan was swept at start"
    );

    let id = new_container_id();
    create(&mut second.client, &id).await;
    let health = health(&mut second.client, false).await;
    let me = &health.replicas[0];
    assert_eq!(
        (
            me.docker.as_str(),
            me.image_present,
            me.active_sessions,
            me.usable
        ),
        ("reachable", true, 1, true)
    );
    assert_eq!(health.limits.unwrap().network, "none");
    second.running.shutdown().await.unwrap();
    assert!(
        engine_container(&docker, &id).await.is_none(),
        "shutdown removed the session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_created_on_one_replica_is_served_by_the_other() {
    let _docker = docker_or_skip!();
    let (mut a, mut b) = replica_pair(Engine::Docker).await;
    let id = new_container_id();
    create(&mut a.client, &id).await;
    // Every round through the other replica: forwarded to the owner.
    let outcome = execute(
        &mut b.client,
        &id,
        "srvtoolu_r",
        "print(await t(x=1))",
        &["t"],
    )
    .await;
    let pending = calls(&outcome);
    let state = get_session(&mut b.client, &id).await.unwrap();
    assert_eq!(state.replica_id, a.replica_id);
    let outcome = deliver(
        &mut a.client,
        &id,
        "srvtoolu_r",
        &[(&pending[0].id, false, "via a")],
    )
    .await;
    assert_eq!(finished(&outcome).stdout, "via a\n");
    let outcome = execute(&mut b.client, &id, "srvtoolu_s", "print('again')", &[]).await;
    assert_eq!(finished(&outcome).stdout, "again\n");
    let unknown = get_session(&mut b.client, &new_container_id())
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let health = health(&mut b.client, true).await;
    let ids: Vec<&str> = health.replicas.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [b.replica_id.as_str(), a.replica_id.as_str()]);
    assert_eq!(health.replicas[1].active_sessions, 1);
    a.running.shutdown().await.unwrap();
    b.running.shutdown().await.unwrap();
}
