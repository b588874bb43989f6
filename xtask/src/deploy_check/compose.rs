//! compose/compose.yaml without Docker Compose v2 (not installable here): the compose-spec JSON
//! schema (shipped inside check-jsonschema), then the cross-references a schema cannot see and
//! the project's own rules (loopback-only ports, health checks, restart policies), and the
//! `observability` profile's Prometheus and Grafana against the files they mount.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::tools::{self, Tools};

pub const COMPOSE_FILE: &str = "compose/compose.yaml";

/// Schema first (its messages are the clearest), then references and rules.
pub fn check(tools: &Tools, file: &Path) -> Result<()> {
    tools::run(
        Command::new(&tools.check_jsonschema)
            .args(["--builtin-schema", "vendor.compose-spec"])
            .arg(file),
    )
    .with_context(|| {
        format!(
            "{} does not match the compose specification",
            file.display()
        )
    })?;
    let documents = tools::yaml_documents(tools, file)?;
    let [project] = documents.as_slice() else {
        bail!("{}: expected exactly one YAML document", file.display());
    };
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut problems = rule_violations(project, dir);
    problems.extend(super::observability::violations(tools, project, dir)?);
    if !problems.is_empty() {
        bail!("{}:\n  {}", file.display(), problems.join("\n  "));
    }
    Ok(())
}

/// Everything wrong with one parsed compose project; empty when it is fine.
pub fn rule_violations(project: &Value, dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let services = project.get("services").and_then(Value::as_object);
    let Some(services) = services.filter(|s| !s.is_empty()) else {
        return vec!["no services".to_owned()];
    };
    let declared_volumes: BTreeSet<&str> = keys(project.get("volumes"));
    for (name, service) in services {
        let mut problem = |text: String| problems.push(format!("service `{name}`: {text}"));
        for dependency in keys(service.get("depends_on"))
            .into_iter()
            .chain(list(service.get("depends_on")))
        {
            if !services.contains_key(dependency) {
                problem(format!("depends_on `{dependency}`, which is not a service"));
            }
        }
        for volume in service
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(source) = volume_source(volume) else {
                continue;
            };
            if is_named_volume(source) {
                if !declared_volumes.contains(source) {
                    problem(format!(
                        "volume `{source}` is not declared under top-level volumes"
                    ));
                }
            } else if source.starts_with('.') && !dir.join(source).exists() {
                problem(format!("bind mount source `{source}` does not exist"));
            }
        }
        if let Some(build) = service.get("build") {
            let context = build
                .get("context")
                .and_then(Value::as_str)
                .or(build.as_str())
                .unwrap_or(".");
            let dockerfile = build
                .get("dockerfile")
                .and_then(Value::as_str)
                .unwrap_or("Dockerfile");
            if !dir.join(context).join(dockerfile).is_file() {
                problem(format!("build file {context}/{dockerfile} does not exist"));
            }
            if service.get("image").is_none() {
                problem(
                    "builds an image without naming it (`image:`), so Kubernetes cannot use it"
                        .to_owned(),
                );
            }
        }
        for port in service
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !port_is_loopback(port) {
                problem(format!("port {port} is published beyond 127.0.0.1"));
            }
        }
        if service.get("healthcheck").is_none() {
            problem("has no healthcheck".to_owned());
        }
        if service
            .get("restart")
            .and_then(Value::as_str)
            .is_none_or(|r| r == "no")
        {
            problem("has no restart policy".to_owned());
        }
    }
    problems
}

fn keys(value: Option<&Value>) -> BTreeSet<&str> {
    value
        .and_then(Value::as_object)
        .map(|map| map.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn list(value: Option<&Value>) -> Vec<&str> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `source` of a short (`src:dst[:mode]`) or long (`{source: ...}`) volume entry.
fn volume_source(volume: &Value) -> Option<&str> {
    match volume {
        Value::String(short) => short.split_once(':').map(|(source, _)| source),
        Value::Object(long) => long.get("source").and_then(Value::as_str),
        _ => None,
    }
}

/// A named volume, as opposed to a host path (absolute, relative, `~` or an interpolation).
fn is_named_volume(source: &str) -> bool {
    !source.is_empty() && !source.starts_with(['/', '.', '~', '$'])
}

/// Only `127.0.0.1:<host>:<container>` (short form) or `host_ip: 127.0.0.1` (long form).
fn port_is_loopback(port: &Value) -> bool {
    match port {
        Value::String(short) => short.starts_with("127.0.0.1:"),
        Value::Object(long) => long.get("host_ip").and_then(Value::as_str) == Some("127.0.0.1"),
        _ => false,
    }
}
