//! Every Kubernetes overlay: rendered by kustomize (kubectl's built-in v5.8), validated against
//! the Kubernetes OpenAPI schemas in strict mode for the oldest and newest supported releases,
//! then checked against the rules a schema cannot express (probes, limits, non-root, and that
//! every selector and reference points at something the overlay really contains).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::tools::{self, Tools};

/// Oldest supported release (native preStop `sleep`, sidecar containers) and the newest schema.
pub const KUBERNETES_VERSIONS: &[&str] = &["1.30.0", "1.37.0"];

/// Kustomization directories users apply, relative to the repository root.
pub const OVERLAYS: &[&str] = &["k8s/overlays/dev", "k8s/overlays/prod"];

/// The one container allowed to run privileged: the per-replica Docker engine beside ptc-svc.
const PRIVILEGED_EXCEPTION: &str = "docker-engine";

pub fn check_all(root: &Path, tools: &Tools, scratch: &Path) -> Result<usize> {
    for overlay in OVERLAYS {
        check(tools, &root.join(overlay), scratch)?;
    }
    // Example manifests kept beside the overlays are validated too, though nobody renders them.
    let example = root.join("k8s/overlays/prod/secret.example.yaml");
    validate_schemas(tools, &example)?;
    Ok(OVERLAYS.len())
}

/// kustomize build, schemas, rules, for one kustomization directory.
pub fn check(tools: &Tools, dir: &Path, scratch: &Path) -> Result<()> {
    let rendered = tools::run(Command::new(&tools.kubectl).arg("kustomize").arg(dir))
        .with_context(|| format!("kustomize cannot build {}", dir.display()))?;
    let name = dir
        .file_name()
        .map_or("k8s".into(), |n| n.to_string_lossy().into_owned());
    let file = scratch.join(format!("k8s-{name}.yaml"));
    std::fs::write(&file, rendered)?;
    validate_schemas(tools, &file)
        .with_context(|| format!("in the output of {}", dir.display()))?;
    let objects = tools::yaml_documents(tools, &file)?;
    let problems = rule_violations(&objects);
    if !problems.is_empty() {
        bail!("{} (rendered):\n  {}", dir.display(), problems.join("\n  "));
    }
    Ok(())
}

pub fn validate_schemas(tools: &Tools, file: &Path) -> Result<()> {
    for version in KUBERNETES_VERSIONS {
        tools::run(
            Command::new(&tools.kubernetes_validate)
                .args(["--strict", "--quiet", "-k", version])
                .arg(file),
        )
        .with_context(|| format!("{} is not valid Kubernetes {version}", file.display()))?;
    }
    Ok(())
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or("")
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("")
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector.as_object().is_some_and(|selector| {
        !selector.is_empty()
            && selector
                .iter()
                .all(|(key, value)| labels.get(key) == Some(value))
    })
}

/// Everything wrong with one rendered overlay; empty when it is fine.
pub fn rule_violations(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let workloads: Vec<&Value> = objects
        .iter()
        .filter(|o| matches!(kind(o), "Deployment" | "StatefulSet" | "DaemonSet"))
        .collect();
    let pod_labels: Vec<&Value> = workloads
        .iter()
        .map(|w| &w["spec"]["template"]["metadata"]["labels"])
        .collect();
    let config_maps: BTreeSet<&str> = objects
        .iter()
        .filter(|o| kind(o) == "ConfigMap")
        .map(name)
        .collect();
    for workload in &workloads {
        let id = format!("{} {}", kind(workload), name(workload));
        workload_rules(workload, &config_maps, &mut |text| {
            problems.push(format!("{id}: {text}"))
        });
    }
    for object in objects {
        let id = format!("{} {}", kind(object), name(object));
        let spec = &object["spec"];
        let selects_pods = |selector: &Value| {
            pod_labels
                .iter()
                .any(|labels| labels_match(selector, labels))
        };
        match kind(object) {
            "Service" if !selects_pods(&spec["selector"]) => {
                problems.push(format!("{id}: its selector matches no workload's pods"));
            }
            "PodDisruptionBudget" if !selects_pods(&spec["selector"]["matchLabels"]) => {
                problems.push(format!("{id}: its selector matches no workload's pods"));
            }
            "HorizontalPodAutoscaler" => {
                let target = &spec["scaleTargetRef"];
                if !workloads
                    .iter()
                    .any(|w| kind(w) == target["kind"] && name(w) == target["name"])
                {
                    problems.push(format!(
                        "{id}: scales {target}, which the overlay does not contain"
                    ));
                }
            }
            "Ingress" => ingress_rules(object, objects, &mut |text| {
                problems.push(format!("{id}: {text}"))
            }),
            _ => {}
        }
    }
    let default_deny = objects.iter().any(|o| {
        kind(o) == "NetworkPolicy"
            && o["spec"]["podSelector"] == json!({})
            && o["spec"]["ingress"].is_null()
            && o["spec"]["policyTypes"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("Ingress")))
    });
    if !default_deny {
        problems.push(
            "no default-deny ingress NetworkPolicy (podSelector {}, no ingress rules)".to_owned(),
        );
    }
    problems
}

