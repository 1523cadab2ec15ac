#!/bin/sh
# Run a cvm workspace with Docker, from the image the top-level Dockerfile
# builds (docker build -t cvm .). Named volumes keep the workspace's changes
# and the home directory across runs; limits given to docker show inside too.
#
#   examples/docker-run.sh                 a shell in the workspace
#   examples/docker-run.sh --init auto     boot the image's own init (systemd)
#   examples/docker-run.sh -u coder -- bash -l      cvm run options, a command
#   docker exec -it cvm-ws cvm exec -t -u coder -- bash -l    another shell
#
# usage: docker-run.sh [CVM-RUN-OPTIONS] [-- CMD [ARG...]]
# env: IMAGE (default cvm), NAME (container and volume prefix, default cvm-ws)
set -eu
IMAGE=${IMAGE:-cvm}
NAME=${NAME:-cvm-ws}

# cvm's grace period between SIGTERM and SIGKILL on stop, and docker's
# (its default, 10 s, is cvm's too): docker's must be longer, or docker kills
# cvm before cvm has let the workspace stop.
STOP_TIMEOUT=10
DOCKER_STOP_TIMEOUT=15

[ $# -gt 0 ] || set -- -- /bin/bash -l

# --privileged: cvm needs the outer root's full capabilities for namespaces,
#   idmapped mounts and cgroups, and /dev/fuse for its /proc; the workspace
#   inside gets none of that (its root is an unprivileged id outside).
# The state volume must be a real filesystem (ext4, xfs, btrfs), never the
#   container's own overlay: cvm idmaps it.
# --cpus/--memory set the outer container's cgroup; cvm's limits default to
#   "auto" and copy them, and the workspace's /proc shows them.
# /home is a volume in the outer container that cvm binds into the workspace
#   (idmapped: files keep their owners; it starts empty, so make the user's
#   home inside once).
exec docker run --rm -it --privileged \
	--name "$NAME" --hostname "$NAME" \
	--stop-timeout "$DOCKER_STOP_TIMEOUT" \
	--cpus 2 --memory 4g \
	-v "$NAME-state:/var/lib/cvm/state" \
	-v "$NAME-home:/home" \
	-e CVM_SUPERVISOR_STOP_TIMEOUT="${STOP_TIMEOUT}s" \
	-e CVM_WORKSPACE_HOSTNAME="$NAME" \
	"$IMAGE" run --volume /home:/home "$@"
