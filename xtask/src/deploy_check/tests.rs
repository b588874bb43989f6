//! Every deployment check, fed the real files (must pass) and a deliberately broken fixture from
//! xtask/fixtures/deploy/ (must fail, naming the fault). The tools are installed on first use;
//! nothing is skipped, so a missing tool fails here as it would in CI.

use std::path::{Path, PathBuf};

use super::*;

fn root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/deploy")
        .join(relative)
}

fn tools() -> tools::Tools {
    tools::ensure(&root()).unwrap()
}

/// The full error chain, where the tool's own diagnosis sits.
fn failure<T: std::fmt::Debug>(result: anyhow::Result<T>) -> String {
    let message = format!("{:#}", result.unwrap_err());
    eprintln!("rejected as expected:\n{message}\n");
    message
}

#[test]
fn envoy_configs_are_fresh_and_valid() {
    let scratch = Scratch::new(&root()).unwrap();
    let checked = envoy::check(&root(), &tools(), scratch.path()).unwrap();
    assert_eq!(checked.len(), 2);
}

#[test]
fn envoy_rejects_a_route_to_an_undefined_cluster() {
    let message = failure(envoy::validate(
        &tools(),
        &fixture("envoy/undefined-cluster.yaml"),
    ));
    assert!(message.contains("nowhere"), "{message}");
}

#[test]
fn rendered_envoy_configs_keep_the_secret_out_and_the_slots_filled() {
    for flavour in envoy::Flavour::ALL {
        let config = envoy::render(flavour, "/etc/envoy/gate_filter.wasm").unwrap();
        assert!(config.contains("value: \"%ENVIRONMENT(GATEWAY_INTERNAL_SECRET)%\""));
        assert!(
            config.contains("envoy.filters.http.ratelimit"),
            "{flavour:?}: no rate-limit filter"
        );
        assert!(
            config.contains("apply_on_stream_done: true"),
            "{flavour:?}: no per-route policy"
        );
        assert!(config.contains("address: 0.0.0.0, port_value: 8080"));
        assert!(
            config.contains("address: 127.0.0.1, port_value: 9901"),
            "admin must stay on loopback"
        );
        assert_eq!(
            config.contains("ptc_router"),
            flavour == envoy::Flavour::Kubernetes
        );
    }
}

#[test]
fn fragment_sections_fail_loudly_when_missing() {
    let message =
        xtask::envoy_render::fragment_section("clusters:\n- name: a\n", "http_filters:", false)
            .unwrap_err();
    assert!(message.contains("http_filters"), "{message}");
}

#[test]
fn compose_file_passes() {
    compose::check(&tools(), &root().join(compose::COMPOSE_FILE)).unwrap();
}

#[test]
fn compose_rejects_a_misspelled_key() {
    let message = failure(compose::check(
        &tools(),
        &fixture("compose/misspelled-key.yaml"),
    ));
    assert!(
        message.contains("compose specification") && message.contains("enviroment"),
        "{message}"
    );
}

#[test]
fn compose_rejects_a_dangling_dependency() {
    let message = failure(compose::check(
        &tools(),
        &fixture("compose/dangling-dependency.yaml"),
    ));
    assert!(message.contains("depends_on `database`"), "{message}");
}

#[test]
fn compose_rejects_a_public_port() {
    let message = failure(compose::check(
        &tools(),
        &fixture("compose/public-port.yaml"),
    ));
    assert!(message.contains("beyond 127.0.0.1"), "{message}");
}

#[test]
fn compose_observability_profile_is_wired_and_optional() {
    let file = root().join(compose::COMPOSE_FILE);
    let tools = tools();
    let documents = tools::yaml_documents(&tools, &file).unwrap();
    let mut project = documents[0].clone();
    let dir = file.parent().unwrap();
    for service in ["prometheus", "grafana"] {
        assert_eq!(
            project["services"][service]["profiles"],
            serde_json::json!([observability::PROFILE]),
            "{service} must stay out of the default `docker compose up`"
        );
    }
    assert_eq!(
        observability::violations(&tools, &project, dir).unwrap(),
        Vec::<String>::new()
    );
    // The same project with Grafana's dashboard left out, and Prometheus in every profile.
    let grafana = &mut project["services"]["grafana"];
    let volumes = grafana["volumes"].as_array_mut().unwrap();
    volumes.retain(|v| !v.as_str().unwrap_or("").contains("grafana-dashboard.json"));
    project["services"]["prometheus"]
        .as_object_mut()
        .unwrap()
        .remove("profiles");
    let problems = observability::violations(&tools, &project, dir)
        .unwrap()
        .join("\n");
    assert!(
        problems
            .contains("no dashboard is mounted under the provider path `/etc/grafana/dashboards`")
            && problems.contains("service `prometheus`: not behind the `observability` profile"),
        "{problems}"
    );
}

