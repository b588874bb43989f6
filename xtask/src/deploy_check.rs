//! `cargo xtask deploy-check`: proves the three ways to deploy the gateway are well-formed
//! without a cluster or a registry. Envoy configs (rendered from the one template) pass
//! `envoy --mode validate`; compose passes the compose-spec schema and reference checks; every
//! kustomization renders and its output passes the Kubernetes OpenAPI schemas (strict) and the
//! project's deployment rules; the Dockerfiles pass hadolint and a non-root rule.
//! BLESS=1 re-renders the committed Envoy copies instead of failing on drift.

mod compose;
mod dockerfile;
mod envoy;
mod k8s;
mod tools;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

/// Every check, in order of speed; stops at the first failure with the tool's own message.
pub fn run(root: &Path) -> Result<()> {
    let started = Instant::now();
    let tools = tools::ensure(root)?;
    let scratch = scratch_dir(root)?;
    let step = |what: &str| eprintln!("deploy-check: {what} ok ({:.1}s)", started.elapsed().as_secs_f64());

    let files = dockerfile::check_all(root, &tools)?;
    step(&format!("{} Dockerfiles", files.len()));
    let files = envoy::check(root, &tools, &scratch)?;
    step(&format!("{} Envoy configs", files.len()));
    compose::check(&tools, &root.join(compose::COMPOSE_FILE))?;
    step("compose");
    let overlays = k8s::check_all(root, &tools, &scratch)?;
    step(&format!("{overlays} Kubernetes overlays"));
    Ok(())
}

/// A fresh per-process directory for rendered files handed to the tools.
fn scratch_dir(root: &Path) -> Result<std::path::PathBuf> {
    let dir = tools::target_dir(root)
        .join("deploy-tools")
        .join(format!("scratch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
