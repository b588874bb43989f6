//! The real ptc-svc binary as a child process, for the PTC tests (`cargo build -p ptc-svc`; it
//! runs the code on the Docker engine in image `gateway-ptc-sandbox:latest`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The ptc-svc binary as a child process, killed (by its own id) on drop.
pub struct PtcSvc {
    pub child: Child,
    /// Its gRPC endpoint, `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// `ptc.replica` label of its containers.
    pub replica: String,
}

impl Drop for PtcSvc {
    /// SIGTERM first: ptc-svc drains and removes its containers; SIGKILL only if it hangs.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..300 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skip_or_fail(reason: &str) -> Option<PtcSvc> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("PTC integration test cannot run: {reason}");
    }
    eprintln!("skipping PTC integration test: {reason}");
    None
}

fn ptc_binary() -> PathBuf {
    if let Ok(path) = std::env::var("PTC_SVC_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("debug/ptc-svc")
}

impl PtcSvc {
    /// Listening on a loopback port of its own, with `extra` settings; `None` (skip) without an
    /// engine or binary, a panic instead when `CI=true`.
    pub async fn start(extra: &[(&str, &str)]) -> Option<Self> {
        let docker = std::env::var("DOCKER_HOST").is_ok()
            || std::path::Path::new("/var/run/docker.sock").exists();
        if !docker {
            return skip_or_fail("no Docker engine (DOCKER_HOST or /var/run/docker.sock)");
        }
        let binary = ptc_binary();
        if !binary.exists() {
            return skip_or_fail(&format!(
                "{} missing: cargo build -p ptc-svc",
                binary.display()
            ));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let replica = format!("ptc-test-{}-{port}", std::process::id());
        let child = Command::new(binary)
            .env("PTC_LISTEN", format!("127.0.0.1:{port}"))
            .env("PTC_REPLICA_ID", &replica)
            .env("LOG_FORMAT", "text")
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let svc = PtcSvc {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            replica,
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(svc);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("ptc-svc did not start listening");
    }
}
