//! The built binary: bad settings exit with a message naming the variable; a good start logs its
//! addresses, serves, and exits 0 on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ratelimit-svc");

fn run_with(vars: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(BIN)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("run binary");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_values_exit_with_the_variable_named() {
    let invalid_rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/limits/invalid/bad_unit.yaml"
    );
    for (variable, value) in [
        ("RATELIMIT_FAILURE_MODE", "sometimes"),
        ("RATELIMIT_LISTEN", "nowhere"),
        ("REDIS_URL", "ftp://x"),
        ("RATELIMIT_CONFIG", "/nonexistent/limits.yaml"),
        ("RATELIMIT_CONFIG", invalid_rules),
        ("LOG_LEVEL", "info,[broken"),
    ] {
        let (ok, stderr) = run_with(&[
            (variable, value),
            (
                "RATELIMIT_LISTEN",
                if variable == "RATELIMIT_LISTEN" {
                    value
                } else {
                    "127.0.0.1:0"
                },
            ),
            ("RATELIMIT_HTTP_LISTEN", "127.0.0.1:0"),
        ]);
        assert!(!ok, "{variable}={value} should fail");
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

#[test]
fn starts_serves_and_stops_on_sigterm() {
    let mut child = Command::new(BIN)
        .env_clear()
        .env("RATELIMIT_LISTEN", "127.0.0.1:0")
        .env("RATELIMIT_HTTP_LISTEN", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let http_addr = loop {
        let line = lines.next().expect("a log line").expect("utf-8");
        let json: serde_json::Value = serde_json::from_str(&line).expect("json log line");
        if let Some(addr) = json["http_addr"].as_str() {
            break addr.to_owned();
        }
    };
    let health = http_get::blocking_get(&format!("http://{http_addr}/health"));
    assert_eq!(health, 200);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = std::time::Instant::now();
    loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            assert!(exit.success(), "exit status {exit}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A plain HTTP/1.1 GET returning the status code, without an async runtime.
mod http_get {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    pub fn blocking_get(url: &str) -> u16 {
        let rest = url.strip_prefix("http://").expect("http url");
        let (host, path) = rest.split_once('/').map_or((rest, "/"), |(h, p)| (h, p));
        let mut stream = TcpStream::connect(host).expect("connect");
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("status line")
    }
}
