//! [`Sandbox`] on a Docker-API engine (Docker, Podman's compatible socket) through bollard.
//! `DOCKER_HOST` selects the engine as usual; the API version is negotiated, so older engines work.

use std::collections::HashMap;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, ListContainersOptions,
    RemoveContainerOptions,
};
use futures_util::{StreamExt, TryStreamExt};

use super::{
    ContainerSpec, EngineHealth, ExitReason, LABEL_EXPIRES, LABEL_REPLICA, OutputChunk, Sandbox,
    SandboxError, Started, spec,
};
use crate::config::SandboxConfig;

type Connect = Box<dyn Fn() -> Result<Docker, BollardError> + Send + Sync>;

pub struct DockerSandbox {
    /// Makes a client; bollard checks a unix socket exists when connecting, so this is retried
    /// until the engine is there.
    connect: Connect,
    /// The negotiated client, once the engine answered (retried on every call until then).
    negotiated: tokio::sync::RwLock<Option<Docker>>,
    config: SandboxConfig,
}

impl DockerSandbox {
    /// bollard's default engine (`DOCKER_HOST`, else the local socket). Never fails because the
    /// engine is down: that is reported by health and per request (529), and the service
    /// recovers when the engine comes back.
    pub async fn connect(config: SandboxConfig) -> Self {
        Self::with_connect(Box::new(Docker::connect_with_defaults), config).await
    }

    /// A given engine socket (tests point it at an absent one).
    pub async fn connect_unix(path: &str, config: SandboxConfig) -> Self {
        let path = path.to_owned();
        let connect = move || Docker::connect_with_unix(&path, 120, bollard::API_DEFAULT_VERSION);
        Self::with_connect(Box::new(connect), config).await
    }

    async fn with_connect(connect: Connect, config: SandboxConfig) -> Self {
        let sandbox = Self {
            connect,
            negotiated: tokio::sync::RwLock::new(None),
            config,
        };
        if let Err(error) = sandbox.client().await {
            tracing::warn!(%error, "container engine not reachable yet");
        }
        sandbox
    }

    /// The client speaking the engine's API version (older engines, e.g. Docker 20.10, reject
    /// the newest version bollard defaults to).
    pub async fn client(&self) -> Result<Docker, SandboxError> {
        if let Some(docker) = self.negotiated.read().await.as_ref() {
            return Ok(docker.clone());
        }
        let docker = (self.connect)()
            .map_err(unreachable)?
            .negotiate_version()
            .await
            .map_err(unreachable)?;
        *self.negotiated.write().await = Some(docker.clone());
        Ok(docker)
    }

    /// Pulls the image when it is missing (PTC_PULL_POLICY=if_missing, at start only).
    pub async fn pull_if_missing(&self) -> Result<(), SandboxError> {
        if self.image_present().await? {
            return Ok(());
        }
        let options = CreateImageOptions {
            from_image: Some(self.config.image.clone()),
            ..Default::default()
        };
        self.client()
            .await?
            .create_image(Some(options), None, None)
            .try_collect::<Vec<_>>()
            .await
            .map_err(engine)?;
        Ok(())
    }

    async fn image_present(&self) -> Result<bool, SandboxError> {
        match self.client().await?.inspect_image(&self.config.image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(error) => Err(engine(error)),
        }
    }

    async fn list(
        &self,
        label: String,
    ) -> Result<Vec<(String, HashMap<String, String>)>, SandboxError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_owned(), vec![label])])),
            ..Default::default()
        };
        let containers = self
            .client()
            .await?
            .list_containers(Some(options))
            .await
            .map_err(engine)?;
        Ok(containers
            .into_iter()
            .filter_map(|c| Some((c.id?, c.labels.unwrap_or_default())))
            .collect())
    }
}

