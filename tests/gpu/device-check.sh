#!/bin/bash
# The GPU check for a machine with an NVIDIA GPU (the `device` tool): cvm as
# PID 1 of an outer container (tests/integration/outer.sh) starts a workspace
# with the GPU required, and inside runs nvidia-smi and cuda-probe (driver API:
# cuInit, the devices, their names). It builds nothing: it takes a cvm and a
# cuda-probe built elsewhere, and prints what it saw on the host and inside.
# Every step has a time limit; the whole run takes seconds, at most ~4 min.
#
# usage: tests/gpu/device-check.sh [CVM [CUDA_PROBE]]
#   CVM         default build-musl/cvm (scripts/build-musl: a static cvm needs no libseccomp
#               on the machine), else build/cvm
#   CUDA_PROBE  default build/tests/gpu/cuda-probe (dynamic, glibc >= 2.34)
#   CHECK_DRIVER_DIR  the node's driver bundle (default /usr/local/nvidia:
#               lib64/ and bin/, as on GKE)
#   CHECK_IMAGE auto (default), root (the machine's root) or small
#
# The image is the machine's own root filesystem, idmapped (nothing of it
# is written: changes go to a tmp state dir), when it is on ext4, xfs or
# btrfs; on overlay (a container) a small glibc image is made from the
# machine's files instead, since cvm would copy the whole root. Exit 0 when
# nvidia-smi and cuda-probe both worked inside.
set -u
SRC=$(cd "$(dirname "$0")/../.." && pwd)
CVM=${1:-}
[ -n "$CVM" ] || { [ -x "$SRC/build-musl/cvm" ] && CVM=$SRC/build-musl/cvm || CVM=$SRC/build/cvm; }
PROBE_BIN=${2:-$SRC/build/tests/gpu/cuda-probe}
DRIVER=${CHECK_DRIVER_DIR:-/usr/local/nvidia}
CVM=$(readlink -f "$CVM") && PROBE_BIN=$(readlink -f "$PROBE_BIN") || exit 2
[ -x "$CVM" ] && [ -x "$PROBE_BIN" ] || { echo "device-check: need $CVM and $PROBE_BIN (build them first)"; exit 2; }

# A GPU machine may come without iproute2; outer.sh only needs lo up.
command -v ip >/dev/null || PATH=$SRC/tests/gpu/bin:$PATH
W=$(mktemp -d /tmp/cvm-gpu-check.XXXXXX) || exit 2
W_MOUNTED=
cleanup_w() {
	[ -z "$W_MOUNTED" ] || umount -l "$W" 2>/dev/null
	rm -rf "$W"
}
trap cleanup_w EXIT
. "$SRC/tests/integration/lib.sh"
. "$SRC/tests/integration/outer.sh"      # chains its cleanup before cleanup_w

section() { printf '\n== %s\n' "$*"; }
fstype() { stat -f -c %T "$1" 2>/dev/null; }

section "host"
uname -sr
echo "cvm: $CVM ($(file -b "$CVM" 2>/dev/null | cut -d, -f1-2))"
echo "root filesystem: $(fstype /); glibc: $(ldd --version 2>/dev/null | head -1)"
env | grep -E '^(NVIDIA|CUDA)_' || echo "(no NVIDIA_*/CUDA_* variables)"
ls -l /dev/nvidia* /dev/dri 2>&1 | head -20
ls "$DRIVER" "$DRIVER/lib64" 2>&1 | head -40
timeout 30 "$DRIVER/bin/nvidia-smi" -L 2>&1 || timeout 30 nvidia-smi -L 2>&1

# The state dir must be idmappable: tmpfs (kernel >= 6.3), else a dir on /.
if mount -t tmpfs -o mode=0700,size=2g tmpfs "$W" 2>/dev/null; then
	W_MOUNTED=1
fi
mkdir -p "$W/probe" && cp "$PROBE_BIN" "$W/probe/cuda-probe" || exit 2

