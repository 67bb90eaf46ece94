# The development image: the toolchain and cargo-watch. The source is mounted (compose.yaml),
# not copied; cargo-watch rebuilds and restarts the role on every change, and the target dir
# and registry live in volumes so that rebuilds are incremental.
FROM rust:1.95-bookworm
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo install --locked cargo-watch@8.5.3
WORKDIR /src
ENV CARGO_TARGET_DIR=/target \
    SQLX_OFFLINE=true \
    LABS_BIND=0.0.0.0:8080
EXPOSE 8080
# compose.yaml gives each service its role: `cargo watch ... -x "run -- serve --role api"`.
CMD ["cargo", "watch", "-w", "crates", "-w", "migrations", "-w", "Cargo.toml", "-x", "run -- serve"]
