//! The metric catalogue (the reference table in docs/observability.md) and a reader for the
//! Prometheus text exposition. Shared by the tests that scrape each service and by the dashboard
//! check (included with `#[path]`: test support only, no crate of its own).
// Not every includer uses every helper.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

/// docs/observability.md, the one place where metric names and labels are listed.
pub const DOC: &str = include_str!("../../docs/observability.md");

/// One row of the reference table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// As exposed (counters with their `_total`; histograms without `_bucket`).
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: String,
    pub labels: BTreeSet<String>,
    /// `envoy`, `translator-svc`, `ratelimit-svc` or `ptc-svc`.
    pub service: String,
}

/// Every row of the table that starts with a backquoted metric name.
pub fn catalogue() -> Vec<Row> {
    DOC.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
            if cells.len() < 5 {
                return None;
            }
            let name = cells[0].trim().strip_prefix('`')?.strip_suffix('`')?;
            let labels = cells[2]
                .split(',')
                .map(|l| l.trim().trim_matches('`'))
                .filter(|l| !l.is_empty() && *l != "-")
                .map(str::to_owned)
                .collect();
            Some(Row {
                name: name.to_owned(),
                kind: cells[1].trim().to_owned(),
                labels,
                service: cells[3].trim().to_owned(),
            })
        })
        .collect()
}

pub fn rows_of(service: &str) -> Vec<Row> {
    catalogue()
        .into_iter()
        .filter(|r| r.service == service)
        .collect()
}

/// One sample line of the text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of a Prometheus (0.0.4) or OpenMetrics text exposition.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let end = loop {
            // label name
            while chars.peek().is_some_and(|(_, c)| *c == ',' || *c == ' ') {
                chars.next();
            }
            let (start, c) = *chars.peek()?;
            if c == '}' {
                break start + 1;
            }
            let mut label = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                label.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return None;
            }
            let mut value = String::new();
            let mut escaped = false;
            for (_, c) in chars.by_ref() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    (true, 'n') => {
                        value.push('\n');
                        escaped = false;
                    }
                    (_, c) => {
                        value.push(c);
                        escaped = false;
                    }
                }
            }
            labels.insert(label.trim().to_owned(), value);
        };
        rest = &after[end..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The sample names a catalogue row stands for.
fn series_names(row: &Row) -> Vec<String> {
    if row.kind == "histogram" {
        ["_bucket", "_sum", "_count"]
            .iter()
            .map(|suffix| format!("{}{suffix}", row.name))
            .collect()
    } else {
        vec![row.name.clone()]
    }
}

/// What is wrong with `text` against the catalogue rows of `service`: a metric missing, or
/// exposed with other label names than the table lists. Empty when all is well.
pub fn problems(service: &str, text: &str) -> Vec<String> {
    let samples = parse(text);
    let mut problems = Vec::new();
    let rows = rows_of(service);
    if rows.is_empty() {
        problems.push(format!("the catalogue lists nothing for {service}"));
    }
    for row in rows {
        let names = series_names(&row);
        let found: Vec<&Sample> = samples.iter().filter(|s| names.contains(&s.name)).collect();
        if found.is_empty() {
            problems.push(format!("{} ({}) is not exposed", row.name, row.kind));
            continue;
        }
        for sample in found {
            let labels: BTreeSet<String> = sample
                .labels
                .keys()
                .filter(|l| *l != "le")
                .cloned()
                .collect();
            if labels != row.labels {
                problems.push(format!(
                    "{} has labels {labels:?}, the catalogue says {:?}",
                    sample.name, row.labels
                ));
                break;
            }
        }
    }
    problems
}

/// Sum of the samples named `name` whose labels include every pair of `having`.
pub fn value(text: &str, name: &str, having: &[(&str, &str)]) -> f64 {
    parse(text)
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            having
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}
