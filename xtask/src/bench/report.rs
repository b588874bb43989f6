//! The bench report: latency per scenario, the latency the gateway adds over a direct call, the
//! CPU time each process spent per request, and resident memory.

use crate::cpu::Watched;
use crate::load::{LoadResult, quantile_ms};
use crate::stack::rss_kib;

use super::BenchOptions;

pub const DIRECT: &str = "direct fake Bedrock";
pub const PASSTHROUGH: &str = "plain Envoy passthrough";
pub const GATEWAY: &str = "gateway (whole chain)";

/// Processes that are the gateway (everything but the fake, the passthrough and the client).
const GATEWAY_PROCESSES: [&str; 4] = ["envoy", "translator", "ratelimit", "redis"];

pub struct Row {
    pub name: &'static str,
    pub stream: bool,
    pub concurrency: usize,
    pub result: LoadResult,
    /// CPU µs per request of each watched process, in `watched` order.
    pub cpu_us: Vec<Option<f64>>,
}

impl Row {
    /// CPU µs per request summed over the named processes.
    fn cpu_of(&self, watched: &[Watched], names: &[&str]) -> f64 {
        watched
            .iter()
            .zip(&self.cpu_us)
            .filter(|(w, _)| names.contains(&w.name))
            .filter_map(|(_, us)| *us)
            .sum()
    }
}

pub struct Setup<'a> {
    pub options: &'a BenchOptions,
    pub rate_limit_store: Option<&'static str>,
    pub watched: &'a [Watched],
}

pub fn print_report(rows: &[Row], setup: &Setup<'_>) {
    let options = setup.options;
    println!(
        "\nBench: {} s per scenario after 1 s warm-up, {} build, {} cores shared by client and servers.",
        options.seconds,
        if options.release { "release" } else { "debug" },
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    match setup.rate_limit_store {
        Some(store) => println!(
            "Chain: Envoy (gate filter, global rate limit -> ratelimit-svc on {store}) -> translator-svc -> fake Bedrock."
        ),
        None => {
            println!("Chain: Envoy (gate filter, no rate limit) -> translator-svc -> fake Bedrock.")
        }
    }
    println!(
        "{:<26} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "target", "stream", "conc", "req/s", "p50 ms", "p99 ms", "ttfb p50", "ttfb p99", "errors"
    );
    for row in rows {
        let r = &row.result;
        println!(
            "{:<26} {:>6} {:>5} {:>8.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>6}",
            row.name,
            if row.stream { "yes" } else { "no" },
            row.concurrency,
            r.requests_per_second(),
            quantile_ms(&r.total, 0.50),
            quantile_ms(&r.total, 0.99),
            quantile_ms(&r.ttfb, 0.50),
            quantile_ms(&r.ttfb, 0.99),
            r.errors,
        );
        if let Some(error) = &r.first_error {
            println!("    first error: {error}");
        }
    }
    print_added_latency(rows);
    print_cpu(rows, setup.watched);
    println!("\nResident memory after the run (VmRSS):");
    for watched in setup.watched {
        match rss_kib(watched.pid) {
            Some(kib) => println!("  {:<12} {:>8.1} MiB", watched.name, kib as f64 / 1024.0),
            None => println!("  {:<12} (gone)", watched.name),
        }
    }
}

fn print_added_latency(rows: &[Row]) {
    println!(
        "\nAdded by the gateway over the direct call (non-stream: total latency; stream: time to first byte):"
    );
    for row in rows.iter().filter(|r| r.name == GATEWAY) {
        let find = |name: &str| {
            rows.iter().find(|r| {
                r.name == name && r.stream == row.stream && r.concurrency == row.concurrency
            })
        };
        let (Some(direct), Some(envoy)) = (find(DIRECT), find(PASSTHROUGH)) else {
            continue;
        };
        let pick = |r: &LoadResult, p| {
            if row.stream {
                quantile_ms(&r.ttfb, p)
            } else {
                quantile_ms(&r.total, p)
            }
        };
        println!(
            "  {:<10} conc {:>2}: gateway +{:.3} ms p50, +{:.3} ms p99   (plain Envoy +{:.3} ms p50, +{:.3} ms p99)",
            if row.stream { "stream" } else { "non-stream" },
            row.concurrency,
            pick(&row.result, 0.50) - pick(&direct.result, 0.50),
            pick(&row.result, 0.99) - pick(&direct.result, 0.99),
            pick(&envoy.result, 0.50) - pick(&direct.result, 0.50),
            pick(&envoy.result, 0.99) - pick(&direct.result, 0.99),
        );
    }
}

/// CPU per request: unlike latency, it barely moves when other work shares the machine, and on
/// a small machine it is what bounds latency once requests overlap.
fn print_cpu(rows: &[Row], watched: &[Watched]) {
    println!(
        "\nCPU time per request in µs (user + system, /proc/<pid>/stat, over the measured window and the work it queued):"
    );
    let mut header = format!("{:<26} {:>6} {:>5}", "target", "stream", "conc");
    for w in watched {
        header.push_str(&format!(" {:>10}", w.name));
    }
    header.push_str(&format!(" {:>10}", "gateway"));
    println!("{header}");
    for row in rows {
        let mut line = format!(
            "{:<26} {:>6} {:>5}",
            row.name,
            if row.stream { "yes" } else { "no" },
            row.concurrency
        );
        for us in &row.cpu_us {
            match us {
                Some(us) => line.push_str(&format!(" {us:>10.1}")),
                None => line.push_str(&format!(" {:>10}", "-")),
            }
        }
        let gateway = if row.name == GATEWAY {
            format!("{:>10.1}", row.cpu_of(watched, &GATEWAY_PROCESSES))
        } else {
            format!("{:>10}", "")
        };
        line.push_str(&format!(" {gateway}"));
        println!("{line}");
    }
    println!(
        "  gateway = {} (what the gateway itself spends; the fake and the client are the same work in every row;",
        GATEWAY_PROCESSES.join(" + ")
    );
    println!(
        "  client = the load generator plus the log collector of every child). With every process on the same"
    );
    println!(
        "  cores, closed-loop latency at concurrency N is about N x (total CPU per request) / cores: at 32 the"
    );
    println!("  added latency is queueing for CPU, and CPU per request is what lowers it.");
}
