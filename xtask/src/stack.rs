//! Running the gateway's processes for `up` and `bench`: spawn each child with its environment,
//! tee its output to `<data>/logs/<name>.log` (and the terminal), wait for readiness, stop them
//! all on request. Children get a parent-death signal, so they also die if xtask itself is killed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::cmd;

/// How stale a child's log file may be (`log_tail` reads it when a child dies).
const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// One process to start.
pub struct Spawn {
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
}

struct Managed {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// Every child this xtask started, in start order.
pub struct Supervisor {
    children: Vec<Managed>,
    log_dir: PathBuf,
    echo: bool,
    http: reqwest::Client,
}

impl Supervisor {
    /// `echo`: also print each child's output on the terminal, prefixed with its name.
    pub fn new(log_dir: &Path, echo: bool) -> Result<Self> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        Ok(Self {
            children: Vec::new(),
            log_dir: log_dir.to_path_buf(),
            echo,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()?,
        })
    }

    /// Starts a child; returns its pid and a channel of its output lines (drop it when not needed).
    ///
    /// Must be called from the thread that lives as long as xtask (the runtime's `block_on`
    /// thread): the parent-death signal fires when the spawning thread exits.
    pub fn spawn(&mut self, spec: Spawn) -> Result<(u32, mpsc::UnboundedReceiver<String>)> {
        let mut command = match cmd::which("setpriv") {
            Some(setpriv) => {
                let mut command = Command::new(setpriv);
                command
                    .args(["--pdeathsig", "KILL", "--"])
                    .arg(&spec.program);
                command
            }
            None => Command::new(&spec.program),
        };
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {} ({})", spec.name, spec.program.display()))?;
        let pid = child.id().context("child exited at once")?;
        let log = self.log_dir.join(format!("{}.log", spec.name));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let (lines_tx, lines_rx) = mpsc::unbounded_channel();
        let (file_tx, file_rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(write_log(tokio::fs::File::from_std(file), file_rx));
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(pump(
                stdout,
                spec.name,
                self.echo,
                file_tx.clone(),
                lines_tx.clone(),
            ));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(pump(stderr, spec.name, self.echo, file_tx, lines_tx));
        }
        self.children.push(Managed {
            name: spec.name,
            child,
            log,
        });
        Ok((pid, lines_rx))
    }

    /// Fails with the child's last log lines if any child has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some((name, status)) = self.exited()? {
            bail!("{name} exited ({status})\n{}", self.log_tail(name));
        }
        Ok(())
    }

    /// The first child found exited, if any.
    pub fn exited(&mut self) -> Result<Option<(&'static str, ExitStatus)>> {
        for managed in &mut self.children {
            if let Some(status) = managed.child.try_wait()? {
                return Ok(Some((managed.name, status)));
            }
        }
        Ok(None)
    }

    /// The last lines `name` wrote, for error messages.
    pub fn log_tail(&self, name: &str) -> String {
        let Some(managed) = self.children.iter().find(|m| m.name == name) else {
            return String::new();
        };
        let text = std::fs::read_to_string(&managed.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(60);
        format!(
            "--- last lines of {} ---\n{}",
            managed.log.display(),
            lines[start..].join("\n")
        )
    }

    /// Polls `url` until it answers 200, failing early if a child dies.
    pub async fn wait_http_ok(&mut self, what: &str, url: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if let Ok(response) = self.http.get(url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{what} not ready at {url} after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for an output line containing `marker` and returns the text after it.
    pub async fn wait_line(
        &mut self,
        lines: &mut mpsc::UnboundedReceiver<String>,
        marker: &str,
        timeout: Duration,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            match tokio::time::timeout(Duration::from_millis(200), lines.recv()).await {
                Ok(Some(line)) => {
                    if let Some((_, rest)) = line.split_once(marker) {
                        return Ok(rest.trim().to_string());
                    }
                }
                Ok(None) => bail!("output closed before `{marker}`"),
                Err(_elapsed) => {}
            }
            if Instant::now() > deadline {
                bail!("no `{marker}` line after {timeout:?}");
            }
        }
    }

    /// Resolves when any child exits; returns its name and status.
    pub async fn any_exit(&mut self) -> Result<(&'static str, ExitStatus)> {
        loop {
            if let Some(found) = self.exited()? {
                return Ok(found);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM to every child (newest first), then SIGKILL whoever is still up after `grace`.
    pub async fn shutdown(&mut self, grace: Duration) {
        for managed in self.children.iter().rev() {
            if let Some(pid) = managed.child.id() {
                terminate(pid);
            }
        }
        let deadline = Instant::now() + grace;
        for managed in self.children.iter_mut().rev() {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, managed.child.wait())
                .await
                .is_err()
            {
                eprintln!("xtask: {} ignored SIGTERM, killing it", managed.name);
                let _ = managed.child.kill().await;
            }
        }
    }
}

fn terminate(pid: u32) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        // The child may be gone already; that is what we wanted.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

/// Copies a child's output lines to its log, the terminal and the readiness channel.
async fn pump(
    stream: impl AsyncRead + Unpin,
    name: &'static str,
    echo: bool,
    file: mpsc::UnboundedSender<String>,
    lines: mpsc::UnboundedSender<String>,
) {
    let mut reader = BufReader::new(stream).lines();
    let mut tap_open = true;
    while let Ok(Some(line)) = reader.next_line().await {
        if echo {
            eprintln!("{name:>12} | {line}");
        }
        if tap_open && lines.send(line.clone()).is_err() {
            tap_open = false;
        }
        if file.send(line).is_err() {
            break;
        }
    }
}

/// Buffered, flushed every `LOG_FLUSH_INTERVAL` and at the end: a write and flush per line costs
/// two blocking-pool round trips, which under `bench` load (a few log lines per request) took as
/// much CPU as a gateway service, on the cores the services being measured run on.
async fn write_log(file: tokio::fs::File, mut lines: mpsc::UnboundedReceiver<String>) {
    let mut file = tokio::io::BufWriter::with_capacity(64 * 1024, file);
    let mut flush = tokio::time::interval(LOG_FLUSH_INTERVAL);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(mut line) = line else { break };
                line.push('\n');
                if file.write_all(line.as_bytes()).await.is_err() {
                    return;
                }
            }
            _ = flush.tick() => {
                if file.flush().await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = file.flush().await;
}

/// Reads the RSS of a process from `/proc/<pid>/status`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}
