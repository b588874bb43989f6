//! The host side of the runner: the embedded Python sources, the container command that injects
//! the runner through stdin (no bind mounts, no copy into the read-only root), and the protocol.

pub mod conn;
pub mod framing;
pub mod protocol;

use sha2::{Digest, Sha256};

/// The runner, embedded so the injected copy and the image copy (built from the same file) agree.
pub const RUNNER_SOURCE: &str = include_str!("../../runner/runner.py");
const BOOTSTRAP_TEMPLATE: &str = include_str!("../../runner/bootstrap.py");

/// Lowercase hex SHA-256 of [`RUNNER_SOURCE`]; the bootstrap refuses any other source.
pub fn runner_sha256() -> String {
    hex::encode(Sha256::digest(RUNNER_SOURCE.as_bytes()))
}

/// What the runner reports in its ready message: `<protocol>.<first 12 hex of its SHA-256>`.
pub fn runner_version() -> String {
    format!("{}.{}", protocol::PROTOCOL_VERSION, &runner_sha256()[..12])
}

/// The container command: an isolated interpreter (`-I`: no PYTHON* variables, no user site;
/// `-B`: no .pyc writes on the read-only root; `-u`: unbuffered) running the bootstrap.
pub fn container_command() -> Vec<String> {
    let bootstrap = BOOTSTRAP_TEMPLATE.replace("@RUNNER_SHA256@", &runner_sha256());
    ["python3", "-I", "-B", "-u", "-c"]
        .into_iter()
        .map(str::to_owned)
        .chain([bootstrap])
        .collect()
}

/// The bytes written to stdin right after start: `<length>\n<runner source>`.
pub fn injection_payload() -> Vec<u8> {
    let mut payload = format!("{}\n", RUNNER_SOURCE.len()).into_bytes();
    payload.extend_from_slice(RUNNER_SOURCE.as_bytes());
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_carries_the_runner_hash() {
        let command = container_command();
        assert_eq!(&command[..5], &["python3", "-I", "-B", "-u", "-c"]);
        assert!(command[5].contains(&runner_sha256()));
        assert!(!command[5].contains("@RUNNER_SHA256@"));
    }

    #[test]
    fn payload_is_length_prefixed() {
        let payload = injection_payload();
        let text = String::from_utf8(payload).unwrap();
        let (length, rest) = text.split_once('\n').unwrap();
        assert_eq!(length.parse::<usize>().unwrap(), rest.len());
        assert!(runner_version().starts_with("1."));
    }
}
