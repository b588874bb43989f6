//! `cargo xtask deploy-check`: proves the three ways to deploy the gateway are well-formed
//! without a cluster or a registry. Envoy configs (rendered from the one template) pass
//! `envoy --mode validate`; compose passes the compose-spec schema and reference checks (the
//! Prometheus and Grafana of its `observability` profile included); every
//! kustomization renders and its output passes the Kubernetes OpenAPI schemas (strict) and the
//! project's deployment rules; the Dockerfiles pass hadolint and a non-root rule.
//! BLESS=1 re-renders the committed Envoy copies instead of failing on drift.

mod compose;
mod dockerfile;
mod envoy;
mod k8s;
mod observability;
mod tools;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};

/// Every check, in order of speed; stops at the first failure with the tool's own message.
pub fn run(root: &Path) -> Result<()> {
    let started = Instant::now();
    let tools = tools::ensure(root)?;
    let scratch = Scratch::new(root)?;
    let scratch = scratch.path();
    let step = |what: &str| {
        eprintln!(
            "deploy-check: {what} ok ({:.1}s)",
            started.elapsed().as_secs_f64()
        )
    };

    let files = dockerfile::check_all(root, &tools)?;
    step(&format!("{} Dockerfiles", files.len()));
    let files = envoy::check(root, &tools, scratch)?;
    step(&format!("{} Envoy configs", files.len()));
    compose::check(&tools, &root.join(compose::COMPOSE_FILE))?;
    step("compose");
    let overlays = k8s::check_all(root, &tools, scratch)?;
    step(&format!("{overlays} Kubernetes overlays"));
    Ok(())
}

/// A per-process directory for rendered files handed to the tools, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(root: &Path) -> Result<Self> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = tools::target_dir(root).join("deploy-tools").join(format!(
            "scratch-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
