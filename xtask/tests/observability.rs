//! The observability files in docs/observability/ against the rest of the repository: every
//! metric the Grafana dashboard queries (and every label it filters on) is in the reference
//! table of docs/observability.md, which the service tests hold against the real `/metrics`;
//! both scrape configs are valid YAML with the four jobs, aimed at the names and ports that
//! compose and Kubernetes really use.
// Test code: a failed step fails the test by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tests/observability/catalogue.rs"]
mod catalogue;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_yaml::Value as Yaml;

const JOBS: [&str; 4] = ["envoy", "translator-svc", "ratelimit-svc", "ptc-svc"];
/// Metric name prefixes of this gateway (Envoy's own and the gate filter's included).
const PREFIXES: [&str; 5] = ["translator_", "ratelimit_", "ptc_", "gate_", "envoy_"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn yaml(relative: &str) -> Yaml {
    serde_yaml::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn exprs(dashboard: &Value, out: &mut Vec<String>) {
    match dashboard {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => exprs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// `(metric, label names in its selector)` for each metric a PromQL expression reads. Label
/// names inside `{...}`, `by (...)` and `without (...)` are not metrics.
fn metrics_in(expr: &str) -> Vec<(String, BTreeSet<String>)> {
    let mut found = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    while i < bytes.len() {
        if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += 1;
            }
            i += 1;
            continue;
        }
        if !is_ident(bytes[i]) || (i > 0 && is_ident(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        let word = &expr[start..i];
        let rest = expr[i..].trim_start();
        if matches!(word, "by" | "without") && rest.starts_with('(') {
            i += expr[i..].find(')').unwrap() + 1;
            continue;
        }
        if !PREFIXES.iter().any(|p| word.starts_with(p)) {
            continue;
        }
        let mut labels = BTreeSet::new();
        if rest.starts_with('{') {
            let open = i + expr[i..].find('{').unwrap();
            let close = open + expr[open..].find('}').unwrap();
            for matcher in split_matchers(&expr[open + 1..close]) {
                let name: String = matcher
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                labels.insert(name);
            }
            i = close + 1;
        }
        found.push((word.to_owned(), labels));
    }
    found
}

/// Matchers of a selector body, split on commas outside quotes.
fn split_matchers(body: &str) -> Vec<String> {
    let (mut parts, mut current, mut quoted) = (Vec::new(), String::new(), false);
    for c in body.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

#[test]
fn the_dashboard_queries_only_catalogued_metrics_and_labels() {
    let rows: BTreeMap<String, catalogue::Row> = catalogue::catalogue()
        .into_iter()
        .map(|row| (row.name.clone(), row))
        .collect();
    assert!(rows.len() > 30, "the reference table is parsed: {rows:?}");
    let dashboard: Value =
        serde_json::from_str(&read("docs/observability/grafana-dashboard.json")).unwrap();
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    assert!(all.len() > 30, "the dashboard has its queries");
    let mut seen = BTreeSet::new();
    for expr in &all {
        let metrics = metrics_in(expr);
        assert!(!metrics.is_empty(), "no gateway metric in {expr}");
        for (name, labels) in metrics {
            let row = rows.get(&name).or_else(|| {
                ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .and_then(|base| rows.get(base))
                        .filter(|row| row.kind == "histogram")
                })
            });
            let row = row.unwrap_or_else(|| {
                panic!("{name} (in `{expr}`) is not in docs/observability.md's reference table")
            });
            for label in &labels {
                assert!(
                    row.labels.contains(label) || label == "le",
                    "{name} has no label {label} (in `{expr}`)"
                );
            }
            seen.insert(row.service.clone());
        }
    }
    for job in JOBS {
        assert!(seen.contains(job), "the dashboard shows nothing of {job}");
    }
}

#[test]
fn the_expression_reader_separates_metrics_from_labels() {
    let found = metrics_in(
        r#"sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_xx{envoy_response_code_class="5",x=~"a,b"}[5m])) / ptc_sessions_active"#,
    );
    assert_eq!(
        found,
        vec![
            (
                "envoy_cluster_upstream_rq_xx".to_owned(),
                BTreeSet::from(["envoy_response_code_class".to_owned(), "x".to_owned()])
            ),
            ("ptc_sessions_active".to_owned(), BTreeSet::new()),
        ]
    );
}

/// `job name -> (metrics path, static targets)` of a scrape config.
fn jobs(config: &Yaml) -> BTreeMap<String, (String, Vec<String>)> {
    config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
        .iter()
        .map(|job| {
            let targets = job["static_configs"]
                .as_sequence()
                .into_iter()
                .flatten()
                .flat_map(|c| c["targets"].as_sequence().cloned().unwrap_or_default())
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect();
            (
                job["job_name"].as_str().expect("job_name").to_owned(),
                (
                    job["metrics_path"]
                        .as_str()
                        .unwrap_or("/metrics")
                        .to_owned(),
                    targets,
                ),
            )
        })
        .collect()
}

#[test]
fn the_compose_scrape_config_reaches_every_service() {
    let config = yaml("docs/observability/prometheus.yml");
    let jobs = jobs(&config);
    assert_eq!(
        jobs.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(JOBS)
    );
    let compose = read("compose/compose.yaml");
    let compose_yaml: Yaml = serde_yaml::from_str(&compose).unwrap();
    let services = compose_yaml["services"].as_mapping().unwrap();
    let stats_port = xtask::envoy_render::EnvoyVars::container("t", "r", "s").stats_port;
    let expected = [
        ("envoy", "/stats/prometheus", format!("envoy:{stats_port}")),
        ("translator-svc", "/metrics", "translator:50051".to_owned()),
        ("ratelimit-svc", "/metrics", "ratelimit:9092".to_owned()),
        ("ptc-svc", "/metrics", "ptc:50053".to_owned()),
    ];
    for (job, path, target) in expected {
        let (metrics_path, targets) = &jobs[job];
        assert_eq!(metrics_path, path, "{job}");
        assert_eq!(targets, &vec![target.clone()], "{job}");
        // The host is a compose service (or the translator's network alias) and the port is the
        // one that service listens on.
        let (host, port) = target.split_once(':').unwrap();
        let known = services.contains_key(host) || compose.contains(&format!("aliases: [{host}]"));
        assert!(known, "{host} is not a compose service");
        if job != "envoy" {
            assert!(
                compose.contains(&format!("0.0.0.0:{port}")),
                "no compose service listens on {port}"
            );
        }
    }
}

#[test]
fn the_kubernetes_scrape_config_matches_the_annotated_pods() {
    let config = yaml("docs/observability/prometheus-kubernetes.yml");
    let job = &config["scrape_configs"][0];
    let sd = &job["kubernetes_sd_configs"][0];
    assert_eq!(sd["role"].as_str(), Some("pod"));
    assert_eq!(
        sd["namespaces"]["names"][0].as_str(),
        Some("bedrock-gateway")
    );
    let relabel = serde_yaml::to_string(&job["relabel_configs"]).unwrap();
    for needed in [
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
        "__meta_kubernetes_pod_annotation_prometheus_io_port",
        "__meta_kubernetes_pod_annotation_prometheus_io_path",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name",
    ] {
        assert!(relabel.contains(needed), "relabelling misses {needed}");
    }
    // Each component's pod template carries the annotations, on a port its container declares.
    let manifests = [
        (
            "envoy",
            "k8s/base/envoy/deployment.yaml",
            "/stats/prometheus",
        ),
        (
            "translator-svc",
            "k8s/base/translator/deployment.yaml",
            "/metrics",
        ),
        (
            "ratelimit-svc",
            "k8s/base/ratelimit/deployment.yaml",
            "/metrics",
        ),
        ("ptc-svc", "k8s/base/ptc/statefulset.yaml", "/metrics"),
    ];
    for (name, file, path) in manifests {
        let manifest = yaml(file);
        let template = &manifest["spec"]["template"];
        assert_eq!(
            template["metadata"]["labels"]["app.kubernetes.io/name"].as_str(),
            Some(name),
            "{file}: the job name comes from this label"
        );
        let annotations = &template["metadata"]["annotations"];
        assert_eq!(
            annotations["prometheus.io/scrape"].as_str(),
            Some("true"),
            "{file}"
        );
        assert_eq!(
            annotations["prometheus.io/path"].as_str(),
            Some(path),
            "{file}"
        );
        let port: u64 = annotations["prometheus.io/port"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{file}: prometheus.io/port"));
        let declared = template["spec"]["containers"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|c| c["ports"].as_sequence().cloned().unwrap_or_default())
            .any(|p| p["containerPort"].as_u64() == Some(port));
        assert!(declared, "{file}: no container declares port {port}");
        // The NetworkPolicy admits the monitoring namespace on that port.
        let policies = read("k8s/base/networkpolicies.yaml");
        let admitted = policies.split("\n---").any(|doc| {
            doc.contains(&format!("app.kubernetes.io/name: {name} }}"))
                && doc.contains("kubernetes.io/metadata.name: monitoring")
                && doc.contains(&format!("port: {port} }}"))
        });
        assert!(admitted, "no NetworkPolicy admits scrapes of {name}:{port}");
    }
}
