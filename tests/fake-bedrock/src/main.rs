//! `fake-bedrock` binary: serves the fake on `--listen ADDR` (default `127.0.0.1:0`), prints one
//! `fake-bedrock listening on http://ADDR` line, and runs until SIGTERM or Ctrl-C.
//! `--record-limit N` bounds the recorded requests (0 for load tests).

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use fake_bedrock::FakeBedrock;
use tracing_subscriber::EnvFilter;

/// Command-line options.
struct Args {
    listen: SocketAddr,
    record_limit: usize,
}

const USAGE: &str = "usage: fake-bedrock [--listen 127.0.0.1:0] [--record-limit N]";

fn args() -> anyhow::Result<Args> {
    let mut parsed = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        record_limit: fake_bedrock::DEFAULT_RECORD_LIMIT,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, value) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => {
                let value = args
                    .next()
                    .with_context(|| format!("{arg} needs a value; {USAGE}"))?;
                (arg, value)
            }
        };
        match name.as_str() {
            "--listen" => {
                parsed.listen = value
                    .parse()
                    .with_context(|| format!("--listen {value:?} is not an address"))?;
            }
            "--record-limit" => {
                parsed.record_limit = value
                    .parse()
                    .with_context(|| format!("--record-limit {value:?} is not a number"))?;
            }
            _ => anyhow::bail!("unknown argument {name:?}; {USAGE}"),
        }
    }
    Ok(parsed)
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = args()?;
    let fake = FakeBedrock::bind(args.listen).await?;
    fake.set_record_limit(args.record_limit);
    // The listen line is this binary's interface: launchers read it to learn the port.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "fake-bedrock listening on {}", fake.url())?;
    stdout.flush()?;
    drop(stdout);
    shutdown_signal().await?;
    drop(fake);
    Ok(())
}
