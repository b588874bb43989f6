//! The offline sandbox image build (tests, `cargo xtask up`, air-gapped hosts): a minimal Debian
//! root made by debootstrap, plus the runner at /opt/ptc/runner.py, imported with the engine's
//! import API (`docker import`), labelled with the runner's SHA-256. Idempotent: an image whose
//! label matches the embedded runner is left alone, and the debootstrap root is cached.
//! The production build is `ptc-svc/sandbox/Dockerfile` (same runner file, same user).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures_util::TryStreamExt;
use tokio::io::AsyncReadExt;

use crate::runner::{RUNNER_SOURCE, runner_sha256, runner_version};

pub const LABEL_RUNNER_SHA256: &str = "ptc.runner.sha256";
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineImage {
    /// `repository:tag`.
    pub image: String,
    /// Holds `rootfs/` (the cached debootstrap result) and the build lock.
    pub cache_dir: PathBuf,
    pub mirror: String,
    pub suite: String,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildResult {
    /// The image already carries this runner.
    UpToDate,
    Built {
        debootstrapped: bool,
        seconds: u64,
    },
}

/// The first Debian mirror named in the host's apt sources (deb822 or one-line format).
pub fn host_mirror() -> Option<String> {
    let mut sources = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        sources.extend(more);
    }
    sources.iter().find_map(|path| {
        let text = std::fs::read_to_string(path).ok()?;
        text.lines().find_map(|line| {
            let line = line.trim();
            let uri = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().next()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                rest.split_whitespace()
                    .find(|word| word.starts_with("http"))
            } else {
                None
            }?;
            (uri.starts_with("http") && uri.trim_end_matches('/').ends_with("/debian"))
                .then(|| uri.trim_end_matches('/').to_owned())
        })
    })
}

/// Whether `image` exists and carries the embedded runner.
pub async fn image_is_current(docker: &Docker, image: &str) -> anyhow::Result<bool> {
    match docker.inspect_image(image).await {
        Ok(inspect) => Ok(inspect
            .config
            .and_then(|config| config.labels)
            .and_then(|labels| labels.get(LABEL_RUNNER_SHA256).cloned())
            == Some(runner_sha256())),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(error) => Err(error).context("cannot inspect the sandbox image"),
    }
}

/// Builds the image unless it is current. Needs root (debootstrap) the first time.
pub async fn ensure_offline_image(
    docker: &Docker,
    spec: &OfflineImage,
) -> anyhow::Result<BuildResult> {
    if image_is_current(docker, &spec.image).await? {
        return Ok(BuildResult::UpToDate);
    }
    let started = Instant::now();
    std::fs::create_dir_all(&spec.cache_dir)
        .with_context(|| format!("cannot create {}", spec.cache_dir.display()))?;
    // Two builds at once (a test run and `xtask up`) would trample one root filesystem.
    let lock = std::fs::File::create(spec.cache_dir.join("build.lock"))?;
    lock.lock().context("cannot lock the image build")?;
    if image_is_current(docker, &spec.image).await? {
        return Ok(BuildResult::UpToDate);
    }
    let rootfs = spec.cache_dir.join("rootfs");
    let done_marker = spec.cache_dir.join("rootfs.done");
    let debootstrapped = !done_marker.exists();
    if debootstrapped {
        debootstrap(spec, &rootfs).await?;
        std::fs::write(&done_marker, format!("{} {}\n", spec.suite, spec.mirror))?;
    }
    install_runner(&rootfs, spec.uid, spec.gid).await?;
    import(docker, spec, &rootfs).await?;
    if !image_is_current(docker, &spec.image).await? {
        bail!(
            "the imported image {} does not carry the runner label",
            spec.image
        );
    }
    Ok(BuildResult::Built {
        debootstrapped,
        seconds: started.elapsed().as_secs(),
    })
}

