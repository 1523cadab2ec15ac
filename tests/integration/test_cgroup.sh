#!/bin/bash
# cgroup v2 on this (hybrid) host: cvm as PID 1 of an outer container with
# its own cgroup2 subtree lays out its cgroups and delegates the workspace's
# group; in each cgroup v1 hierarchy the workspace gets a group of its own
# (the outer container sits in a non-root v1 group, as a pod on a hybrid
# node), so a v1 mount inside shows only that. Hosts cvm refuses: v1 only,
# a cgroup2 mount without cvm's group. The limits themselves need
# controllers: tests/vm/.
# usage: test_cgroup.sh BUILD_DIR
. "$(dirname "$0")/workspace.sh" "$1"
STATE=$(mktemp -d /tmp/cvm-cg-state.XXXXXX)
trap 'outer_cleanup; rm -rf "$STATE" "$STATE".*' EXIT

WS=cg.$$
ws_start "$WS" "$STATE" -- sleep 1000 || exit 1
ex() { ws_exec "$WS" "$@"; }
CG=$(cat "$OUTER_DIR/$WS/cgroup" 2>/dev/null || echo "$OUTER_CG2/cvm-test.$$.$WS")

t_layout_outside() {
	local pid1; pid1=$(outer_pid "$WS")
	grep -qx "$pid1" "$CG/cvm.supervisor/cgroup.procs" || { say "cvm not in cvm.supervisor"; return 1; }
	[ -d "$CG/workspace" ] || { say "no workspace group"; return 1; }
	# Delegated: the group and its three files belong to root inside (100000).
	for f in . cgroup.procs cgroup.subtree_control cgroup.threads; do
		expect_eq "owner of $f" "$(stat -c %u:%g "$CG/workspace/$f")" 100000:100000 || return 1
	done
	expect_eq "owner of cgroup.max.depth" "$(stat -c %u "$CG/workspace/cgroup.max.depth")" 0
}

