//! A child process owned by a test: output captured to a log file (and scanned for a readiness
//! line), killed on drop, and killed by the kernel if the test process dies first (setpriv's
//! parent-death signal), so no run leaves servers behind.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running child; dropped means killed.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    log: PathBuf,
    lines: mpsc::Receiver<String>,
}

/// Output lines kept for `wait_for_line`; later lines go to the log only.
const SCAN_LINES: usize = 4096;

impl ChildProcess {
    /// Starts `program` with `args` and `env` (added to the inherited environment), writing its
    /// stdout and stderr to `<log_dir>/<name>.log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log_dir: &Path,
    ) -> Result<Self> {
        let mut command = match find_on_path("setpriv") {
            // The parent-death signal belongs to the spawning thread: tests keep theirs alive for
            // as long as the stack, and Drop kills children anyway.
            Some(setpriv) => {
                let mut command = Command::new(setpriv);
                command.args(["--pdeathsig", "KILL", "--"]).arg(program);
                command
            }
            None => Command::new(program),
        };
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        let log = log_dir.join(format!("{name}.log"));
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let (tx, lines) = mpsc::sync_channel(SCAN_LINES);
        if let Some(stdout) = child.stdout.take() {
            tee(stdout, file.try_clone()?, tx.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            tee(stderr, file, tx);
        }
        Ok(Self {
            name: name.to_string(),
            child,
            log,
            lines,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Fails (with the log tail) if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status})\n{}", self.name, self.log_tail(60));
        }
        Ok(())
    }

    /// Waits (without blocking the runtime) until an output line contains `marker`; returns the
    /// rest of that line.
    pub async fn wait_for_line(&mut self, marker: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.lines.try_recv() {
                Ok(line) => {
                    if let Some((_, rest)) = line.split_once(marker) {
                        return Ok(rest.trim().to_string());
                    }
                    continue;
                }
                Err(mpsc::TryRecvError::Empty) => self.check_running()?,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.check_running()?;
                    bail!("{} closed its output before printing `{marker}`", self.name);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not print `{marker}` within {timeout:?}\n{}",
                    self.name,
                    self.log_tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(n);
        format!(
            "----- {} ({}) -----\n{}",
            self.name,
            self.log.display(),
            lines[start..].join("\n")
        )
    }

    /// SIGTERM, then up to `grace` for it to exit (a service that cleans up after itself, like
    /// ptc-svc removing its containers); SIGKILL after that.
    pub fn terminate(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.kill();
    }

    /// Kills the process and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies `stream` to `file` line by line and offers each line to the readiness scan.
fn tee(stream: impl Read + Send + 'static, mut file: File, lines: mpsc::SyncSender<String>) {
    std::thread::spawn(move || {
        let mut scan = true;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if writeln!(file, "{line}").is_err() {
                break;
            }
            // Nobody reading (full) or nobody left (closed): stop offering lines.
            if scan && lines.try_send(line).is_err() {
                scan = false;
            }
        }
    });
}

/// Finds `name` on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
