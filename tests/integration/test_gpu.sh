#!/bin/bash
# Black-box tests of the GPU setup without a GPU: the outer container gets a
# private /dev (as docker gives one) holding fake NVIDIA nodes made with
# mknod (major 195; opening them finds no driver), and a fake driver dir
# with a real tiny libcuda.so.1 built here (tests/gpu/fake-libcuda.c). The
# image is the busybox rootfs plus the host's glibc and cuda-probe, which
# dlopen()s libcuda.so.1 through the image's own dynamic linker.
# usage: test_gpu.sh BUILD_DIR
. "$(dirname "$0")/workspace.sh" "$1"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
N=0

# The busybox rootfs with a glibc: the host's ld.so and libc.so.6 where a
# Debian image has them, an os-release that says Debian, and cuda-probe.
# No /etc/ld.so.cache: the linker finds libcuda by its default path alone.
gpu_rootfs() {
	local ldso libc key cache dir tmp
	ldso=$(readlink -f /lib64/ld-linux-x86-64.so.2) && libc=$(readlink -f /lib/x86_64-linux-gnu/libc.so.6) ||
		return 1
	key=$( { echo gpu-recipe-1 "$ROOTFS"; cat "$ldso" "$libc" "$BUILD/tests/gpu/cuda-probe"; } |
		sha256sum | cut -c1-16)
	cache=${CVM_TEST_CACHE:-/var/cache/cvm-test}
	dir=$cache/gpu-rootfs-$key
	if [ ! -x "$dir/usr/bin/cuda-probe" ]; then
		tmp=$(mktemp -d "$cache/.build.XXXXXX") || return 1
		cp -a "$ROOTFS" "$tmp/r" && mkdir -p "$tmp/r/lib64" "$tmp/r/usr/lib/x86_64-linux-gnu" &&
			cp "$ldso" "$tmp/r/lib64/ld-linux-x86-64.so.2" &&
			cp "$libc" "$tmp/r/usr/lib/x86_64-linux-gnu/libc.so.6" &&
			cp "$BUILD/tests/gpu/cuda-probe" "$tmp/r/usr/bin/cuda-probe" &&
			printf 'ID=debian\nVERSION_ID="12"\n' > "$tmp/r/etc/os-release" &&
			echo 'u:x:1000:1000::/tmp:/bin/sh' >> "$tmp/r/etc/passwd" ||
			{ rm -rf "$tmp"; return 1; }
		mv -T "$tmp/r" "$dir" 2>/dev/null || [ -x "$dir/usr/bin/cuda-probe" ] || { rm -rf "$tmp"; return 1; }
		rm -rf "$tmp"
	fi
	echo "$dir"
}
GPU_ROOTFS=$(gpu_rootfs) || { echo "cannot build the glibc rootfs fixture"; exit 1; }

# A driver dir as the node would mount it (GKE style: lib64/ and bin/).
# Its libcuda names this run, so the output proves which library loaded.
make_driver() {
	mkdir -p drv/lib64 drv/bin outside
	gcc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -DFAKE_GPU_NAME="\"fake GPU $$\"" \
		-o drv/lib64/libcuda.so.535.104.05 "$SRC/tests/gpu/fake-libcuda.c" || return 1
	ln -s libcuda.so.535.104.05 drv/lib64/libcuda.so.1
	ln -s libcuda.so.1 drv/lib64/libcuda.so
	# A chain that leaves the dir (refused) and a library that is not the driver's.
	cp drv/lib64/libcuda.so.535.104.05 outside/libnvidia-ml.so.535.104.05
	ln -s ../../outside/libnvidia-ml.so.535.104.05 drv/lib64/libnvidia-ml.so.1
	cp drv/lib64/libcuda.so.535.104.05 drv/lib64/libglib-2.0.so.0
	printf '#!/bin/sh\necho "fake nvidia-smi: $(ls /dev/nvidia0)"\n' > drv/bin/nvidia-smi
	chmod 755 drv/bin/nvidia-smi
}

# PID 1 of the outer container makes its own /dev (a tmpfs in its private
# mount namespace; the machine's /dev is never touched), then execs cvm.
OUTER_DEV='mount -t tmpfs -o mode=0755 tmpfs /dev &&
mknod -m 666 /dev/null c 1 3 && mknod -m 666 /dev/zero c 1 5 && mknod -m 666 /dev/full c 1 7 &&
mknod -m 666 /dev/random c 1 8 && mknod -m 666 /dev/urandom c 1 9 && mknod -m 666 /dev/tty c 5 0 &&
mknod -m 666 /dev/fuse c 10 229 &&
if [ -n "${GPU_NODES:-}" ]; then
	mknod -m 666 /dev/nvidiactl c 195 255 && mknod -m 666 /dev/nvidia0 c 195 0 &&
	mknod -m 666 /dev/nvidia1 c 195 1 && mknod -m 666 /dev/nvidia-uvm c 509 0 &&
	mkdir /dev/nvidia-caps && mknod -m 400 /dev/nvidia-caps/nvidia-cap1 c 508 1
