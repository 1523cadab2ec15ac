#!/bin/bash
# systemd as the workspace's init, and Docker inside it: a Debian 12 image
# (scripts/debian-image: systemd, dbus, sudo, iproute2, docker.io, curl;
# built once and cached) booted by cvm as PID 1 of an outer container in the
# test network of networld.sh. One boot serves the tests in order; a second
# boot checks what persists.
# usage: test_systemd.sh BUILD_DIR
. "$(dirname "$0")/workspace.sh" "$1"
. "$(dirname "$0")/networld.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
IMAGE=$("$SRC/scripts/debian-image") || { echo "cannot build the Debian image"; exit 1; }
WORK=$(mktemp -d /tmp/cvm-systemd.XXXXXX)
trap 'stop_helpers; outer_cleanup; rm -rf "$WORK"' EXIT
cd "$WORK"
BOOT_S=180      # 2 cores shared with other sessions: boots can be slow

# inside CMD...: run CMD in the workspace (cvm exec), stdout and stderr to ./out
inside() { ws_exec "$WS" -- "$@" > out 2>&1; }
show() { sed 's/^/      | /' out >&2; }

# boot NAME: start the workspace and wait for systemd to finish booting;
# BOOTED_MS says how long it took from cvm run.
boot() {
	WS=$1
	local t0; t0=$(date +%s%N)
	world_start "$WS" 60 --rootfs "$IMAGE" --state "$WORK/state" --stop-timeout 30s || return 1
	# systemctl needs systemd's socket, which comes a moment after PID 1 runs
	for _ in $(seq $((BOOT_S * 10))); do
		ws_exec "$WS" -- test -S /run/systemd/private 2>/dev/null && break
		sleep 0.1
	done
	ws_exec "$WS" -- timeout "$BOOT_S" systemctl is-system-running --wait > "$WORK/state.$WS" 2>&1
	BOOTED_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
}

t_boots_to_running() {
	local st; st=$(cat "$WORK/state.$WS")
	say "boot took ${BOOTED_MS} ms: $st"
	[ "$st" = running ] && return 0
	inside systemctl --failed --no-legend --plain; show
	inside journalctl -b --no-pager -p warning -n 40; show
	return 1
}

t_pid1_is_systemd_in_container() {
	inside sh -c 'cat /proc/1/comm; systemd-detect-virt -c; stat -f -c %T /sys/fs/cgroup; cat /proc/self/cgroup'
	grep -qx systemd out && grep -qx container-other out && grep -qx cgroup2fs out || { show; return 1; }
}

t_exec_sudo_as_user() {
	inside su -s /bin/sh coder -c 'id -un; sudo -n id -u'
	grep -qx coder out && grep -qx 0 out || { show; return 1; }
}

t_docker_starts() {
	inside systemctl start docker || { show; inside journalctl -u docker -u containerd --no-pager -n 40; show; return 1; }
	inside docker info --format '{{.Driver}} {{.CgroupVersion}} {{.CgroupDriver}}'
	say "docker: $(cat out)"
	grep -q '^overlay2 ' out || { show; return 1; }
}

# A busybox image made from the image's static busybox, imported.
t_docker_import_and_run() {
	inside sh -c 'set -e; rm -rf /tmp/bb; mkdir -p /tmp/bb/bin
		cp /usr/local/bin/busybox-static /tmp/bb/bin/busybox
		for a in sh echo wget cat ip; do ln -s busybox /tmp/bb/bin/$a; done
		tar -C /tmp/bb -c . | docker import - bb:1 >/dev/null
		docker run --rm bb:1 echo hello' || { show; return 1; }
	grep -qx hello out || { show; return 1; }
}

# Through docker0 (docker's NAT inside), eth0, cvm0 (cvm's NAT outside).
t_nested_bridge_reaches_outer_and_far() {
	inside docker run --rm --network bridge bb:1 wget -qO- http://10.255.255.253:8081/f || { show; return 1; }
	grep -qx outer-side out || { show; return 1; }
	inside docker run --rm --network bridge bb:1 wget -qO- http://198.51.100.2:8080/f || { show; return 1; }
	grep -qx far-side out || { show; return 1; }
}

# cvm stop: systemd gets SIGRTMIN+3 and shuts down within the grace.
t_stop_is_clean_shutdown() {
	local t0 rc ms
	t0=$(date +%s%N)
	outer_signal "$WS" TERM || return 1
	outer_wait "$WS" 60; rc=$?
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	say "stop took $ms ms, exit $rc"
	grep -q "grace period .* is over" "$OUTER_DIR/$WS/err" && { say "systemd did not stop in time"; return 1; }
	# systemd's final reboot(2) halts the pid namespace: a clean exit, 0
	[ "$rc" = 0 ] || { outer_log "$WS" | tail -5 >&2; return 1; }
	grep -q "the workspace powered off" "$OUTER_DIR/$WS/err" || { outer_log "$WS" | tail -5 >&2; return 1; }
}

t_image_persists_across_restart() {
	[ "$SD2_UP" = yes ] || { say "the second boot failed"; return 1; }
	inside systemctl start docker && inside docker images --format '{{.Repository}}:{{.Tag}}' || { show; return 1; }
	grep -qx bb:1 out || { show; return 1; }
	inside docker run --rm bb:1 echo again && grep -qx again out || { show; return 1; }
}

boot sd1 || { echo "not ok - boot"; FAILED=$((FAILED + 1)); FAILED_NAMES=" boot"; finish; exit 1; }
run_test "systemd boots to running" t_boots_to_running
run_test "PID 1 is systemd, in a container, on cgroup2" t_pid1_is_systemd_in_container
run_test "sudo as a user" t_exec_sudo_as_user
run_test "systemctl start docker (overlay2)" t_docker_starts
run_test "docker import, docker run --rm echo hello" t_docker_import_and_run
run_test "nested --network bridge reaches the outer side and beyond" t_nested_bridge_reaches_outer_and_far
run_test "cvm stop shuts systemd down within the grace" t_stop_is_clean_shutdown
SD2_UP=no; boot sd2 && SD2_UP=yes
run_test "the imported image survives a restart" t_image_persists_across_restart
WS=sd2; outer_signal sd2 TERM 2>/dev/null; outer_wait sd2 60 >/dev/null 2>&1
stop_helpers
finish
