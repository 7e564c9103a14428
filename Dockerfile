# syntax=docker/dockerfile:1
# The dooz image: built with the project's toolchain, shipped on a distroless
# base (glibc, CA certificates, no shell, no package manager), as a non-root
# user.
#
#   docker build -t dooz:dev .
#   docker run --rm -p 9000:9000 -p 9001:9001 -v dooz-data:/var/lib/dooz dooz:dev
#
# The Helm chart (charts/dooz) replaces the arguments with `serve --config
# /etc/dooz/dooz.toml` and mounts the root key, the config and the data volume.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and build outputs between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p dooz-gateway --bin dooz \
 && install -D -m 0755 target/release/dooz /out/usr/local/bin/dooz \
 && install -d -m 0700 -o 10001 -g 10001 /out/var/lib/dooz

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /
USER 10001:10001
WORKDIR /var/lib/dooz
VOLUME ["/var/lib/dooz"]
EXPOSE 9000 9001
# dooz serve would re-execute itself once to set this (docs/BENCHMARKS.md).
ENV MALLOC_MMAP_THRESHOLD_=8388608
ENTRYPOINT ["/usr/local/bin/dooz"]
# Flags, not DOOZ_* variables: a variable would override a mounted config file.
CMD ["serve", "--data-dir", "/var/lib/dooz", "--listen", "0.0.0.0:9000", "--admin-listen", "0.0.0.0:9001"]