#[test]
fn compose_rejects_a_grafana_data_source_that_misses_prometheus() {
    let message = failure(compose::check(
        &tools(),
        &fixture("compose/observability-wrong-datasource.yaml"),
    ));
    assert!(
        message.contains(
            "data source URL `http://prometheus-server:9090` does not name the compose Prometheus"
        ),
        "{message}"
    );
    assert!(!message.contains("dashboard"), "one fault only: {message}");
}

#[test]
fn compose_rejects_a_dashboard_provider_without_dashboards() {
    let message = failure(compose::check(
        &tools(),
        &fixture("compose/observability-missing-dashboard.yaml"),
    ));
    assert!(
        message.contains("no dashboard is mounted under the provider path"),
        "{message}"
    );
    assert!(
        !message.contains("data source"),
        "one fault only: {message}"
    );
}

#[test]
fn kubernetes_overlays_pass() {
    let scratch = Scratch::new(&root()).unwrap();
    assert_eq!(
        k8s::check_all(&root(), &tools(), scratch.path()).unwrap(),
        2
    );
}

#[test]
fn kustomize_rejects_a_missing_resource() {
    let scratch = Scratch::new(&root()).unwrap();
    let message = failure(k8s::check(
        &tools(),
        &fixture("k8s/missing-resource"),
        scratch.path(),
    ));
    assert!(
        message.contains("kustomize cannot build")
            && message.contains("deployment-that-does-not-exist"),
        "{message}"
    );
}

#[test]
fn kubernetes_schema_rejects_an_unknown_field() {
    let scratch = Scratch::new(&root()).unwrap();
    let message = failure(k8s::check(
        &tools(),
        &fixture("k8s/unknown-field"),
        scratch.path(),
    ));
    assert!(message.contains("imagePullPolcy"), "{message}");
}

#[test]
fn kubernetes_rules_reject_an_unprotected_workload() {
    let scratch = Scratch::new(&root()).unwrap();
    let message = failure(k8s::check(
        &tools(),
        &fixture("k8s/no-probes"),
        scratch.path(),
    ));
    for fault in [
        "no readinessProbe",
        "no livenessProbe",
        "resources need",
        "securityContext needs",
        "runAsNonRoot",
        "no fixed tag",
        "Service app: its selector matches no workload",
        "no default-deny",
    ] {
        assert!(message.contains(fault), "missing `{fault}` in:\n{message}");
    }
}

#[test]
fn dockerfiles_pass() {
    assert_eq!(
        dockerfile::check_all(&root(), &tools()).unwrap().len(),
        dockerfile::DOCKERFILES.len()
    );
}

#[test]
fn dockerfile_checks_reject_latest_and_root() {
    let message = failure(dockerfile::check(
        &tools(),
        &fixture("dockerfile/latest-and-root.Dockerfile"),
    ));
    assert!(message.contains("DL3007"), "{message}");
    let text = std::fs::read_to_string(fixture("dockerfile/latest-and-root.Dockerfile")).unwrap();
    let problems = dockerfile::rule_violations(&text).join("\n");
    assert!(
        problems.contains("`latest`") && problems.contains("runs as root"),
        "{problems}"
    );
}

#[test]
fn hadolint_alone_rejects_cd_in_run() {
    let path = fixture("dockerfile/cd-in-run.Dockerfile");
    assert_eq!(
        dockerfile::rule_violations(&std::fs::read_to_string(&path).unwrap()),
        Vec::<String>::new()
    );
    let message = failure(dockerfile::check(&tools(), &path));
    assert!(message.contains("DL3003"), "{message}");
}

#[test]
fn dockerfile_rules_read_args_stages_and_continuations() {
    let text = "ARG BASE=debian:bookworm-slim\nFROM rust:1.95 AS build\nFROM ${BASE}\nCOPY --from=build \\\n  /a /b\nUSER 10001:10001\n";
    assert_eq!(dockerfile::rule_violations(text), Vec::<String>::new());
    let text = "FROM build-image\nUSER root\n";
    let problems = dockerfile::rule_violations(text).join("\n");
    assert!(
        problems.contains("no explicit tag") && problems.contains("not a numeric non-root"),
        "{problems}"
    );
}