fn workload_rules(workload: &Value, config_maps: &BTreeSet<&str>, problem: &mut dyn FnMut(String)) {
    let pod = &workload["spec"]["template"]["spec"];
    if pod["terminationGracePeriodSeconds"].as_u64().is_none() {
        problem("no explicit terminationGracePeriodSeconds (how long a drain may take)".to_owned());
    }
    let sidecars = pod["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["restartPolicy"] == "Always");
    let containers: Vec<&Value> = pod["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(sidecars)
        .collect();
    let privileged_pod = containers.iter().any(|c| c["name"] == PRIVILEGED_EXCEPTION);
    if !privileged_pod && pod["securityContext"]["runAsNonRoot"] != json!(true) {
        problem("pod securityContext.runAsNonRoot is not true".to_owned());
    }
    for container in containers {
        let cname = container["name"].as_str().unwrap_or("?");
        let mut problem = |text: &str| problem(format!("container {cname}: {text}"));
        let image = container["image"].as_str().unwrap_or("");
        let tag = image
            .rsplit_once(':')
            .map(|(_, tag)| tag)
            .filter(|tag| !tag.contains('/'));
        if tag.is_none_or(|tag| tag == "latest") {
            problem("image has no fixed tag");
        }
        for field in ["readinessProbe", "livenessProbe"] {
            if container[field].is_null() {
                problem(&format!("no {field}"));
            }
        }
        let resources = &container["resources"];
        if resources["limits"]["memory"].is_null()
            || resources["requests"]["memory"].is_null()
            || resources["requests"]["cpu"].is_null()
        {
            problem("resources need requests.cpu, requests.memory and limits.memory");
        }
        let security = &container["securityContext"];
        if cname == PRIVILEGED_EXCEPTION {
            continue;
        }
        if security["allowPrivilegeEscalation"] != json!(false)
            || security["readOnlyRootFilesystem"] != json!(true)
            || !security["capabilities"]["drop"]
                .as_array()
                .is_some_and(|d| d.contains(&json!("ALL")))
        {
            problem(
                "securityContext needs allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities.drop [ALL]",
            );
        }
        for source in container["envFrom"].as_array().into_iter().flatten() {
            let reference = &source["configMapRef"];
            if let Some(map) = reference["name"].as_str()
                && reference["optional"] != json!(true)
                && !config_maps.contains(map)
            {
                problem(&format!("envFrom ConfigMap `{map}` is not in the overlay"));
            }
        }
    }
}

fn ingress_rules(ingress: &Value, objects: &[Value], problem: &mut dyn FnMut(String)) {
    let paths = ingress["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rule| rule["http"]["paths"].as_array().into_iter().flatten());
    for path in paths {
        let backend = &path["backend"]["service"];
        let service = objects
            .iter()
            .find(|o| kind(o) == "Service" && name(o) == backend["name"]);
        let port_ok = service.is_some_and(|service| {
            service["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|port| {
                    let wanted = &backend["port"];
                    (!wanted["number"].is_null() && port["port"] == wanted["number"])
                        || (!wanted["name"].is_null() && port["name"] == wanted["name"])
                })
        });
        if !port_ok {
            problem(format!(
                "backend {backend} is not a port of a Service in the overlay"
            ));
        }
    }
}
