# The fake Bedrock (tests/fake-bedrock) as an image, for compose's `fake` profile: try the
# gateway with no AWS account. Test support only; never part of a production deployment.
#   docker build -f compose/fake-bedrock.Dockerfile -t gateway/fake-bedrock:0.1.0 .
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p fake-bedrock --bin fake-bedrock \
    && install -D -m 0755 target/release/fake-bedrock /out/fake-bedrock

FROM ${RUNTIME_IMAGE}
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin gateway
COPY --from=build /out/fake-bedrock /usr/local/bin/fake-bedrock
USER 10001:10001
EXPOSE 8090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8090"]
ENTRYPOINT ["/usr/local/bin/fake-bedrock"]
# Record nothing: a long-running demo would otherwise grow its request log without bound.
CMD ["--listen", "0.0.0.0:8090", "--record-limit", "0"]
