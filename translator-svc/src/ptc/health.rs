//! `GET /health/ptc` (ptc.md section 15): the ptc-svc `Health` aggregate as the body and status.

use gateway_proto::ptc::v1::HealthRequest;
use serde_json::{Value, json};

use super::config::PtcConfig;
use super::sandbox::Sandbox;

/// ptc-svc `Health` with peers, as the section 15 body and its HTTP status.
pub async fn health(sandbox: &dyn Sandbox, config: &PtcConfig) -> (u16, Value) {
    let checked_at = crate::keys::clock::rfc3339_secs(std::time::SystemTime::now());
    match sandbox
        .health(HealthRequest {
            include_peers: true,
        })
        .await
    {
        Ok(h) => {
            let usable = h.replicas.iter().filter(|r| r.usable).count();
            let (status, code) = match usable {
                0 => ("unhealthy", 503),
                n if n == h.replicas.len() => ("healthy", 200),
                _ => ("degraded", 200),
            };
            let replicas: Vec<Value> = h
                .replicas
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id, "docker": r.docker, "docker_version": r.docker_version,
                        "image": r.image, "image_present": r.image_present,
                        "runner_version": r.runner_version, "active_sessions": r.active_sessions,
                        "max_sessions": r.max_sessions, "usable": r.usable, "error": r.error,
                    })
                })
                .collect();
            let limits = h.limits.unwrap_or_default();
            let timeouts = h.timeouts.unwrap_or_default();
            let mut body = json!({
                "status": status, "enabled": true, "replicas": replicas,
                "limits": {"network": limits.network, "read_only_root": limits.read_only_root,
                           "user": limits.user, "memory_bytes": limits.memory_bytes,
                           "cpus": limits.cpus, "pids": limits.pids},
                "timeouts": {"execution_s": timeouts.execution_s,
                             "session_idle_s": timeouts.session_idle_s,
                             "session_max_lifetime_s": timeouts.session_max_lifetime_s},
                "checked_at": checked_at,
            });
            if code == 503 {
                body["error"] = json!("no ptc-svc replica can run code");
            }
            (code, body)
        }
        Err(status) => {
            tracing::warn!(code = ?status.code(), endpoint = ?config.endpoint, "ptc-svc health failed");
            (
                503,
                json!({"status": "unhealthy", "enabled": true, "replicas": [],
                         "error": "ptc-svc unreachable", "checked_at": checked_at}),
            )
        }
    }
}
