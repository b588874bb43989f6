//! The deployment Dockerfiles, checked statically because no base image can be pulled here:
//! hadolint (warnings fail), then the rules hadolint does not enforce: the final stage runs as a
//! numeric non-root user, and every base image names an explicit tag that is not `latest`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::tools::{self, Tools};

/// The images this project ships, relative to the repository root.
pub const DOCKERFILES: &[&str] = &[
    "envoy/Dockerfile",
    "translator-svc/Dockerfile",
    "ratelimit-svc/Dockerfile",
    "ptc-svc/Dockerfile",
    "compose/fake-bedrock.Dockerfile",
    "compose/dynoxide.Dockerfile",
];

pub fn check_all(root: &Path, tools: &Tools) -> Result<Vec<PathBuf>> {
    let files: Vec<PathBuf> = DOCKERFILES.iter().map(|file| root.join(file)).collect();
    for file in &files {
        check(tools, file)?;
    }
    Ok(files)
}

pub fn check(tools: &Tools, file: &Path) -> Result<()> {
    tools::run(
        Command::new(&tools.hadolint)
            .args(["--no-color", "--failure-threshold", "warning"])
            .arg(file),
    )
    .with_context(|| format!("hadolint rejects {}", file.display()))?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let problems = rule_violations(&text);
    if !problems.is_empty() {
        bail!("{}:\n  {}", file.display(), problems.join("\n  "));
    }
    Ok(())
}

/// Rule violations of one Dockerfile's text; empty when it is fine.
pub fn rule_violations(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let instructions = logical_lines(text);
    let args: Vec<(String, String)> = instructions
        .iter()
        .filter_map(|line| line.strip_prefix("ARG "))
        .filter_map(|arg| arg.split_once('='))
        .map(|(name, value)| {
            (
                name.trim().to_owned(),
                value.trim().trim_matches('"').to_owned(),
            )
        })
        .collect();
    let mut last_user = None;
    let mut stages = 0;
    for line in &instructions {
        if let Some(from) = line.strip_prefix("FROM ") {
            stages += 1;
            last_user = None;
            let image = from
                .split_whitespace()
                .find(|word| !word.starts_with("--"))
                .unwrap_or("");
            let image = expand(image, &args);
            if is_stage_name(&image, &instructions) {
                continue;
            }
            let tag = image
                .rsplit_once(':')
                .map(|(_, tag)| tag)
                .filter(|tag| !tag.contains('/'));
            match tag {
                None => problems.push(format!("base image `{image}` has no explicit tag")),
                Some(tag) if tag.starts_with("latest") => {
                    problems.push(format!("base image `{image}` uses the moving `latest` tag"));
                }
                Some(_) => {}
            }
        } else if let Some(user) = line.strip_prefix("USER ") {
            last_user = Some(user.trim().to_owned());
        }
    }
    if stages == 0 {
        problems.push("no FROM".to_owned());
    }
    match last_user.as_deref() {
        None => problems.push("the final stage never sets USER, so it runs as root".to_owned()),
        Some(user) => {
            let uid = user.split(':').next().unwrap_or("");
            // Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
            if uid.parse::<u32>().map_or(true, |uid| uid == 0) {
                problems.push(format!(
                    "the final USER `{user}` is not a numeric non-root uid"
                ));
            }
        }
    }
    problems
}

/// Instructions with continuation lines joined and comments dropped.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// `${NAME}` / `$NAME` replaced by the ARG default, as `docker build` does without --build-arg.
fn expand(image: &str, args: &[(String, String)]) -> String {
    let mut out = image.to_owned();
    for (name, value) in args {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

fn is_stage_name(image: &str, instructions: &[String]) -> bool {
    instructions.iter().any(|line| {
        line.starts_with("FROM ")
            && line
                .to_ascii_lowercase()
                .ends_with(&format!(" as {}", image.to_ascii_lowercase()))
    })
}
