# tollgate's container image: built in the official Rust image, run from Debian slim as a
# non-root user with CA certificates (TLS to Azure OpenAI, Entra ID, Redis).
#
#   docker build -t tollgate .
#   docker run -p 8000:8000 -e OPENAI_API_KEY=sk-... tollgate
#
# See docs/deploy.md (App Service, Kubernetes with workload identity). The runtime image has no
# curl: the HEALTHCHECK runs `tollgate healthcheck`, which asks this server's /health.

ARG RUST_VERSION=1
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and build output between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p mcp-server --bin tollgate \
 && cp target/release/tollgate /usr/local/bin/tollgate

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tollgate \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin tollgate
COPY --from=builder /usr/local/bin/tollgate /usr/local/bin/tollgate
USER 10001:10001
# Listen on every interface inside the container; App Service routes to WEBSITES_PORT (set it
# to PORT). JSON logs for Log Analytics.
ENV HOST=0.0.0.0 \
    PORT=8000 \
    LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=6s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/tollgate", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/tollgate"]
