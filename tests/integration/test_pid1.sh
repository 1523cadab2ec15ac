#!/bin/bash
# Black-box tests of cvm's PID 1 core: cvm as PID 1 of a fresh pid namespace
# (unshare --pid --fork --mount-proc) and as a child subreaper under a shell.
# usage: test_pid1.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?build dir}" && pwd)
CVM=$BUILD/cvm
PROBE=$BUILD/tests/probe/probe
. "$(dirname "$0")/lib.sh"

as_pid1() { unshare --pid --fork --mount-proc "$@"; }

# 100 orphaned grandchildren are all reaped, none left as a zombie.
t_orphans_pid1() {
	out=$(as_pid1 "$CVM" run -- sh -c "$PROBE orphans 100 && sleep 0.5 && $PROBE zombies")
	expect_eq "cvm exit" "$?" 0
	echo "$out" | grep -q '^orphans 100$' || { say "$out"; return 1; }
	expect_eq "zombies left" "$(echo "$out" | grep ^zombies)" "zombies 0"
}

t_orphans_subreaper() {
	# $PPID inside the child is cvm: count zombies whose parent is cvm.
	out=$("$CVM" run -- sh -c "$PROBE orphans 100 && sleep 0.5 && $PROBE zombies \$PPID")
	echo "$out" | grep -q '^orphans 100$' || { say "$out"; return 1; }
	expect_eq "zombies left" "$(echo "$out" | grep ^zombies)" "zombies 0"
}

# The same check must fail without a reaper: proves the probe sees zombies.
t_orphans_control_without_cvm() {
	out=$(as_pid1 "$PROBE" orphans 20 count)
	n=$(echo "$out" | sed -n 's/^zombies //p')
	[ "${n:-0}" -gt 0 ] || { say "a non-reaping PID 1 left no zombies? $out"; return 1; }
}

signals_reach_child() {   # $1: "unshare" or empty
	if [ -n "$1" ]; then
		unshare --pid --fork --mount-proc "$CVM" run -- "$PROBE" sigwait > out 2> err &
	else
		"$CVM" run -- "$PROBE" sigwait > out 2> err &
	fi
	local wpid=$!
	wait_for out ready || return 1
	# The pid to signal: cvm itself (under unshare it is unshare's child).
	local cvm=$wpid
	[ -n "$1" ] && cvm=$(child_of "$wpid")
	for s in USR1 USR2 HUP; do kill -s $s "$cvm"; wait_for out "got.*" 5 || return 1; sleep 0.1; done
	kill -TERM "$cvm"
	wait "$wpid"; rc=$?
	for want in "User defined signal 1" "User defined signal 2" "Hangup" "Terminated"; do
		grep -q "got $want" out || { say "missing '$want'"; cat out >&2; return 1; }
	done
	expect_eq "exit after handled TERM" "$rc" 0
}
t_signals_pid1() { signals_reach_child unshare; }
t_signals_subreaper() { signals_reach_child ""; }

t_exit_codes_0_255() {
	for i in $(seq 0 255); do
		"$CVM" run -- sh -c "exit $i"; rc=$?
		[ "$rc" = "$i" ] || { say "exit $i gave $rc"; return 1; }
	done
}

t_exit_codes_pid1() {
	for i in 0 1 3 42 255; do
		as_pid1 "$CVM" run -- sh -c "exit $i"; rc=$?
		expect_eq "exit $i as PID 1" "$rc" "$i" || return 1
	done
}

t_killed_by_signal() {
	for s in KILL TERM SEGV INT; do
		n=$(kill -l "$s")
		"$CVM" run -- sh -c "kill -$s \$\$"; rc=$?
		expect_eq "killed by SIG$s" "$rc" $((128 + n)) || return 1
	done
}

t_not_found_127() {
	"$CVM" run -- /no/such/command 2> err; rc=$?
	expect_eq "exit" "$rc" 127 || return 1
	grep -q "command not found" err || { say "stderr: $(cat err)"; return 1; }
	[ "$(wc -l < err)" -eq 1 ] || { say "want one line: $(cat err)"; return 1; }
}