fi || exit 125
exec "$@"'

# gws [--env K=V]... -- [cvm run args...]: run a workspace to the end in a
# fresh outer container with the fake devices; ./out, ./err, cvm's status.
gws() {
	N=$((N + 1))
	local name=gpu$N.$$.$SRANDOM rc envs=()
	while [ "$1" != "--" ]; do envs+=("$1" "$2"); shift 2; done
	shift
	outer_start "$name" "${envs[@]}" -- sh -c "$OUTER_DEV" outer-dev "$CVM" run "$@" ||
		{ say "outer_start failed"; return 125; }
	outer_wait "$name" 60; rc=$?
	cat "$OUTER_DIR/$name/out" > out; cat "$OUTER_DIR/$name/err" > err
	return $rc
}

has() { grep -qxF -- "$1" out || { fail "missing '$1' in output:"; sed 's/^/      | /' out err >&2; return 1; }; }

INSIDE='cd /dev; for n in nvidiactl nvidia0 nvidia1 nvidia-uvm nvidia-caps/nvidia-cap1; do
	stat -c "%n %F %t:%T %a %u:%g" $n; done
L=/usr/lib/x86_64-linux-gnu
echo "link $(readlink $L/libcuda.so.1) $(readlink $L/libcuda.so)"
stat -c "lib %a %u:%g" $L/libcuda.so.535.104.05
test -e $L/libnvidia-ml.so.1 || echo "no libnvidia-ml"
test -e $L/libglib-2.0.so.0 || echo "no libglib"
echo x 2>/dev/null > $L/libcuda.so.535.104.05 || echo "lib read-only"
echo "caps $NVIDIA_DRIVER_CAPABILITIES"
nvidia-smi
cuda-probe'

t_nodes_and_libcuda_inside() {
	make_driver || return 1
	gws --env GPU_NODES=1 --env NVIDIA_DRIVER_CAPABILITIES=compute,utility \
		--env CVM_GPU_HOST_LIB_DIR="$PWD/drv/lib64" -- \
		--rootfs "$GPU_ROOTFS" --state "$PWD/state" --gpu -- sh -c "$INSIDE" ||
		{ say "workspace exit $?"; sed 's/^/      | /' out err >&2; return 1; }
	# The nodes: the outer numbers, usable modes, owned by root inside (not nobody).
	has "nvidiactl character special file c3:ff 666 0:0" &&
		has "nvidia0 character special file c3:0 666 0:0" &&
		has "nvidia1 character special file c3:1 666 0:0" &&
		has "nvidia-uvm character special file 1fd:0 666 0:0" &&
		has "nvidia-caps/nvidia-cap1 character special file 1fc:1 400 0:0" || return 1
	# The driver: chain kept, bound read-only, root's inside; nothing unrelated.
	has "link libcuda.so.535.104.05 libcuda.so.1" && has "lib 755 0:0" &&
		has "no libnvidia-ml" && has "no libglib" && has "lib read-only" &&
		has "caps compute,utility" && has "fake nvidia-smi: /dev/nvidia0" || return 1
	# cuda-probe found libcuda.so.1 by itself and called into this run's build.
	has "libcuda: /usr/lib/x86_64-linux-gnu/libcuda.so.1" && has "cuInit: 0" &&
		has "driver: 12.2" && has "devices: 1 (status 0)" &&
		has "device 0: fake GPU $$, 1024 MiB" || return 1
	grep -q "cvm\[gpu\] info: GPUs 0,1 (visible_devices=all)" err || { say "no plan line in the log"; return 1; }
	grep -q "left out .*libnvidia-ml.so.1: its link to ../../outside/.* leaves the directory" err ||
		{ say "the refused chain is not logged"; cat err >&2; return 1; }
	# The image is untouched.
	[ ! -e "$GPU_ROOTFS/usr/lib/x86_64-linux-gnu/libcuda.so.1" ] || { say "image modified"; return 1; }
}

