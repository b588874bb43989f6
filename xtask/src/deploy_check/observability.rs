//! The compose `observability` profile (Prometheus and Grafana) against the files it mounts:
//! what Docker Compose and Grafana would only find out at run time. Both services stay behind a
//! profile, so the default `docker compose up` is unchanged; Prometheus's mounted scrape config
//! exists and aims at compose services; Grafana's provisioned Prometheus data source names the
//! compose Prometheus service and its port; every dashboard provider finds at least one mounted
//! dashboard, and each one exists, is a dashboard, and uses only provisioned data sources or a
//! data source variable.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use super::tools::{self, Tools};

pub const PROFILE: &str = "observability";
const PROMETHEUS_IMAGE: &str = "prom/prometheus:";
const GRAFANA_IMAGE: &str = "grafana/grafana";
const PROMETHEUS_CONFIG: &str = "/etc/prometheus/prometheus.yml";
const DATASOURCES_DIR: &str = "/etc/grafana/provisioning/datasources";
const DASHBOARDS_DIR: &str = "/etc/grafana/provisioning/dashboards";

/// A bind mount of a service: host path (resolved against the compose file's folder) and the
/// path inside the container.
struct Mount {
    source: PathBuf,
    target: String,
}

/// Everything wrong with the observability services of `project`; empty when they are fine or
/// when the project has none. `dir` is the compose file's folder.
pub fn violations(tools: &Tools, project: &Value, dir: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let Some(services) = project.get("services").and_then(Value::as_object) else {
        return Ok(problems);
    };
    let image = |name: &str| {
        services[name]
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let prometheus: Vec<&String> = services
        .keys()
        .filter(|name| image(name).starts_with(PROMETHEUS_IMAGE))
        .collect();
    let grafana: Vec<&String> = services
        .keys()
        .filter(|name| image(name).starts_with(GRAFANA_IMAGE))
        .collect();
    if prometheus.is_empty() && grafana.is_empty() {
        return Ok(problems);
    }
    for name in prometheus.iter().chain(&grafana) {
        let profiles = list(services[name.as_str()].get("profiles"));
        if !profiles.contains(&PROFILE) {
            problems.push(format!(
                "service `{name}`: not behind the `{PROFILE}` profile, so the default `docker compose up` would start it"
            ));
        }
    }
    let hosts = service_hosts(services);
    let [prometheus_name] = prometheus.as_slice() else {
        problems.push(format!(
            "expected one Prometheus service ({PROMETHEUS_IMAGE}...), found {}",
            prometheus.len()
        ));
        return Ok(problems);
    };
    let prometheus = &services[prometheus_name.as_str()];
    let prometheus_port = flag(prometheus, "--web.listen-address")
        .and_then(|address| address.rsplit_once(':').map(|(_, port)| port.to_owned()))
        .unwrap_or_else(|| "9090".to_owned());
    let config_path =
        flag(prometheus, "--config.file").unwrap_or_else(|| PROMETHEUS_CONFIG.to_owned());
    let mounts = bind_mounts(prometheus, dir);
    match mounts.iter().find(|m| m.target == config_path) {
        None => problems.push(format!(
            "service `{prometheus_name}`: nothing is mounted at its config file {config_path}"
        )),
        Some(mount) if !mount.source.is_file() => problems.push(format!(
            "service `{prometheus_name}`: config file {} does not exist",
            mount.source.display()
        )),
        Some(mount) => {
            for document in tools::yaml_documents(tools, &mount.source)? {
                for target in scrape_targets(&document) {
                    let host = target.rsplit_once(':').map_or(target.as_str(), |(h, _)| h);
                    if !hosts.contains(host) {
                        problems.push(format!(
                            "{}: scrape target `{target}` is not a compose service or alias",
                            mount.source.display()
                        ));
                    }
                }
            }
        }
    }

    for grafana_name in grafana {
        let mut problem = |text: String| problems.push(format!("service `{grafana_name}`: {text}"));
        let mounts = bind_mounts(&services[grafana_name.as_str()], dir);
        let mut uids = BTreeSet::new();
        let mut prometheus_sources = 0;
        for file in provisioning_files(&mounts, DATASOURCES_DIR, &mut problem) {
            for document in tools::yaml_documents(tools, &file)? {
                for source in array(&document, "datasources") {
                    if let Some(uid) = source.get("uid").and_then(Value::as_str) {
                        uids.insert(uid.to_owned());
                    }
                    if source.get("type").and_then(Value::as_str) != Some("prometheus") {
                        continue;
                    }
                    prometheus_sources += 1;
                    let url = source.get("url").and_then(Value::as_str).unwrap_or("");
                    let expected: Vec<String> = hosts_of(services, prometheus_name)
                        .into_iter()
                        .map(|host| format!("http://{host}:{prometheus_port}"))
                        .collect();
                    if !expected
                        .iter()
                        .any(|e| url.trim_end_matches('/') == e.as_str())
                    {
                        problem(format!(
                            "{}: data source URL `{url}` does not name the compose Prometheus (expected {})",
                            file.display(),
                            expected.join(" or ")
                        ));
                    }
                }
            }
        }
        if prometheus_sources == 0 {
            problem(format!(
                "no Prometheus data source is provisioned under {DATASOURCES_DIR}"
            ));
        }
        for file in provisioning_files(&mounts, DASHBOARDS_DIR, &mut problem) {
            for document in tools::yaml_documents(tools, &file)? {
                for provider in array(&document, "providers") {
                    let path = provider
                        .get("options")
                        .and_then(|o| o.get("path"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let dashboards = dashboard_files(&mounts, path);
                    if dashboards.is_empty() {
                        problem(format!(
                            "{}: no dashboard is mounted under the provider path `{path}`",
                            file.display()
                        ));
                    }
                    for dashboard in dashboards {
                        for text in dashboard_problems(&dashboard, &uids) {
                            problem(format!("{}: {text}", dashboard.display()));
                        }
                    }
                }
            }
        }
    }
    Ok(problems)
}

/// Service names plus their network aliases: the host names other containers can reach.
fn service_hosts(services: &serde_json::Map<String, Value>) -> BTreeSet<String> {
    services
        .keys()
        .flat_map(|name| hosts_of(services, name))
        .collect()
}

fn hosts_of(services: &serde_json::Map<String, Value>, name: &str) -> Vec<String> {
    let mut hosts = vec![name.to_owned()];
    if let Some(networks) = services[name].get("networks").and_then(Value::as_object) {
        for network in networks.values() {
            hosts.extend(list(network.get("aliases")).into_iter().map(str::to_owned));
        }
    }
    hosts
}

/// The value of `--name=value` in the service's command, if given.
fn flag(service: &Value, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    list(service.get("command"))
        .into_iter()
        .find_map(|arg| arg.strip_prefix(&prefix).map(str::to_owned))
}

fn bind_mounts(service: &Value, dir: &Path) -> Vec<Mount> {
    service
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|volume| {
            let (source, target) = match volume {
                Value::String(short) => {
                    let mut parts = short.split(':');
                    (parts.next()?.to_owned(), parts.next()?.to_owned())
                }
                Value::Object(long) => (
                    long.get("source")?.as_str()?.to_owned(),
                    long.get("target")?.as_str()?.to_owned(),
                ),
                _ => return None,
            };
            // Relative host paths only: those ship with the repository.
            source.starts_with('.').then(|| Mount {
                source: dir.join(source),
                target,
            })
        })
        .collect()
}

/// Provisioning files Grafana reads from `dir`: files mounted into it, or the YAML files of a
/// folder mounted as it. A mounted source that does not exist is a problem.
fn provisioning_files(
    mounts: &[Mount],
    dir: &str,
    problem: &mut impl FnMut(String),
) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for mount in mounts {
        let target = mount.target.trim_end_matches('/');
        let into_dir = Path::new(target).parent() == Some(Path::new(dir));
        if target != dir && !into_dir {
            continue;
        }
        if mount.source.is_file() {
            files.push(mount.source.clone());
        } else if mount.source.is_dir() {
            files.extend(files_with(&mount.source, &["yml", "yaml"]));
        } else {
            problem(format!(
                "provisioning source {} does not exist",
                mount.source.display()
            ));
        }
    }
    files
}

/// Dashboard files a file provider with `path` loads: JSON files mounted into it (or below
/// it), or the JSON files of folders mounted there. Missing sources are returned too, so the
/// caller reports them.
fn dashboard_files(mounts: &[Mount], path: &str) -> Vec<PathBuf> {
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return Vec::new();
    }
    let mut files = Vec::new();
    for mount in mounts {
        let target = mount.target.trim_end_matches('/');
        if target != path && !target.starts_with(&format!("{path}/")) {
            continue;
        }
        if mount.source.is_dir() {
            files.extend(files_with(&mount.source, &["json"]));
        } else if target.ends_with(".json") {
            files.push(mount.source.clone());
        }
    }
    files
}