async fn debootstrap(spec: &OfflineImage, rootfs: &Path) -> anyhow::Result<()> {
    if rootfs.exists() {
        tokio::fs::remove_dir_all(rootfs)
            .await
            .with_context(|| format!("cannot clear the partial root {}", rootfs.display()))?;
    }
    tracing::info!(suite = %spec.suite, mirror = %spec.mirror, "debootstrap (about a minute)");
    let status = tokio::process::Command::new("debootstrap")
        .args(["--variant=minbase", "--include=python3", &spec.suite])
        .arg(rootfs)
        .arg(&spec.mirror)
        .stdin(Stdio::null())
        // Progress lines ("I: ...") are noise in CI logs; errors go to stderr.
        .stdout(Stdio::null())
        .status()
        .await
        .context("cannot run debootstrap (apt-get install -y debootstrap; it needs root)")?;
    if !status.success() {
        bail!("debootstrap failed with {status}");
    }
    // Package caches and documentation are dead weight in a sandbox image.
    for dir in [
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
    ] {
        let path = rootfs.join(dir);
        if path.exists() {
            tokio::fs::remove_dir_all(&path).await?;
            tokio::fs::create_dir_all(&path).await?;
        }
    }
    Ok(())
}

async fn install_runner(rootfs: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::{PermissionsExt, chown};
    let dir = rootfs.join("opt/ptc");
    tokio::fs::create_dir_all(&dir).await?;
    let runner = dir.join("runner.py");
    tokio::fs::write(&runner, RUNNER_SOURCE).await?;
    tokio::fs::set_permissions(&runner, std::fs::Permissions::from_mode(0o644)).await?;
    let workspace = rootfs.join("workspace");
    tokio::fs::create_dir_all(&workspace).await?;
    tokio::fs::set_permissions(&workspace, std::fs::Permissions::from_mode(0o700)).await?;
    chown(&workspace, Some(uid), Some(gid)).context("cannot chown /workspace (run as root)")?;
    Ok(())
}

async fn import(docker: &Docker, spec: &OfflineImage, rootfs: &Path) -> anyhow::Result<()> {
    let (repo, tag) = match spec.image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_owned(), tag.to_owned()),
        _ => (spec.image.clone(), "latest".to_owned()),
    };
    let mut tar = tokio::process::Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .context("cannot run tar")?;
    let Some(mut stdout) = tar.stdout.take() else {
        bail!("tar without stdout");
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(16);
    let pump = tokio::spawn(async move {
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            match stdout.read(&mut buffer).await {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .send(Ok(bytes::Bytes::copy_from_slice(&buffer[..n])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(error) => {
                    let _ = tx.send(Err(error)).await;
                    return;
                }
            }
        }
    });
    let user = format!("{}:{}", spec.uid, spec.gid);
    let options = CreateImageOptions {
        from_src: Some("-".to_owned()),
        repo: Some(repo),
        tag: Some(tag),
        changes: vec![
            format!("LABEL {LABEL_RUNNER_SHA256}={}", runner_sha256()),
            format!("LABEL ptc.runner.version={}", runner_version()),
            format!("USER {user}"),
            "WORKDIR /workspace".to_owned(),
            "ENV LANG=C.UTF-8 HOME=/workspace PATH=/usr/local/bin:/usr/bin:/bin".to_owned(),
            r#"CMD ["python3", "-I", "-B", "-u", "/opt/ptc/runner.py"]"#.to_owned(),
        ],
        ..Default::default()
    };
    let body = bollard::body_try_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let imported = docker
        .create_image(Some(options), Some(body), None)
        .try_collect::<Vec<_>>()
        .await;
    let _ = pump.await;
    let status = tar.wait().await?;
    imported.context("docker import failed")?;
    if !status.success() {
        bail!("tar failed with {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_this_hosts_mirror_or_none() {
        if let Some(mirror) = super::host_mirror() {
            assert!(mirror.starts_with("http"));
            assert!(mirror.ends_with("/debian"));
        }
    }
}
