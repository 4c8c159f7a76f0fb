# Starcast for Hugging Face Spaces (Docker SDK).
#
# Stages: chef (tools) -> planner (dependency recipe), bindgen-version ->
# builder (cached dependency layers, then the app); detector (a model file from a crate) ->
# assets (default data, fetched from package registries at build time) ->
# runtime (small, UID 1000).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS chef
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add wasm32-unknown-unknown \
 && cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /build

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# wasm-bindgen-cli must match the wasm-bindgen in Cargo.lock exactly. Only
# the version is handed on, so another change to Cargo.lock doesn't
# reinstall the tool.
FROM chef AS bindgen-version
COPY Cargo.lock ./
RUN awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock >/wasm-bindgen-version

FROM chef AS builder
COPY --from=bindgen-version /wasm-bindgen-version ./
RUN cargo install wasm-bindgen-cli --version "$(cat wasm-bindgen-version)"
# Dependencies only: this layer is rebuilt when Cargo.toml/Cargo.lock change,
# not when the code does.
COPY --from=planner /build/recipe.json recipe.json
RUN cargo chef cook --release --package starcast-server --recipe-path recipe.json \
 && cargo chef cook --profile wasm-release --target wasm32-unknown-unknown --package starcast-frontend --recipe-path recipe.json \
 && CARGO_TARGET_DIR=/build/target/browser \
    RUSTFLAGS='--cfg getrandom_backend="wasm_js" -C target-feature=+simd128' \
    cargo chef cook --release --target wasm32-unknown-unknown --package starcast-browser \
    --recipe-path recipe.json
COPY tools/package.json tools/.npmrc tools/
RUN cd tools && npm install --no-audit --no-fund
COPY . .
RUN CARGO_TARGET_DIR=/build/target STARCAST_SITE=/build/site scripts/build.sh release

# SeetaFace's face detector model ships inside the rustface crate.
FROM chef AS detector
RUN cargo new --lib --vcs none /detector \
 && cd /detector \
 && cargo add rustface@0.1.7 \
 && cargo fetch \
 && cp "$(find "$CARGO_HOME/registry/src" -path '*/rustface-0.1.7/model/seeta_fd_frontal_v1.0.bin' | head -n 1)" /seeta_fd_frontal_v1.0.bin

FROM python:3.11-slim-bookworm AS assets
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
COPY --from=detector /seeta_fd_frontal_v1.0.bin /detector/
COPY scripts/lib.sh scripts/fetch-defaults.sh /scripts/
RUN SEETA_MODEL=/detector/seeta_fd_frontal_v1.0.bin /scripts/fetch-defaults.sh /data

FROM debian:bookworm-slim AS runtime
ENV HOME=/home/user \
    HF_HOME=/home/user/.cache/huggingface \
    STARCAST_HOST=0.0.0.0 \
    PORT=7860 \
    STARCAST_DATA=/home/user/data \
    STARCAST_SITE=/app/site \
    STARCAST_SOURCES=/app/sources.toml \
    RUST_LOG=info
# The daily loop at 03:00 UTC: collect -> process horoscopes, retrain the
# actor model when its photos changed. Unset it to run the loop only on demand.
ENV STARCAST_SCHEDULE="0 3 * * *"
# HOME is made and owned before the data is copied in: a `chown -R` after
# the copy would store the data a second time, in its own layer.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 user \
 && mkdir -p "$HF_HOME" \
 && chown -R 1000:1000 /home/user
COPY --from=builder /build/target/release/starcast /app/starcast
COPY --from=builder /build/site /app/site
COPY pipeline/sources.toml /app/sources.toml
COPY --from=assets --chown=1000:1000 /data /home/user/data
USER 1000
WORKDIR /home/user
EXPOSE 7860
CMD ["/app/starcast", "serve"]
