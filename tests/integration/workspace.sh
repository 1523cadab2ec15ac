# What the workspace test scripts share: source it as
#   . "$(dirname "$0")/workspace.sh" "$1"
# It takes the build dir, loads lib.sh and outer.sh, and sets BUILD, CVM,
# PROBE and ROOTFS (the cached busybox rootfs with the probe).
set -u
BUILD=$(cd "${1:?build dir}" && pwd)
CVM=$BUILD/cvm
PROBE=$BUILD/tests/probe/probe
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/outer.sh"
ROOTFS=$(outer_rootfs "$BUILD") || { echo "cannot build the rootfs fixture"; exit 1; }

# ws_start NAME STATE [cvm run args] -- CMD...: a long-running workspace as
# PID 1 of outer container NAME; returns once `cvm exec` can reach it.
# WS_ENV=(env NAME=VALUE...) puts variables in cvm's environment.
ws_start() {
	local name=$1 state=$2; shift 2
	outer_start "$name" -- ${WS_ENV[@]+"${WS_ENV[@]}"} \
		"$CVM" run --rootfs "$ROOTFS" --state "$state" "$@" || return 1
	for _ in $(seq 200); do
		outer_exec "$name" test -S /run/cvm/control.sock 2>/dev/null && return 0
		sleep 0.05
	done
	echo "workspace $name did not come up:" >&2; outer_log "$name" >&2
	return 1
}

# ws_exec NAME CMD...: cvm exec in it, from its outer container
ws_exec() {
	local name=$1; shift
	outer_exec "$name" "$CVM" exec "$@"
}
