//! A small closed-loop load generator for `bench`: `concurrency` workers send the same request
//! back to back for a fixed time and record total latency and time to first body byte. Bounded
//! in time; asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use reqwest::header::HeaderMap;

/// One request, sent again and again.
#[derive(Clone)]
pub struct Probe {
    pub url: String,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

/// What a run measured.
pub struct LoadResult {
    pub total: Vec<Duration>,
    pub ttfb: Vec<Duration>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

impl LoadResult {
    pub fn requests_per_second(&self) -> f64 {
        self.total.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Every request answered in the window, failed ones included (they cost CPU too).
    pub fn requests(&self) -> u64 {
        self.total.len() as u64 + self.errors
    }
}

/// The `p` quantile (0..=1) of sorted samples, in milliseconds.
pub fn quantile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

struct Sample {
    total: Duration,
    ttfb: Duration,
}

async fn send_once(client: &reqwest::Client, probe: &Probe) -> Result<Sample, String> {
    let start = Instant::now();
    let mut response = client
        .post(&probe.url)
        .headers(probe.headers.clone())
        .body(probe.body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let mut ttfb = None;
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if ttfb.is_none() && !chunk.is_empty() {
            ttfb = Some(start.elapsed());
        }
    }
    let total = start.elapsed();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    Ok(Sample {
        total,
        ttfb: ttfb.unwrap_or(total),
    })
}

/// A closed-loop load: `concurrency` workers sharing one connection pool, so a warm-up run and
/// the measured run that follows it use the same (already open) connections.
pub struct Load {
    client: reqwest::Client,
    concurrency: usize,
}

impl Load {
    pub fn new(concurrency: usize) -> Result<Self> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            client,
            concurrency,
        })
    }

    /// Sends `probe` back to back from every worker for `duration`, recording every answer.
    pub async fn run(&self, probe: &Probe, duration: Duration) -> Result<LoadResult> {
        let probe = Arc::new(probe.clone());
        let started = Instant::now();
        let end = started + duration;
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.concurrency {
            let client = self.client.clone();
            let probe = Arc::clone(&probe);
            workers.spawn(async move {
                let mut samples = Vec::new();
                let mut errors = 0u64;
                let mut first_error = None;
                while Instant::now() < end {
                    match send_once(&client, &probe).await {
                        Ok(sample) => samples.push(sample),
                        Err(error) => {
                            errors += 1;
                            first_error.get_or_insert(error);
                        }
                    }
                }
                (samples, errors, first_error)
            });
        }
        let mut result = LoadResult {
            total: Vec::new(),
            ttfb: Vec::new(),
            errors: 0,
            first_error: None,
            elapsed: duration,
        };
        while let Some(joined) = workers.join_next().await {
            let (samples, errors, first_error) = joined?;
            result.errors += errors;
            if result.first_error.is_none() {
                result.first_error = first_error;
            }
            for sample in samples {
                result.total.push(sample.total);
                result.ttfb.push(sample.ttfb);
            }
        }
        result.elapsed = started.elapsed();
        result.total.sort_unstable();
        result.ttfb.sort_unstable();
        Ok(result)
    }
}
