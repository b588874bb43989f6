# A DynamoDB-compatible store for compose and the Kubernetes dev overlay: dynoxide, the same
# SQLite-backed engine translator-svc embeds by default, as a standalone server. Built from
# crates.io, so no third-party image is needed.
#   docker build -f compose/dynoxide.Dockerfile -t gateway/dynoxide:3.2.0 .
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
ARG DYNOXIDE_VERSION=3.2.0
# Only the HTTP server and CLI (no MCP server, no import tooling): fewer dependencies to trust.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo install dynoxide-rs --version "${DYNOXIDE_VERSION}" --locked --root /out \
        --no-default-features --features native-sqlite,http-server,cli

FROM ${RUNTIME_IMAGE}
RUN groupadd --system --gid 10001 dynoxide \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin dynoxide \
    && install -d -o 10001 -g 10001 -m 0750 /data
COPY --from=build /out/bin/dynoxide /usr/local/bin/dynoxide
USER 10001:10001
EXPOSE 8000
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["dynoxide", "healthcheck", "--port", "8000"]
ENTRYPOINT ["/usr/local/bin/dynoxide"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--db-path", "/data/gateway.db"]
