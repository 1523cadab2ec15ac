# The outer image: a static musl cvm as PID 1, with an example workspace
# image inside it.
#
#   docker build -t cvm . && docker run --rm -it --privileged cvm
#
# gives a shell in a workspace built from that image. Its changes persist in
# the volume at /var/lib/cvm/state for as long as the volume lives (name it
# with -v NAME:/var/lib/cvm/state to keep it); examples/docker-run.sh shows
# the other settings. Another workspace image (examples/workspace/Dockerfile:
# Ubuntu with systemd, Docker, sudo, git):
#
#   docker build -t cvm-workspace examples/workspace
#   docker build --build-arg WORKSPACE_IMAGE=cvm-workspace -t cvm .
#
# Release builds take the defaults: cvm built from source on Alpine (its
# build stage runs scripts/build-musl, the script the tests run on Debian; on
# Alpine it takes the *-static packages), an Alpine outer image. Offline (the
# tests: tests/vm/run BUILD engine) three build arguments swap every
# registry image for something local, and BuildKit skips the stages not used:
#
#   DOCKER_BUILDKIT=1 docker build --build-arg CVM_BUILD=prebuilt \
#       --build-arg OUTER_BASE=scratch --build-arg WORKSPACE_IMAGE=local-ws -t cvm CONTEXT
#
# where CONTEXT holds this file and a static cvm (build-musl/cvm.stripped)
# named cvm, and local-ws is an image of the engine's own (docker import).
ARG WORKSPACE_IMAGE=ubuntu:24.04
# build: from source (Alpine); prebuilt: the file cvm of the build context
ARG CVM_BUILD=build
# the outer image's base: cvm is static, so scratch will do
ARG OUTER_BASE=alpine:3.20

# 1. cvm, linked statically against musl (scripts/build-musl installs the
#    *-static packages of libseccomp, libcap-ng, inih and the image puller's
#    libcurl, libarchive, json-c, mbedtls). The puller finds registries' CAs in
#    /etc/ssl/certs/ca-certificates.crt, which alpine:3.20 has and scratch has
#    not (CVM_IMAGE_CA_DIR / CODER_EXTRA_CERTS_PATH then).
FROM alpine:3.20 AS build
RUN apk add --no-cache bash
COPY . /src
WORKDIR /src
RUN scripts/build-musl && install -D -m 755 build-musl/cvm.stripped /out/cvm

# 1'. or a static cvm built elsewhere (scripts/build-musl), from the context
FROM scratch AS prebuilt
COPY cvm /out/cvm

FROM ${CVM_BUILD} AS cvm

# 2. the workspace image, whose whole filesystem becomes the workspace's root
FROM ${WORKSPACE_IMAGE} AS workspace

# 3. the outer image: cvm, the unpacked workspace image, and the config as
#    CVM_* variables (docker run -e CVM_...=... overrides them)
FROM ${OUTER_BASE}
COPY --from=cvm /out/cvm /usr/local/bin/cvm
COPY --from=workspace / /var/lib/cvm/images/workspace/
# The image dir sits on the outer image's overlay, which cannot be idmapped:
# cvm copies it once into the state dir, which must be a volume (a
# filesystem that can be idmapped), never the container's own overlay.
# The image is named with envbox's variable, so that a pod's own
# CODER_INNER_IMAGE (a registry reference, as Coder's kubernetes-envbox
# template writes it) replaces it; a CVM_WORKSPACE_ROOTFS would win over it.
ENV CODER_INNER_IMAGE=/var/lib/cvm/images/workspace \
    CVM_WORKSPACE_STATE=/var/lib/cvm/state \
    CVM_WORKSPACE_ENV_PASS=TERM
VOLUME /var/lib/cvm/state
# docker stop sends this to cvm, which passes SIGTERM into the workspace and
# waits its grace period (10 s by default; give docker stop more: -t 15).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cvm"]
CMD ["run", "--", "/bin/bash", "-l"]