t_users_can_open_the_nodes_and_restart_works() {
	make_driver || return 1
	local script='ls /dev | grep "^nvidia[0-9]" | tr "\n" " "; echo
		for n in /dev/nvidia[0-9]* /dev/nvidiactl; do (: < $n) 2>&1 | sed "s/.*: //"; done
		id -u; cuda-probe | grep devices'
	# Twice on the same state: the links and mount points of the first
	# start are replaced, not in the way. The second selects one GPU.
	for devs in all:3:"nvidia0 nvidia1 " 1:2:"nvidia1 "; do
		local nodes=${devs#*:*:} opened=${devs#*:}; opened=${opened%%:*}; devs=${devs%%:*}
		gws --env GPU_NODES=1 --env NVIDIA_VISIBLE_DEVICES=$devs \
			--env CVM_GPU_HOST_LIB_DIR="$PWD/drv/lib64" -- \
			--rootfs "$GPU_ROOTFS" --state "$PWD/state" --gpu --user 1000 -- sh -c "$script" ||
			{ say "workspace exit $?"; sed 's/^/      | /' out err >&2; return 1; }
		# No driver behind the fake nodes: ENXIO, not a permission error.
		[ "$(grep -c '^No such device or address$' out)" = "$opened" ] && has "$nodes" && has 1000 &&
			has "devices: 1 (status 0)" ||
			{ say "run with visible_devices=$devs:"; sed 's/^/      | /' out err >&2; return 1; }
	done
	grep -q "cvm\[gpu\] info: GPUs 1 (visible_devices=1)" err || { say "NVIDIA_VISIBLE_DEVICES=1 not honoured"; cat err >&2; return 1; }
	# The GPU gone, what the GPU starts left in the state goes too: no
	# empty libcuda.so.1 for a program to trip over ("file too short").
	[ -L state/upper/usr/lib/x86_64-linux-gnu/libcuda.so.1 ] || { say "no link in the state"; return 1; }
	gws -- --rootfs "$GPU_ROOTFS" --state "$PWD/state" -- \
		sh -c 'ls /usr/lib/x86_64-linux-gnu; cuda-probe; true' || return 1
	has "libc.so.6" && has "libcuda: not loaded: libcuda.so.1: cannot open shared object file: No such file or directory" ||
		return 1
	[ -z "$(find state/upper -name 'libcuda*')" ] || { say "left in the state:"; find state/upper >&2; return 1; }
}

t_errors_before_anything_starts() {
	make_driver || return 1
	# GPU required, no nodes in the outer container.
	gws -- --rootfs "$GPU_ROOTFS" --state "$PWD/state" --gpu -- true
	expect_eq "exit without nodes" "$?" 2 || return 1
	grep -q "gpu: GPU requested (\[gpu\] enable = yes) but /dev/nvidiactl is missing" err ||
		{ say "message:"; cat err >&2; return 1; }
	# A lib dir that is not there.
	gws --env GPU_NODES=1 --env CVM_GPU_HOST_LIB_DIR=/nonexistent/lib64 -- \
		--rootfs "$GPU_ROOTFS" --state "$PWD/state" -- true
	expect_eq "exit without lib dir" "$?" 2 || return 1
	grep -q "host_lib_dir /nonexistent/lib64: mount the node's NVIDIA driver libraries there" err ||
		{ say "message:"; cat err >&2; return 1; }
	# auto without nodes: the workspace starts, without a GPU.
	gws --env CVM_GPU_HOST_LIB_DIR="$PWD/drv/lib64" -- \
		--rootfs "$GPU_ROOTFS" --state "$PWD/state" -- sh -c 'ls /dev/nvidiactl 2>&1; cuda-probe'
	expect_eq "exit of auto without GPU" "$?" 1 || return 1
	grep -q "^libcuda: not loaded" out || { say "libcuda inside without a GPU:"; cat out >&2; return 1; }
	[ -z "$(find state/upper -name '*.so*' 2>/dev/null)" ] || { say "driver files in state"; return 1; }
	# Nothing was left running or mounted by the failed starts.
	[ ! -e state/upper/usr/lib/x86_64-linux-gnu/libcuda.so.1 ]
}

# cvm check in the same outer container: the gpu line and the plan come
# from gpu/ as cvm run makes it; enable = yes without the nodes is missing.
t_check_shows_the_plan() {
	make_driver || return 1
	N=$((N + 1))
	local name=gpuck$N.$$
	outer_start "$name" --env GPU_NODES=1 --env CVM_GPU_HOST_LIB_DIR="$PWD/drv/lib64" -- \
		sh -c "$OUTER_DEV" outer-dev "$CVM" check --rootfs "$GPU_ROOTFS" --state "$PWD/state" ||
		return 1
	outer_wait "$name" 60 || { say "exit $?"; outer_log "$name" >&2; return 1; }
	cat "$OUTER_DIR/$name/out" > out
	grep -qE '^ok +gpu +GPUs 0,1' out && grep -q '^GPU plan:$' out &&
		grep -q 'libcuda.so.535.104.05' out || { say "$(cat out)"; return 1; }
	name=gpuck$N.$$.b
	outer_start "$name" --env CVM_GPU_ENABLE=yes -- \
		sh -c "$OUTER_DEV" outer-dev "$CVM" check || return 1
	outer_wait "$name" 60; expect_eq "exit without nodes" "$?" 1 || return 1
	grep -qE '^missing +gpu ' "$OUTER_DIR/$name/out" || { outer_log "$name" >&2; return 1; }
}

run_test "fake nodes usable, libcuda.so.1 loads by its SONAME" t_nodes_and_libcuda_inside
run_test "a user opens the nodes; restart and visible_devices" t_users_can_open_the_nodes_and_restart_works
run_test "GPU errors stop cvm before the workspace starts" t_errors_before_anything_starts
run_test check_shows_the_plan t_check_shows_the_plan
finish
