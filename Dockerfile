# kazoo-port-requests: build with the Rust toolchain, run on Debian with wkhtmltopdf.
FROM rust:1-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY schemas ./schemas
COPY couchdb_views ./couchdb_views
RUN cargo build --release --locked --bin kazoo-port-requests

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends wkhtmltopdf fonts-dejavu-core ca-certificates libssl3 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /app kpr
WORKDIR /app
COPY --from=build /src/target/release/kazoo-port-requests /usr/local/bin/kazoo-port-requests
COPY templates ./templates
ENV LISTEN_ADDR=0.0.0.0:8000 \
    TEMPLATES_DIR=/app/templates \
    QT_QPA_PLATFORM=offscreen \
    LOG=info
USER kpr
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
ENTRYPOINT ["kazoo-port-requests"]
CMD ["serve"]
