#!/bin/bash
# cgroup v2 on this (hybrid) host: cvm as PID 1 of an outer container with
# its own cgroup2 subtree lays out its cgroups and delegates the workspace's
# group. The limits themselves need controllers: tests/vm/.
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

for t in $(declare -F | awk '$3 ~ /^t_/ {print $3}'); do
	run_test "${t#t_}" "$t"
done
# docker stop: everything goes, and so does the workspace's group.
run_test stop_removes_the_group eval 'outer_signal "$WS" TERM; outer_wait "$WS" 20;
	expect_eq "exit" "$?" 143 && [ ! -d "$CG/workspace" ] || { say "group left: $(ls "$CG")"; false; }'
finish
