# The session host's image (ECS Fargate, arm64). `sam build` does not build ECS images;
# build and push this one before `sam deploy` (README, "Deploying"):
#   docker buildx build --platform linux/arm64 -t <ecr-repo>:<tag> --push .
# Multi-stage: the workspace is compiled in the Rust image, and only the binary goes into
# a distroless image (glibc and CA certificates, no shell, runs as non-root).

FROM rust:1.94-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p session-host \
    && cp target/release/session-host /session-host

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /session-host /session-host
ENV HEALTH_PORT=8080 HEALTH_BIND_ALL=0
USER nonroot
ENTRYPOINT ["/session-host"]
