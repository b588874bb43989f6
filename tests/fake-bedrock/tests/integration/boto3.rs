//! boto3 as a second client: runs `boto3_check.py` against an in-process fake. In CI (`CI=true`) a
//! missing Python or boto3 fails the test instead of skipping it.

use std::path::PathBuf;

use fake_bedrock::FakeBedrock;

fn python() -> PathBuf {
    std::env::var_os("GATEWAY_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"),
        PathBuf::from,
    )
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

#[tokio::test]
async fn boto3_accepts_every_operation() {
    let python = python();
    let has_boto3 = tokio::process::Command::new(&python)
        .args(["-c", "import boto3"])
        .output()
        .await
        .is_ok_and(|out| out.status.success());
    if !has_boto3 {
        assert!(
            !in_ci(),
            "CI=true but {} with boto3 is missing (set GATEWAY_PYTHON)",
            python.display()
        );
        eprintln!(
            "skipping: {} with boto3 not found (set GATEWAY_PYTHON)",
            python.display()
        );
        return;
    }
    let fake = FakeBedrock::start().await.expect("fake starts");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("boto3_check.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(fake.url())
        .kill_on_drop(true)
        .output()
        .await
        .expect("script runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "boto3 check failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("boto3 checks passed"), "{stdout}");
    assert!(
        fake.requests().len() >= 12,
        "the script really called the fake"
    );
}
