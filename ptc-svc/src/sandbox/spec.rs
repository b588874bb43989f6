//! The hardened container definition (ptc.md section 12) as a pure function of the configuration,
//! so every setting is asserted by a unit test and the Docker tests check that it holds.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits};

use super::{ContainerSpec, Resources};
use crate::config::SandboxConfig;

pub const WORKSPACE: &str = "/workspace";
pub const TMP: &str = "/tmp";

/// The create request for one session's container.
pub fn container_body(config: &SandboxConfig, spec: &ContainerSpec) -> ContainerCreateBody {
    let user = format!("{}:{}", config.uid, config.gid);
    ContainerCreateBody {
        image: Some(config.image.clone()),
        // The entrypoint, not the command, so an image's own ENTRYPOINT cannot wrap the runner.
        entrypoint: Some(crate::runner::container_command()),
        cmd: Some(Vec::new()),
        user: Some(user),
        working_dir: Some(WORKSPACE.to_owned()),
        // Only these (ptc.md section 12); PATH because an imported image carries none. The
        // interpreter runs with -I, so PYTHON* variables an image sets are ignored.
        env: Some(vec![
            format!("HOME={WORKSPACE}"),
            format!("TMPDIR={TMP}"),
            "LANG=C.UTF-8".to_owned(),
            "PATH=/usr/local/bin:/usr/bin:/bin".to_owned(),
        ]),
        // The protocol channel: stdin open and attached, no TTY (so stdout and stderr stay apart).
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(false),
        tty: Some(false),
        network_disabled: Some(true),
        labels: Some(spec.labels().into_iter().collect()),
        host_config: Some(host_config(config, &spec.resources)),
        ..Default::default()
    }
}

fn host_config(config: &SandboxConfig, resources: &Resources) -> HostConfig {
    let or = |value: u64, own: u64| if value == 0 { own } else { value };
    let memory = i64::try_from(or(resources.memory_bytes, config.memory_bytes)).unwrap_or(i64::MAX);
    let nano_cpus = match resources.milli_cpus {
        0 => (config.cpus * 1e9).round() as i64,
        milli => i64::from(milli) * 1_000_000,
    };
    let pids = or(u64::from(resources.pids), u64::from(config.pids));
    let tmpfs = HashMap::from([
        (
            TMP.to_owned(),
            format!("rw,nosuid,nodev,noexec,size={}", config.tmp_bytes),
        ),
        (
            WORKSPACE.to_owned(),
            format!(
                "rw,nosuid,nodev,noexec,size={},mode=0700,uid={},gid={}",
                config.workspace_bytes, config.uid, config.gid
            ),
        ),
    ]);
    HostConfig {
        network_mode: Some("none".to_owned()),
        readonly_rootfs: Some(true),
        tmpfs: Some(tmpfs),
        cap_drop: Some(vec!["ALL".to_owned()]),
        cap_add: Some(Vec::new()),
        privileged: Some(false),
        security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
        memory: Some(memory),
        // Equal to the memory limit: no swap, so a memory bomb meets the OOM killer promptly.
        memory_swap: Some(memory),
        nano_cpus: Some(nano_cpus),
        pids_limit: Some(i64::try_from(pids).unwrap_or(i64::MAX)),
        ulimits: Some(vec![
            ulimit("nofile", 256),
            ulimit("core", 0),
            ulimit("fsize", 64 << 20),
        ]),
        ipc_mode: Some("private".to_owned()),
        binds: Some(Vec::new()),
        mounts: Some(Vec::new()),
        devices: Some(Vec::new()),
        extra_hosts: Some(Vec::new()),
        publish_all_ports: Some(false),
        // User output travels in protocol messages on stdout; no log driver may keep it. The
        // runner's diagnostics (stderr) are read from the attach stream and logged by ptc-svc.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".to_owned()),
            config: Some(HashMap::new()),
        }),
        // Removed by ptc-svc itself, after reading the exit state (OOMKilled).
        auto_remove: Some(false),
        init: Some(config.init),
        runtime: config.runtime.clone(),
        ..Default::default()
    }
}

fn ulimit(name: &str, limit: i64) -> ResourcesUlimits {
    ResourcesUlimits {
        name: Some(name.to_owned()),
        soft: Some(limit),
        hard: Some(limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn body() -> ContainerCreateBody {
        let config = Config::from_lookup(|_| None).unwrap();
        container_body(
            &config.sandbox,
            &ContainerSpec {
                container_id: "container_abc".into(),
                replica_id: "ptc-0".into(),
                expires_unix: 42,
                resources: Resources::default(),
            },
        )
    }

    #[test]
    fn hardening_settings() {
        let body = body();
        let host = body.host_config.clone().unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(host.cap_add, Some(vec![]));
        assert_eq!(host.privileged, Some(false));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges:true".to_owned()])
        );
        assert_eq!(host.memory, Some(268_435_456));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.pids_limit, Some(64));
        assert_eq!(host.binds, Some(vec![]));
        assert_eq!(host.mounts, Some(vec![]));
        assert!(host.port_bindings.is_none());
        let tmpfs = host.tmpfs.unwrap();
        assert_eq!(tmpfs["/tmp"], "rw,nosuid,nodev,noexec,size=67108864");
        assert!(tmpfs["/workspace"].contains("uid=65534,gid=65534"));
        assert_eq!(host.log_config.unwrap().typ.as_deref(), Some("none"));
        assert_eq!(body.user.as_deref(), Some("65534:65534"));
        assert_eq!(body.working_dir.as_deref(), Some("/workspace"));
        assert_eq!(body.network_disabled, Some(true));
        let env = body.env.unwrap();
        assert!(env.contains(&"HOME=/workspace".to_owned()));
        assert!(env.contains(&"TMPDIR=/tmp".to_owned()));
        assert!(!env.iter().any(|e| e.starts_with("PYTHON")));
    }

    #[test]
    fn session_resources_replace_the_configured_ones() {
        let config = Config::from_lookup(|_| None).unwrap();
        let spec = ContainerSpec {
            container_id: "container_abc".into(),
            replica_id: "ptc-0".into(),
            expires_unix: 42,
            resources: Resources {
                memory_bytes: 128 << 20,
                milli_cpus: 250,
                pids: 32,
            },
        };
        let host = container_body(&config.sandbox, &spec).host_config.unwrap();
        assert_eq!(host.memory, Some(128 << 20));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.nano_cpus, Some(250_000_000));
        assert_eq!(host.pids_limit, Some(32));
    }

    #[test]
    fn labels_name_replica_container_and_expiry() {
        let labels = body().labels.unwrap();
        assert_eq!(labels["ptc.replica"], "ptc-0");
        assert_eq!(labels["ptc.container"], "container_abc");
        assert_eq!(labels["ptc.expires"], "42");
    }
}