fn files_with(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
        })
        .collect();
    files.sort();
    files
}

/// A dashboard that exists, parses, has a uid, a title and panels, and refers to data sources
/// only by a provisioned uid or a `${variable}` of type datasource.
fn dashboard_problems(file: &Path, provisioned: &BTreeSet<String>) -> Vec<String> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => return vec![format!("dashboard cannot be read: {e}")],
    };
    let dashboard: Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(e) => return vec![format!("dashboard is not JSON: {e}")],
    };
    let mut problems = Vec::new();
    for field in ["uid", "title"] {
        if dashboard.get(field).and_then(Value::as_str).is_none() {
            problems.push(format!("dashboard has no `{field}`"));
        }
    }
    if array(&dashboard, "panels").is_empty() {
        problems.push("dashboard has no panels".to_owned());
    }
    let variables: BTreeSet<String> = dashboard
        .get("templating")
        .map(|t| array(t, "list"))
        .unwrap_or_default()
        .into_iter()
        .filter(|v| v.get("type").and_then(Value::as_str) == Some("datasource"))
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .map(|name| format!("${{{name}}}"))
        .collect();
    let mut uids = BTreeSet::new();
    datasource_uids(&dashboard, &mut uids);
    for uid in uids {
        if !variables.contains(&uid) && !provisioned.contains(&uid) {
            problems.push(format!(
                "data source `{uid}` is neither provisioned nor a data source variable"
            ));
        }
    }
    problems
}

fn datasource_uids(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "datasource"
                    && let Some(uid) = value.get("uid").and_then(Value::as_str)
                {
                    out.insert(uid.to_owned());
                }
                datasource_uids(value, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| datasource_uids(v, out)),
        _ => {}
    }
}

/// `host:port` of every static scrape target.
fn scrape_targets(config: &Value) -> Vec<String> {
    array(config, "scrape_configs")
        .into_iter()
        .flat_map(|job| array(job, "static_configs"))
        .flat_map(|c| list(c.get("targets")))
        .map(str::to_owned)
        .collect()
}

fn array<'a>(value: &'a Value, key: &str) -> Vec<&'a Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|items| items.iter().collect())
        .unwrap_or_default()
}

fn list(value: Option<&Value>) -> Vec<&str> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}