#[async_trait::async_trait]
impl Sandbox for DockerSandbox {
    async fn start(&self, container: &ContainerSpec) -> Result<Started, SandboxError> {
        let docker = self.client().await?;
        let body = spec::container_body(&self.config, container);
        let options = CreateContainerOptions {
            name: Some(container.name()),
            ..Default::default()
        };
        let created = match docker.create_container(Some(options), body).await {
            Ok(created) => created,
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Err(SandboxError::ImageMissing(self.config.image.clone())),
            Err(error) => return Err(engine(error)),
        };
        let id = created.id;
        // Attach before start (as `docker run` does): the ready message cannot be missed, and no
        // log driver is needed to replay it.
        let attach = AttachContainerOptions {
            stdin: true,
            stdout: true,
            stderr: true,
            stream: true,
            logs: false,
            ..Default::default()
        };
        let attached = match docker.attach_container(&id, Some(attach)).await {
            Ok(attached) => attached,
            Err(error) => {
                let _ = self.remove(&id).await;
                return Err(engine(error));
            }
        };
        if let Err(error) = docker.start_container(&id, None).await {
            let _ = self.remove(&id).await;
            return Err(engine(error));
        }
        // bollard splits Docker's multiplexed frames (8-byte header: stream, length) into
        // per-stream payloads; lines are reassembled per stream in runner::framing.
        let output = attached.output.filter_map(|item| async move {
            match item {
                Ok(LogOutput::StdOut { message }) => Some(Ok(OutputChunk::Stdout(message))),
                Ok(LogOutput::StdErr { message }) => Some(Ok(OutputChunk::Stderr(message))),
                Ok(LogOutput::StdIn { .. } | LogOutput::Console { .. }) => None,
                Err(error) => Some(Err(std::io::Error::other(error))),
            }
        });
        Ok(Started {
            engine_id: id,
            stdin: attached.input,
            output: Box::pin(output),
        })
    }

    async fn exit_reason(&self, engine_id: &str) -> ExitReason {
        // The output can end a moment before the engine records the exit; ask a few times.
        let docker = match self.client().await {
            Ok(docker) => docker,
            Err(error) => return ExitReason::Unknown(error.to_string()),
        };
        for _ in 0..20 {
            match docker.inspect_container(engine_id, None).await {
                Ok(inspect) => {
                    let state = inspect.state.unwrap_or_default();
                    if state.oom_killed == Some(true) {
                        return ExitReason::OutOfMemory;
                    }
                    if state.running != Some(true) {
                        return ExitReason::Exited(state.exit_code.unwrap_or(-1));
                    }
                }
                Err(error) => return ExitReason::Unknown(error.to_string()),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        ExitReason::Unknown("the container still runs after its output ended".to_owned())
    }

    async fn remove(&self, engine_id: &str) -> Result<(), SandboxError> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self
            .client()
            .await?
            .remove_container(engine_id, Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(()),
            Err(error) => Err(engine(error)),
        }
    }

    async fn sweep(&self, replica_id: Option<&str>, now_unix: i64) -> Result<usize, SandboxError> {
        let mut doomed: Vec<String> = match replica_id {
            Some(replica_id) => self
                .list(format!("{LABEL_REPLICA}={replica_id}"))
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
            None => Vec::new(),
        };
        for (id, labels) in self.list(LABEL_EXPIRES.to_owned()).await? {
            let expired = labels
                .get(LABEL_EXPIRES)
                .and_then(|value| value.parse::<i64>().ok())
                .is_some_and(|expires| expires < now_unix);
            if expired && !doomed.contains(&id) {
                doomed.push(id);
            }
        }
        for id in &doomed {
            self.remove(id).await?;
        }
        Ok(doomed.len())
    }

    async fn health(&self) -> EngineHealth {
        let version = match self.client().await {
            Ok(docker) => docker.version().await.map_err(unreachable),
            Err(error) => Err(error),
        };
        let version = match version {
            Ok(version) => version.version.unwrap_or_default(),
            Err(error) => {
                // Renegotiate next time: the engine may have been replaced by another version.
                *self.negotiated.write().await = None;
                return EngineHealth {
                    reachable: false,
                    error: error.to_string(),
                    ..Default::default()
                };
            }
        };
        match self.image_present().await {
            Ok(present) => EngineHealth {
                reachable: true,
                version,
                image_present: present,
                error: if present {
                    String::new()
                } else {
                    SandboxError::ImageMissing(self.config.image.clone()).to_string()
                },
            },
            Err(error) => EngineHealth {
                reachable: true,
                version,
                image_present: false,
                error: error.to_string(),
            },
        }
    }
}

fn unreachable(error: BollardError) -> SandboxError {
    SandboxError::Unreachable(error.to_string())
}

fn engine(error: BollardError) -> SandboxError {
    match error {
        BollardError::HyperResponseError { .. }
        | BollardError::IOError { .. }
        | BollardError::RequestTimeoutError
        | BollardError::SocketNotFoundError(_) => SandboxError::Unreachable(error.to_string()),
        other => SandboxError::Engine(other.to_string()),
    }
}