t_not_executable_126() {
	printf 'echo hi\n' > notexec; chmod 644 notexec
	"$CVM" run -- ./notexec 2> err; rc=$?
	expect_eq "exit" "$rc" 126 || return 1
	grep -q "permission denied" err || { say "stderr: $(cat err)"; return 1; }
}

# cvm is started with signals ignored and blocked; the child must see none.
t_child_signal_state_clean() {
	out=$(bash -c "trap '' INT QUIT TSTP TTIN TTOU USR1 HUP; exec $CVM run -- grep -E '^Sig(Blk|Ign)' /proc/self/status")
	expect_eq "SigBlk" "$(echo "$out" | awk '/SigBlk/{print $2}')" 0000000000000000 || return 1
	expect_eq "SigIgn" "$(echo "$out" | awk '/SigIgn/{print $2}')" 0000000000000000
}

t_fds_not_inherited() {
	exec 7< /etc/hostname 9> fdfile
	out=$("$CVM" run -- "$PROBE" fds)
	exec 7<&- 9>&-
	expect_eq "fds in child" "$(echo "$out" | tail -1)" "fds 0" || { say "$out"; return 1; }
}

# A child that ignores SIGTERM is killed after the grace period; cvm exits.
t_grace_then_kill() {
	"$CVM" run --stop-timeout 1s -- "$PROBE" stubborn > out 2> err &
	local cvm=$!
	wait_for out ready || return 1
	local start=$(date +%s%N)
	kill -TERM "$cvm"
	wait "$cvm"; rc=$?
	local ms=$(( ($(date +%s%N) - start) / 1000000 ))
	expect_eq "exit (SIGKILL)" "$rc" 137 || return 1
	[ "$ms" -ge 900 ] && [ "$ms" -lt 5000 ] || { say "stop took ${ms} ms, want ~1000"; return 1; }
	grep -q "grace period" err || { say "no grace warning: $(cat err)"; return 1; }
}

# No orphan survives cvm: a background process that ignores SIGTERM, left
# behind by a main child that already exited, is killed before cvm exits.
no_orphan_survives() {   # $1: wrapper
	# $T_TMP in the argv marks this test's probe apart from any other run's
	$1 "$CVM" run -t 1s -- sh -c "$PROBE stubborn 3600 $T_TMP > out & echo \$! > pid; until grep -q ready out; do sleep 0.05; done" 2>/dev/null
	rc=$?
	expect_eq "exit" "$rc" 0 || return 1
	# inside a pid namespace the recorded pid is not ours; find it by the marker
	if [ -z "$1" ]; then
		pid=$(cat pid); kill -0 "$pid" 2>/dev/null && { say "orphan $pid survived"; return 1; }
	fi
	grep -q ready out || { say "the stubborn probe never started"; return 1; }
	! pgrep -f "stubborn 3600 $T_TMP" >/dev/null || { say "stubborn probe still running"; return 1; }
}
t_no_orphan_survives_subreaper() { no_orphan_survives ""; }
t_no_orphan_survives_pid1() { no_orphan_survives as_pid1; }

# With --kill-group a grandchild that the child never forwards to still gets the signal.
kill_group_case() {   # $1: extra flag, $2: "setsid" to put the grandchild in its own session
	"$CVM" run $1 -t 1s -- sh -c "trap '' USR1; ${2:-} $PROBE sigwait > gc & wait" 2>/dev/null &
	local cvm=$!
	wait_for gc ready || return 1
	kill -USR1 "$cvm"; sleep 0.3
	grep -c "got User defined signal 1" gc || true
	kill -TERM "$cvm"; wait "$cvm" 2>/dev/null || true
}
t_kill_group() {
	expect_eq "grandchild got USR1 without -g" "$(kill_group_case '')" 0 || return 1
	rm -f gc
	expect_eq "grandchild got USR1 with -g" "$(kill_group_case --kill-group)" 1
}

# --signal-target=all reaches even a process that left the group (setsid).
t_signal_target_all() {
	expect_eq "setsid grandchild with -g" "$(kill_group_case --kill-group setsid)" 0 || return 1
	rm -f gc
	expect_eq "setsid grandchild with all" "$(kill_group_case --signal-target=all setsid)" 1
}

