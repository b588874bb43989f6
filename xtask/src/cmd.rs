//! Running external commands (cargo, rustup, pip, npm) in the foreground: echo them, check the
//! exit status, capture output when asked. Nothing long-running lives here (see `stack`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Echoes `command` the way a shell user would type it.
fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `command` with inherited stdio and fails unless it exits 0.
pub fn run(command: &mut Command) -> Result<()> {
    let text = describe(command);
    eprintln!("xtask: $ {text}");
    let status = command
        .status()
        .with_context(|| format!("could not start `{text}`"))?;
    if !status.success() {
        bail!("`{text}` failed ({status})");
    }
    Ok(())
}

/// Runs `command` quietly and returns its stdout (stderr appended on failure).
pub fn output(command: &mut Command) -> Result<String> {
    let text = describe(command);
    let out = command
        .output()
        .with_context(|| format!("could not start `{text}`"))?;
    if !out.status.success() {
        bail!(
            "`{text}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `cargo` as started by `cargo xtask` (the `CARGO` variable), so the same toolchain builds.
pub fn cargo(root: &Path) -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    command.current_dir(root);
    command
}

/// Finds `name` on `PATH`.
pub fn which(name: impl AsRef<OsStr>) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name.as_ref()))
        .find(|candidate| candidate.is_file())
}
