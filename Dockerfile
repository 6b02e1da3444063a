# Build: the Rust toolchain plus the C libraries samael's xmlsec feature needs.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libxml2-dev libxmlsec1-dev libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin authgate

# Run: slim Debian, runtime libraries only, non-root, read-only root filesystem friendly.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libxml2 libxmlsec1 libxmlsec1-openssl curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /nonexistent --shell /usr/sbin/nologin authgate
COPY --from=build /src/target/release/authgate /usr/local/bin/authgate
COPY config/authgate.example.toml /etc/authgate/authgate.example.toml
USER 10001
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=2s --retries=3 CMD curl -fsS http://127.0.0.1:8080/_auth/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/authgate"]
CMD ["serve", "--config", "/etc/authgate/authgate.toml"]