t_sigtstp_forwarded() {
	"$CVM" run -t 1s -- "$PROBE" stubborn > out 2>/dev/null &
	local cvm=$!
	wait_for out ready || return 1
	child=$(child_of "$cvm")
	kill -TSTP "$cvm"; sleep 0.3
	expect_eq "child state after TSTP" "$(proc_state "$child")" T || return 1
	expect_eq "cvm state" "$(proc_state "$cvm")" S || return 1
	kill -CONT "$child"; kill -TERM "$cvm"; wait "$cvm" 2>/dev/null
	return 0
}

# With a terminal, the child is in its own group and owns the foreground.
t_terminal_foreground() {
	script -qec "$CVM run -- cat /proc/self/stat" /dev/null > out < /dev/null
	stat=$(tr -d '\r' < out | grep -m1 '(cat)')
	pid=$(echo "$stat" | awk '{print $1}')
	pgrp=$(echo "$stat" | sed 's/.*) //' | awk '{print $3}')
	tpgid=$(echo "$stat" | sed 's/.*) //' | awk '{print $6}')
	expect_eq "own process group" "$pgrp" "$pid" || return 1
	expect_eq "foreground group" "$tpgid" "$pid"
}

t_json_logs() {
	"$CVM" run --log-format=json --log-level=debug -- sh -c 'exit 3' 2> err; rc=$?
	expect_eq "exit" "$rc" 3 || return 1
	[ -s err ] || { say "no log lines"; return 1; }
	python3 -c '
import json, sys
for line in open("err"):
    o = json.loads(line)
    assert {"time", "level", "component", "message", "fields"} <= set(o), o
' || { say "not JSON lines: $(cat err)"; return 1; }
}

t_stdout_is_workload_only() {
	out=$("$CVM" run --log-level=debug -- echo hello 2>/dev/null)
	expect_eq "stdout" "$out" "hello"
}

t_bad_config_starts_nothing() {
	printf '[supervisor]\nstop_timeout = 30s\nmemroy = 4G\n' > bad.ini
	"$CVM" run --config bad.ini -- touch marker 2> err; rc=$?
	expect_eq "exit" "$rc" 2 || return 1
	[ ! -e marker ] || { say "command ran despite a bad config"; return 1; }
	grep -q "bad.ini:3" err && grep -q "memroy" err || { say "stderr: $(cat err)"; return 1; }
}

t_bad_flag_value() {
	"$CVM" run --stop-timeout 10parsecs -- touch marker 2> err; rc=$?
	expect_eq "exit" "$rc" 2 || return 1
	[ ! -e marker ] && grep -q -- "--stop-timeout" err || { say "$(cat err)"; return 1; }
}

t_env_overrides_file() {
	printf '[supervisor]\nstop_timeout = 30s\n' > c.ini
	CVM_SUPERVISOR_STOP_TIMEOUT=1s "$CVM" run -c c.ini -- "$PROBE" stubborn > out 2>/dev/null &
	local cvm=$! start
	wait_for out ready || return 1
	start=$(date +%s)
	kill -TERM "$cvm"; wait "$cvm"
	[ $(( $(date +%s) - start )) -lt 5 ] || { say "env did not override file"; return 1; }
}

t_help_and_version() {
	"$CVM" --help | grep -q '^Usage: cvm' || return 1
	"$CVM" run --help | grep -q -- '--stop-timeout' || return 1
	"$CVM" --version > ver || return 1
	grep -qE '^cvm [0-9]+\.[0-9]+' ver || { say "no cvm version:"; cat ver >&2; return 1; }
	# the image puller's libraries, called: libarchive with its own tar,
	# gzip and zstd readers (not an external program), libcurl with TLS
	grep -qE '^libcurl [0-9.]+ \((mbedTLS|OpenSSL)/[0-9.]+\), libarchive [0-9.]+ .*zlib/.*libzstd/.* \(tar, gzip, zstd\), json-c [0-9.]+, mbedtls [0-9.]+$' ver ||
		{ say "no library versions:"; cat ver >&2; return 1; }
	"$CVM" frobnicate 2> err; expect_eq "unknown command" "$?" 2
}

for t in $(declare -F | awk '$3 ~ /^t_/ {print $3}'); do
	run_test "${t#t_}" "$t"
done
finish
