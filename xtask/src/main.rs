//! `cargo xtask`: the gateway's chores in typed Rust instead of shell scripts. This file only parses
//! the command line and dispatches; each command lives in its own module.
// A command-line tool talks to its user on stdout/stderr; the workspace denies printing only so
// that services log through tracing.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod cmd;
mod cpu;
mod deploy_check;
mod gateway;
mod load;
mod stack;
mod test;
mod tools;
mod up;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  up [--fake-bedrock] [--release] [--port N]
        build everything and run the gateway on 127.0.0.1:8080 (Ctrl-C stops it);
        --fake-bedrock also starts the fake Bedrock and points translator-svc at it
  test [-- <args for cargo nextest run / cargo test>]
        install test prerequisites, build the filter, run the whole workspace test suite
  bench [--seconds N] [--concurrency 1,32] [--no-rate-limit] [--debug] [--no-build]
        added latency and CPU per request of the whole gateway chain (Envoy + filter + rate
        limit + translator) over a direct call to the fake Bedrock
  lint  cargo fmt --check and cargo clippy --all-targets -D warnings
  deploy-check
        validate compose, k8s, Envoy configs and Dockerfiles (BLESS=1 re-renders the generated Envoy configs)
  ci-setup
        install the prerequisites only (wasm target, Envoy + Python venv, Node clients)
";

/// The parsed command line.
enum Command {
    Up(up::UpOptions),
    Test { passthrough: Vec<String> },
    Bench(bench::BenchOptions),
    Lint,
    DeployCheck,
    CiSetup,
    Help,
}

fn parse(args: &[String]) -> Result<Command> {
    let Some((command, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
    match command.as_str() {
        "up" => {
            let mut options = up::UpOptions::default();
            let mut it = rest.iter();
            while let Some(arg) = it.next() {
                match arg.as_str() {
                    "--fake-bedrock" => options.fake_bedrock = true,
                    "--release" => options.release = true,
                    "--port" => {
                        let value = it.next().context("--port needs a value")?;
                        options.port = value.parse().context("--port must be a port number")?;
                    }
                    other => bail!("unknown option for up: {other}\n\n{USAGE}"),
                }
            }
            Ok(Command::Up(options))
        }
        "test" => {
            let passthrough = match rest.split_first() {
                None => Vec::new(),
                Some((dashes, tail)) if dashes == "--" => tail.to_vec(),
                Some(_) => rest.to_vec(),
            };
            Ok(Command::Test { passthrough })
        }
        "bench" => {
            let mut options = bench::BenchOptions::default();
            let mut it = rest.iter();
            while let Some(arg) = it.next() {
                match arg.as_str() {
                    "--seconds" => {
                        let value = it.next().context("--seconds needs a value")?;
                        options.seconds = value.parse().context("--seconds must be a number")?;
                    }
                    "--concurrency" => {
                        let value = it.next().context("--concurrency needs a value")?;
                        options.concurrency = value
                            .split(',')
                            .map(|n| n.trim().parse::<usize>().ok().filter(|&n| n > 0))
                            .collect::<Option<Vec<_>>>()
                            .filter(|list| !list.is_empty())
                            .context("--concurrency must be a list like 1,32")?;
                    }
                    "--no-rate-limit" => options.rate_limit = false,
                    "--no-build" => options.no_build = true,
                    "--debug" => options.release = false,
                    other => bail!("unknown option for bench: {other}\n\n{USAGE}"),
                }
            }
            Ok(Command::Bench(options))
        }
        "lint" => Ok(Command::Lint),
        "deploy-check" => Ok(Command::DeployCheck),
        "ci-setup" => Ok(Command::CiSetup),
        "help" | "--help" | "-h" => Ok(Command::Help),
        other => bail!("unknown command: {other}\n\n{USAGE}"),
    }
}

fn run(command: Command) -> Result<()> {
    let root = tools::workspace_root();
    match command {
        Command::Up(options) => up::run(&root, options),
        Command::Test { passthrough } => test::run(&root, &passthrough),
        Command::Bench(options) => bench::run(&root, options),
        Command::Lint => test::lint(&root),
        Command::DeployCheck => deploy_check::run(&root),
        Command::CiSetup => tools::ensure_test_tools(&root).map(|_| ()),
        Command::Help => {
            print!("{USAGE}");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // `cargo xtask` runs us as cargo's child and does not pass signals on: if cargo goes away,
    // terminate us too, so `up` still stops its own children cleanly.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
