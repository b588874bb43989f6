//! The Envoy configs of compose and Kubernetes: rendered from `envoy/envoy.yaml.tmpl` with
//! xtask's renderer (never copied), committed beside the manifests so a user needs no cargo to
//! deploy, checked for drift and validated with `envoy --mode validate`. BLESS=1 rewrites them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use xtask::envoy_render::{self, EnvoyVars, TEMPLATE};

use super::tools::{self, Tools};

/// Where the wasm sits inside the gateway's Envoy image (envoy/Dockerfile).
const IMAGE_WASM_PATH: &str = "/etc/envoy/gate_filter.wasm";

/// The internal secret is not baked into the rendered file: Envoy reads it from its own
/// environment per request (`%ENVIRONMENT()%` works in request_headers_to_add), so the file is a
/// plain ConfigMap and the secret stays in a Secret / compose's `.env`. An unset variable makes
/// Envoy send `-`, which translator-svc refuses: it fails closed.
const SECRET_FROM_ENV: &str = "%ENVIRONMENT(GATEWAY_INTERNAL_SECRET)%";

/// The environments that get a rendered copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Compose,
    Kubernetes,
}

impl Flavour {
    pub const ALL: [Flavour; 2] = [Flavour::Compose, Flavour::Kubernetes];

    /// The committed copy, relative to the repository root.
    pub fn committed(self) -> &'static str {
        match self {
            Flavour::Compose => "compose/envoy.yaml",
            Flavour::Kubernetes => "k8s/base/envoy/envoy.yaml",
        }
    }

    /// Service names as each environment's DNS knows them.
    fn hosts(self) -> (&'static str, &'static str) {
        match self {
            Flavour::Compose => ("translator", "ratelimit"),
            Flavour::Kubernetes => ("translator-svc", "ratelimit-svc"),
        }
    }
}

/// The rendered config of `flavour`, with the wasm at `wasm_path`.
pub fn render(flavour: Flavour, wasm_path: &str) -> Result<String> {
    let (translator, ratelimit) = flavour.hosts();
    let mut vars = EnvoyVars::container(translator, ratelimit, "checked-then-replaced");
    vars.wasm_path = wasm_path.to_owned();
    let mut vars = vars.with_rate_limiting().map_err(anyhow::Error::msg)?;
    if flavour == Flavour::Kubernetes {
        // translator-svc reaches ptc-svc through this router (PTC_ENDPOINT=http://envoy-ptc:50053);
        // the headless Service `ptc-svc` resolves to every ptc-svc pod.
        vars = vars
            .with_ptc_router("0.0.0.0", 50053, &[("ptc-svc", 50053)])
            .map_err(anyhow::Error::msg)?;
    }
    let mut map: BTreeMap<&str, String> = vars.to_map().map_err(anyhow::Error::msg)?;
    map.insert("INTERNAL_SECRET", SECRET_FROM_ENV.to_owned());
    let config = envoy_render::render(TEMPLATE, &map).map_err(anyhow::Error::msg)?;
    Ok(format!(
        "# GENERATED from envoy/envoy.yaml.tmpl (+ envoy/ratelimit.fragment.yaml{}) by\n\
         # `BLESS=1 cargo xtask deploy-check`. Do not edit: change the sources and re-render.\n{config}",
        if flavour == Flavour::Kubernetes {
            ", envoy/ptc-router.fragment.yaml"
        } else {
            ""
        }
    ))
}

/// `envoy --mode validate` on one file: loads every listener, cluster and filter, including the
/// wasm module and its configuration step.
pub fn validate(tools: &Tools, config: &Path) -> Result<()> {
    tools::run(
        Command::new(&tools.envoy)
            .args(["--mode", "validate", "--log-level", "warn", "-c"])
            .arg(config),
    )
    .map(drop)
    .with_context(|| format!("envoy rejects {}", config.display()))
}

/// Drift check (or BLESS=1 rewrite) of every committed copy, then validation of each one with the
/// real wasm in place of the image path.
pub fn check(root: &Path, tools: &Tools, scratch: &Path) -> Result<Vec<PathBuf>> {
    let bless = std::env::var("BLESS").is_ok_and(|v| v == "1");
    let wasm = tools::gate_wasm(root)?;
    let mut checked = Vec::new();
    for flavour in Flavour::ALL {
        let path = root.join(flavour.committed());
        let wanted = render(flavour, IMAGE_WASM_PATH)?;
        if bless {
            std::fs::write(&path, &wanted)
                .with_context(|| format!("writing {}", path.display()))?;
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(wanted.as_str()) {
            bail!(
                "{} is stale or missing: run `BLESS=1 cargo xtask deploy-check` and review the diff",
                flavour.committed()
            );
        }
        let local = render(flavour, &wasm.display().to_string())?;
        let file = scratch.join(format!("envoy-{flavour:?}.yaml").to_lowercase());
        std::fs::write(&file, local)?;
        validate(tools, &file)?;
        checked.push(path);
    }
    Ok(checked)
}