# A small image of the machine's own files: sh, coreutils, cuda-probe and
# the glibc that nvidia-smi and cuda-probe need, laid out as Debian does.
copy_with_libs() {
	local img=$1 bin=$2 lib
	cp -L "$bin" "$img/usr/bin/" || return 1
	for lib in $(ldd "$bin" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }'); do
		case $lib in
		*/libnvidia-*|*/libcuda.so*) ;;     # the driver comes from the GPU plan
		*ld-linux*) cp -L "$lib" "$img/lib64/" ;;
		*) cp -L "$lib" "$img/usr/lib/x86_64-linux-gnu/" ;;
		esac
	done
}
small_image() {
	local img=$W/img b
	mkdir -p "$img"/{usr/bin,usr/lib/x86_64-linux-gnu,lib64,etc,proc,sys,dev,tmp,run,root} || return 1
	ln -s usr/bin "$img/bin"
	for b in sh ls cat id env grep head; do
		copy_with_libs "$img" "$(command -v $b)" || return 1
	done
	# nvidia-smi's own libraries (libc, libm, libdl, libpthread, librt).
	[ ! -x "$DRIVER/bin/nvidia-smi" ] || copy_with_libs "$img" "$DRIVER/bin/nvidia-smi"
	rm -f "$img/usr/bin/nvidia-smi"     # the plan binds the node's own
	copy_with_libs "$img" "$PROBE_BIN" && rm -f "$img/usr/bin/cuda-probe"
	printf 'ID=debian\n' > "$img/etc/os-release"
	printf 'root:x:0:0:root:/root:/bin/sh\n' > "$img/etc/passwd"
	printf 'root:x:0:\n' > "$img/etc/group"
	echo "$img"
}
case ${CHECK_IMAGE:-auto}:$(fstype /) in
auto:ext2/ext3|auto:xfs|auto:btrfs|root:*) IMAGE=/ ;;
*) IMAGE=$(small_image) || { echo "device-check: cannot make the small image"; exit 2; } ;;
esac

INSIDE='echo "== inside: $(id)"
ls -l /dev/nvidia* /dev/dri 2>&1 | head -20
ls -l /usr/lib/x86_64-linux-gnu/libcuda* /usr/lib/x86_64-linux-gnu/libnvidia-ml* 2>&1
env | grep -E "^(NVIDIA|CUDA)_"
echo "== nvidia-smi"
nvidia-smi; smi=$?
nvidia-smi -L
echo "== cuda-probe"
/opt/cvm-check/cuda-probe; probe=$?
echo "== result: nvidia-smi exit $smi, cuda-probe exit $probe"
[ $smi = 0 ] && [ $probe = 0 ]'

# run_check NAME IMAGE: the workspace with the GPU required; its status.
# The network is the machine's: a static musl cvm built on a mirror without
# libmnl/libnftnl has no private network, and the GPU needs none.
run_check() {
	local rc
	section "cvm run --gpu (image $2, state $W/$1 on $(fstype "$W"))"
	outer_start "$1" --env CVM_GPU_HOST_LIB_DIR="$DRIVER/lib64" -- "$CVM" run --rootfs "$2" \
		--state "$W/$1" --gpu --network host --log-level debug -v "$W/probe:/opt/cvm-check:ro" \
		-- /bin/sh -c "$INSIDE" || { echo "device-check: the outer container did not start"; return 2; }
	outer_wait "$1" 150; rc=$?
	outer_log "$1"
	[ "$rc" != 124 ] || echo "device-check: still running after 150 s: stopped"
	return "$rc"
}

run_check check "$IMAGE"; rc=$?
if [ "$rc" = 2 ] && [ "$IMAGE" = / ]; then
	# A bad-config exit: most likely the root has driver files of its own
	# where cvm would put the node's (the message above says). Again with
	# an image that has none.
	IMAGE=$(small_image) && { run_check check-small "$IMAGE"; rc=$?; }
fi
section "exit $rc"
exit "$rc"