t_workspace_is_cgroup_root_inside() {
	out=$(ex -- sh -c 'grep ^0:: /proc/1/cgroup; grep ^0:: /proc/self/cgroup; stat -f -c %t /sys/fs/cgroup;
	                   ls /sys/fs/cgroup | grep -c -e cvm.supervisor -e "^workspace$"; true')
	expect_eq "inside" "$out" "0::/
0::/
63677270
0"
}

t_exec_joins_the_workspace_group() {
	# Were it left in cvm.supervisor, its path would lie outside the namespace.
	out=$(ex -- grep ^0:: /proc/self/cgroup)
	expect_eq "cgroup" "$out" "0::/"
	[ "$(wc -l < "$CG/workspace/cgroup.procs")" -ge 2 ] || { say "exec'd process not in the group"; return 1; }
}

t_inner_root_manages_subgroups() {
	out=$(ex -- sh -c 'mkdir /sys/fs/cgroup/child && echo $$ > /sys/fs/cgroup/child/cgroup.procs &&
	                   grep ^0:: /proc/self/cgroup; rmdir /sys/fs/cgroup/child 2>/dev/null; true')
	expect_eq "moved" "$out" "0::/child" || return 1
	[ ! -d "$CG/workspace/child" ] || ex -- rmdir /sys/fs/cgroup/child
}

t_limit_files_stay_outer_roots() {
	out=$(ex -- sh -c '{ echo 5 > /sys/fs/cgroup/cgroup.max.depth; } 2>/dev/null && echo WROTE;
	                   umount /sys/fs/cgroup 2>/dev/null && echo UMOUNTED; true')
	expect_eq "attempts" "$out" "" || return 1
	expect_eq "max.depth" "$(cat "$CG/workspace/cgroup.max.depth")" max
}

t_status_reports() {
	out=$(outer_exec "$WS" "$CVM" status) || { say "$out"; return 1; }
	echo "$out" | grep -q '^workspace pid [0-9]' || { say "$out"; return 1; }
	echo "$out" | grep -q '^memory used (bytes) *n/a$' || { say "$out"; return 1; }
	out=$(outer_exec "$WS" "$CVM" status --json)
	echo "$out" | grep -q '"cgroup": "/sys/fs/cgroup/workspace"' || { say "$out"; return 1; }
	echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["memory_current"] is None' ||
		{ say "bad JSON: $out"; return 1; }
}

t_hybrid_host_warns_once() {
	expect_eq "warnings" "$(grep -c 'no cpu, memory, pids controller in this cgroup2' "$OUTER_DIR/$WS/err")" 1
}

t_explicit_limit_without_controller_fails() {
	local name=lim.$$
	outer_start "$name" --env CVM_RESOURCES_MEMORY=64M -- "$CVM" run --rootfs "$ROOTFS" \
		--state "$STATE.2" -- true
	outer_wait "$name" 20; expect_eq "exit" "$?" 2 || return 1
	grep -q "memory: needs the memory controller" "$OUTER_DIR/$name/err" ||
		{ outer_log "$name" >&2; return 1; }
}

# Kernels before 5.7 lack CLONE_INTO_CGROUP: the fallback (forced here)
# moves the init after clone and roots its cgroup namespace there.
t_fallback_without_clone_into_cgroup() {
	local name=late.$$
	grep -q CVM_DEBUG_NO_CLONE_INTO_CGROUP "$CVM" ||
		{ say "skipped: $CVM is a release build (no -Dtest_hooks)"; return 0; }
	outer_start "$name" --env CVM_DEBUG_NO_CLONE_INTO_CGROUP=1 -- "$CVM" run --rootfs "$ROOTFS" \
		--state "$STATE.3" -- sh -c 'grep ^0:: /proc/self/cgroup; mkdir /sys/fs/cgroup/x && echo made'
	outer_wait "$name" 20; expect_eq "exit" "$?" 0 || { outer_log "$name" >&2; return 1; }
	expect_eq "output" "$(cat "$OUTER_DIR/$name/out")" "0::/
made" || return 1
	grep -q "no CLONE_INTO_CGROUP" "$OUTER_DIR/$name/err" || { say "fallback not taken"; return 1; }
}

# The v1 groups outside: <outer's group>/workspace in every hierarchy, with
# cvm and the init in it, outer root's (not delegated).
t_v1_workspace_groups() {
	local g pid1 init n=0
	pid1=$(outer_pid "$WS"); init=$(child_of "$pid1")
	while IFS= read -r g; do
		n=$((n + 1))
		[ -d "$g/workspace" ] || { say "no $g/workspace"; return 1; }
		grep -qx "$pid1" "$g/workspace/cgroup.procs" || { say "cvm not in $g/workspace"; return 1; }
		grep -qx "$pid1" "$g/cgroup.procs" && { say "cvm still in $g"; return 1; }
		expect_eq "owner of $g/workspace" "$(stat -c %u "$g/workspace")" 0 || return 1
	done < "$OUTER_DIR/$WS/cgroup1"
	expect_eq "v1 groups" "$n" "$(echo "$OUTER_V1" | grep -c .)" || return 1
	[ "$n" -gt 0 ] || echo "    (no cgroup v1 hierarchy on this host)" >&2
}

# Inside, each v1 hierarchy mounts at the workspace's own group: not the
# hierarchy's root (release_agent), nothing of the outer group (a marker
# group planted next to "workspace"), and read-only to root inside.
t_v1_mount_inside_shows_own_group() {
	local g out
	while IFS= read -r g; do mkdir "$g/cvm-marker.$$"; done < "$OUTER_DIR/$WS/cgroup1"
	out=$(ex -- sh -c 'n=0
		for h in $(sed -n "s/^[1-9][0-9]*:\([^:]*\):.*/\1/p" /proc/self/cgroup); do
			case $h in name=*) o=none,$h ;; *) o=$h ;; esac
			mkdir -p /tmp/v1 && mount -t cgroup -o "$o" cgroup /tmp/v1 || { echo "mount $o failed"; continue; }
			n=$((n + 1))
			[ ! -e /tmp/v1/release_agent ] || echo "$h: the hierarchy root"
			find /tmp/v1 -mindepth 1 -type d | sed "s|^|$h: a group: |"
			grep -qx 1 /tmp/v1/cgroup.procs || echo "$h: the init is not at its root"
			mkdir /tmp/v1/x 2>/dev/null && { rmdir /tmp/v1/x; echo "$h: made a group"; }
			umount /tmp/v1
		done; echo "mounted $n"')
	while IFS= read -r g; do rmdir "$g/cvm-marker.$$"; done < "$OUTER_DIR/$WS/cgroup1"
	expect_eq "inside" "$out" "mounted $(grep -c . "$OUTER_DIR/$WS/cgroup1")"
}

# outer_refused NAME SETUP: PID 1 runs SETUP (sh), then cvm check, then
# execs cvm run (PID 1 still); cvm run must refuse with exit 2.
outer_refused() {
	outer_start "$1" -- sh -c "$2"'
		"$0" check > /run/check.out; cat /run/check.out
		exec "$0" run --rootfs "$1" --state "$2" -- true' "$CVM" "$ROOTFS" "$STATE.$1" || return 1
	outer_wait "$1" 20; expect_eq "exit" "$?" 2 || { outer_log "$1" >&2; return 1; }
}

# A cgroup v1 host, as a container there sees it: v1 hierarchies under a
# tmpfs at /sys/fs/cgroup, no cgroup2.
t_v1_only_host_refused() {
	local name=v1only.$$ err out
	[ -n "$OUTER_V1" ] || { echo "    (no cgroup v1 hierarchy on this host: nothing to mount)" >&2; return 0; }
	outer_refused "$name" 'umount -l /sys/fs/cgroup && mount -t tmpfs cgroup /sys/fs/cgroup &&
		mkdir /sys/fs/cgroup/memory && mount -t cgroup -o memory cgroup /sys/fs/cgroup/memory || exit 99' ||
		return 1
	err=$OUTER_DIR/$name/err out=$OUTER_DIR/$name/out
	grep -q "cgroup: cgroup v1 only here: v1 hierarchies (.*memory.*; one at /sys/fs/cgroup/memory) and no cgroup2 mount" "$err" &&
	grep -q "cvm needs cgroup v2, the unified hierarchy (Linux 5.14 or later" "$err" &&
	grep -q "systemd.unified_cgroup_hierarchy=1 on its kernel command line" "$err" &&
	grep -q -- "--cgroupns=private is the default" "$err" || { say "run said:"; cat "$err" >&2; return 1; }
	grep -q "^missing  cgroup2 .*no cgroup2 hierarchy is mounted here" "$out" &&
	grep -q "^missing  cgroup_layout .*cgroup v1 only here" "$out" &&
	grep -q "^cvm cannot run here: missing cgroup2, cgroup_layout" "$out" || { say "check said:"; cat "$out" >&2; return 1; }
}

# cgroup2 at /sys/fs/cgroup, but a bind of another group (b) while cvm
# sits in a: its own cgroup is not under the mount.
t_foreign_cgroup2_refused() {
	local name=bind.$$ err out
	outer_refused "$name" 'mkdir /sys/fs/cgroup/a /sys/fs/cgroup/b && echo $$ > /sys/fs/cgroup/a/cgroup.procs &&
		mount --bind /sys/fs/cgroup/b /sys/fs/cgroup || exit 99' || return 1
	err=$OUTER_DIR/$name/err out=$OUTER_DIR/$name/out
	grep -q "cgroup: the cgroup2 mount at /sys/fs/cgroup does not contain cvm's own cgroup /a (the 0:: line of /proc/self/cgroup; /sys/fs/cgroup/a is missing): a bind of another group's subtree" "$err" &&
	grep -q "docker --cgroupns=private" "$err" || { say "run said:"; cat "$err" >&2; return 1; }
	grep -q "^missing  cgroup2 .*does not contain cvm's own cgroup /a" "$out" || { say "check said:"; cat "$out" >&2; return 1; }
}

for t in $(declare -F | awk '$3 ~ /^t_/ {print $3}'); do
	run_test "${t#t_}" "$t"
done
# docker stop: everything goes, and so does the workspace's group; cvm
# itself removes its v1 groups (checked before the harness cleans up).
t_stop_removes_the_groups() {
	local g
	outer_signal "$WS" TERM
	for _ in $(seq 400); do [ -e "$OUTER_DIR/$WS/rc" ] && break; sleep 0.05; done
	while IFS= read -r g; do
		[ ! -d "$g/workspace" ] || { say "v1 group left: $g/workspace"; return 1; }
	done < "$OUTER_DIR/$WS/cgroup1"
	outer_wait "$WS" 20; expect_eq "exit" "$?" 143 || return 1
	[ ! -d "$CG/workspace" ] || { say "group left: $(ls "$CG")"; return 1; }
}
run_test stop_removes_the_groups t_stop_removes_the_groups
finish
