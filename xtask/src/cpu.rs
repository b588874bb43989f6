//! CPU time per process for `bench`: user + system time of every thread (alive or exited) from
//! `/proc/<pid>/stat`, sampled before and after a measured window. CPU per request does not move
//! when other work competes for the cores, unlike latency, and on a small machine it is what
//! bounds latency under load.

use std::time::Duration;

/// One process whose CPU time the bench reports.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    pub name: &'static str,
    pub pid: u32,
}

/// CPU time consumed so far by each watched process, in the same order (`None`: gone).
#[derive(Debug, Clone)]
pub struct Snapshot(Vec<Option<Duration>>);

/// `utime + stime` of `pid` (all its threads, exited ones included).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// The part after the command name (which may itself hold spaces and parentheses) starts with
/// field 3 (`state`); `utime` and `stime` are fields 14 and 15, in clock ticks.
fn parse_stat(stat: &str) -> Option<Duration> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks_per_second = rustix::param::clock_ticks_per_second().max(1);
    let ticks = utime.saturating_add(stime);
    Some(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / ticks_per_second,
    ))
}

pub fn snapshot(watched: &[Watched]) -> Snapshot {
    Snapshot(watched.iter().map(|w| cpu_time(w.pid)).collect())
}

/// How often `settle` samples, and the CPU per sample below which the processes count as idle
/// (2 % of one core: timers and health checks, no request work).
const SETTLE_SAMPLE: Duration = Duration::from_millis(100);
const IDLE_PER_SAMPLE: Duration = Duration::from_millis(2);

/// Waits (at most `max`) until the watched processes other than `except` are idle, then returns
/// a snapshot. Work a scenario leaves queued (usage writes are asynchronous) is then charged to
/// that scenario, not to the next one.
pub async fn settle(watched: &[Watched], except: u32, max: Duration) -> Snapshot {
    let deadline = tokio::time::Instant::now() + max;
    let mut previous = snapshot(watched);
    loop {
        tokio::time::sleep(SETTLE_SAMPLE).await;
        let current = snapshot(watched);
        let busy: Duration = watched
            .iter()
            .zip(previous.0.iter().zip(&current.0))
            .filter(|(w, _)| w.pid != except)
            .filter_map(|(_, (before, after))| Some(after.as_ref()?.saturating_sub((*before)?)))
            .sum();
        if busy < IDLE_PER_SAMPLE || tokio::time::Instant::now() >= deadline {
            return current;
        }
        previous = current;
    }
}

/// Microseconds of CPU per request of each watched process between two snapshots.
pub fn per_request_us(before: &Snapshot, after: &Snapshot, requests: u64) -> Vec<Option<f64>> {
    before
        .0
        .iter()
        .zip(&after.0)
        .map(|(before, after)| {
            let (Some(before), Some(after)) = (before, after) else {
                return None;
            };
            if requests == 0 {
                return None;
            }
            let spent = after.saturating_sub(*before);
            Some(spent.as_secs_f64() * 1e6 / requests as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_past_an_awkward_name() {
        let ticks = rustix::param::clock_ticks_per_second();
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 10 0 0";
        let want = Duration::from_nanos(300 * 1_000_000_000 / ticks);
        assert_eq!(parse_stat(stat), Some(want));
        assert_eq!(parse_stat("42 (x) S 1"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time_and_differences_are_per_request() {
        assert!(cpu_time(std::process::id()).is_some());
        let before = Snapshot(vec![Some(Duration::from_millis(10)), None]);
        let after = Snapshot(vec![Some(Duration::from_millis(30)), Some(Duration::ZERO)]);
        let us = per_request_us(&before, &after, 100);
        assert_eq!(us.len(), 2);
        assert!((us[0].unwrap() - 200.0).abs() < 1e-9);
        assert_eq!(us[1], None);
        assert_eq!(per_request_us(&before, &after, 0)[0], None);
    }
}
