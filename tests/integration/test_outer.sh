#!/bin/bash
# Tests of the outer-container harness itself (outer.sh), with plain
# commands as PID 1: what the other integration tests build on.
# usage: test_outer.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?build dir}" && pwd)
PROBE=$BUILD/tests/probe/probe
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
. "$HERE/outer.sh"

# out NAME / err NAME: a container's captured stdout / stderr
out() { cat "$OUTER_DIR/$1/out"; }
err() { cat "$OUTER_DIR/$1/err"; }
# status NAME [SECONDS]: outer_wait's status on stdout
status() { local rc=0; outer_wait "$@" || rc=$?; echo $rc; }
# A PID 1 that runs until killed and says when it is up.
IDLE='echo ready; while :; do sleep 0.1; done'

t_pid1_is_pid_1() {
	outer_start p1 -- sh -c 'echo $$; echo "ppid $PPID"' || return 1
	expect_eq "exit" "$(status p1)" 0 || return 1
	expect_eq "output" "$(out p1 | tr '\n' ' ')" "1 ppid 0 " || { say "err: $(err p1)"; return 1; }
}

# The recorded PID is the host PID of unshare's child, in namespaces of its own.
t_pid_file_is_pid1_on_the_host() {
	outer_start pf -- sleep 60 || return 1
	local pid ns
	pid=$(cat "$OUTER_DIR/pf/pid")
	expect_eq "comm" "$(cat /proc/"$pid"/comm)" sleep || return 1
	expect_eq "parent" "$(awk '{print $4}' /proc/"$pid"/stat)" "$(cat "$OUTER_DIR/pf/unshare.pid")" || return 1
	for ns in pid mnt cgroup uts ipc net; do
		[ "$(readlink /proc/"$pid"/ns/$ns)" != "$(readlink /proc/self/ns/$ns)" ] ||
			{ say "shares the host's $ns namespace"; return 1; }
	done
	# the pid namespace must be the one sleep is PID 1 of
	expect_eq "pid inside" "$(awk '/^NSpid/ {print $3}' /proc/"$pid"/status)" 1 || return 1
	outer_signal pf KILL || return 1
	expect_eq "exit after SIGKILL" "$(status pf 10)" 137
}

t_cgroup_ns_root_is_own_subtree() {
	outer_start cg -- sh -c 'sleep 60 & cat /sys/fs/cgroup/cgroup.procs; echo ---
		grep "^0::" /proc/self/cgroup; stat -f -c %T /sys/fs/cgroup
		mkdir /sys/fs/cgroup/inner && echo $$ > /sys/fs/cgroup/inner/cgroup.procs && echo ready
		wait' || return 1
	wait_for "$OUTER_DIR/cg/out" ready || return 1
	local cg procs
	cg=$(cat "$OUTER_DIR/cg/cgroup")
	expect_eq "cgroup dir" "$cg" "$OUTER_CG2/cvm-test.$$.cg" || return 1
	procs=$(out cg | sed '/^---$/,$d')
	# sh, sleep and cat; a process outside the pid ns would show as 0
	expect_eq "cgroup.procs inside" "$(echo "$procs" | wc -l)" 3 || { say "$procs"; return 1; }
	echo "$procs" | grep -qx 1 && ! echo "$procs" | grep -qx 0 || { say "$procs"; return 1; }
	out cg | grep -qx '0::/' || { say "$(out cg)"; return 1; }
	out cg | grep -qx cgroup2fs || { say "/sys/fs/cgroup is not cgroup2: $(out cg)"; return 1; }
	# what PID 1 made inside is under the subtree on the host
	expect_eq "host: inner" "$(cat "$cg/inner/cgroup.procs")" "$(outer_pid cg)" || return 1
	expect_eq "host: left in the root" "$(cat /proc/"$(cat "$cg/cgroup.procs")"/comm)" sleep || return 1
	outer_signal cg KILL || return 1
	expect_eq "exit" "$(status cg 10)" 137 || return 1
	[ ! -d "$cg" ] || { say "$cg left after outer_wait"; return 1; }
}

t_host_processes_invisible() {
	outer_start hp -- sh -c 'for p in /proc/[0-9]*; do read -r c < $p/comm; echo "${p#/proc/} $c"; done' ||
		return 1
	expect_eq "exit" "$(status hp)" 0 || return 1
	expect_eq "processes in /proc" "$(out hp)" "1 sh" || { say "err: $(err hp)"; return 1; }
}

t_exec_runs_inside() {
	local n marker=cvm-outer-marker.$$
	# two at once: each exec must land in its own container
	for n in ea eb; do
		outer_start $n -- sh -c "echo $n > /run/$marker; stat -f -c %T /run; $IDLE" || return 1
	done
	for n in ea eb; do
		wait_for "$OUTER_DIR/$n/out" ready || return 1
		expect_eq "/run fs" "$(out $n | head -1)" tmpfs || return 1
		expect_eq "/run seen by exec" "$(outer_exec $n cat /run/$marker)" $n || return 1
	done
	[ ! -e /run/$marker ] || { say "marker leaked to the host's /run"; return 1; }
	# files alone do not show it: nsenter -r reaches them from any namespace
	local ns="pid mnt cgroup uts ipc" want=
	for n in $ns; do want="$want$(readlink /proc/"$(outer_pid ea)"/ns/$n) "; done
	expect_eq "exec namespaces" "$(outer_exec ea sh -c "for n in $ns; do readlink /proc/self/ns/\$n; done" | tr '\n' ' ')" \
		"$want" || return 1
	local got rc=0
	got=$(outer_exec ea sh -c 'cat /proc/1/cmdline | tr "\0" " "; echo; grep "^0::" /proc/self/cgroup; pwd')
	echo "$got" | grep -q "^sh -c echo ea" || { say "PID 1 seen from exec: $got"; return 1; }
	echo "$got" | grep -qx '0::/' || { say "exec is not in the container's cgroup: $got"; return 1; }
	echo "$got" | grep -qx "$PWD" || { say "exec cwd is not PID 1's: $got"; return 1; }
	expect_eq "stdin through" "$(echo through | outer_exec ea cat)" through || return 1
	outer_exec ea sh -c 'echo to-err >&2; exit 5' > o 2> e || rc=$?
	expect_eq "exec status" "$rc" 5 || return 1
	expect_eq "exec stderr" "$(cat e)" to-err || return 1
	[ ! -s o ] || { say "stdout: $(cat o)"; return 1; }
	# its processes are the container's: the host sees them in the subtree
	outer_exec ea sh -c 'cat /sys/fs/cgroup/cgroup.procs' > o || return 1
	! grep -qx 0 o || { say "a host process in the container's cgroup: $(cat o)"; return 1; }
	for n in ea eb; do outer_signal $n KILL || return 1; outer_wait $n 10; done
	rc=0; outer_exec ea true 2>/dev/null || rc=$?
	expect_eq "exec into an ended container" "$rc" 125
}

t_wait_returns_exit_code() {
	local c
	for c in 0 7 255; do
		outer_start w$c -- sh -c "exit $c" || return 1
		expect_eq "exit $c" "$(status w$c)" $c || return 1
	done
	outer_start wnf -- /no/such/command || return 1
	expect_eq "not found" "$(status wnf)" 127 || return 1
	outer_start wto -- sleep 60 || return 1
	local start=$SECONDS
	expect_eq "timeout" "$(status wto 1)" 124 || return 1
	[ $((SECONDS - start)) -le 3 ] || { say "outer_wait 1 took $((SECONDS - start)) s"; return 1; }
	kill -0 "$(outer_pid wto)" || { say "PID 1 did not survive the timeout"; return 1; }
}

t_signal_term_ends_pid1() {
	outer_start st -- sh -c "trap 'exit 3' TERM; $IDLE" || return 1
	wait_for "$OUTER_DIR/st/out" ready || return 1
	outer_signal st TERM || return 1
	expect_eq "exit after TERM" "$(status st 10)" 3 || return 1
	! outer_signal st TERM 2>/dev/null || { say "signalled an ended container"; return 1; }
}

# Like docker: nothing of the caller leaks into PID 1 but its environment.
t_clean_start() {
	exec 7</dev/null
	trap '' USR1 HUP
	outer_start cs1 -- "$PROBE" fds || return 1
	expect_eq "probe" "$(status cs1)" 0 || return 1
	expect_eq "fds above 2" "$(out cs1 | tail -1)" "fds 0" || { say "$(out cs1)"; return 1; }
	outer_start cs2 --env FOO=bar --env BAZ='a b' -- sh -c 'echo "env $FOO/$BAZ"
		grep -E "^Sig(Ign|Blk)" /proc/self/status; read x; echo "stdin $?"
		set -- $(sed "s/.*) //" /proc/1/stat); echo "session $4"' || return 1
	trap - USR1 HUP; exec 7<&-
	expect_eq "exit" "$(status cs2)" 0 || return 1
	local want
	want=$(printf '%s\n' "env bar/a b" "SigBlk:	0000000000000000" "SigIgn:	0000000000000000" \
		"stdin 1" "session 1")
	expect_eq "state" "$(out cs2)" "$want" || { say "err: $(err cs2)"; return 1; }
}

t_log_and_bad_use() {
	outer_start lg -- sh -c 'echo to-out; echo to-err >&2' || return 1
	expect_eq "exit" "$(status lg)" 0 || return 1
	expect_eq "out" "$(out lg)" to-out || return 1
	expect_eq "err" "$(err lg)" to-err || return 1
	expect_eq "outer_log" "$(outer_log lg | tr '\n' ' ')" "to-out to-err " || return 1
	local rc=0
	outer_start lg -- true 2>/dev/null || rc=$?
	expect_eq "same name again" "$rc" 1 || return 1
	rc=0; outer_start nocmd -- 2>/dev/null || rc=$?
	expect_eq "no command" "$rc" 2 || return 1
	rc=0; outer_start a/b -- true 2>/dev/null || rc=$?
	expect_eq "name with /" "$rc" 2
}

# A second harness in its own bash: starts, in MODE, two containers (one with
# a cgroup of its own and a TERM-proof child, one with an exec'd process),
# prints what it made, and ends as MODE says. Two run at once with the same
# container names.
child_script() {
	cat > child.sh <<EOF
. "$HERE/lib.sh"
trap 'echo prev-trap-ran' EXIT
. "$HERE/outer.sh"
mode=\$1
outer_start c1 -- sh -c 'mkdir /sys/fs/cgroup/sub; trap "" TERM; sleep 300 &
	echo \$! > /sys/fs/cgroup/sub/cgroup.procs; $IDLE' || exit 1
outer_start c2 -- sleep 300 || exit 1
outer_exec c2 sleep 300 </dev/null >/dev/null 2>&1 &
wait_for "\$OUTER_DIR/c1/out" ready || exit 1
echo "dir \$OUTER_DIR"
echo "pids \$(outer_pid c1) \$(outer_pid c2) \$(cat "\$OUTER_DIR"/c?/unshare.pid | tr '\n' ' ') \$!"
echo "cgroups \$(cat "\$OUTER_DIR"/c?/cgroup)"
case \$mode in
explicit) outer_cleanup; echo cleaned ;;
exit) echo ready-to-exit; exit ;;
*) echo ready ;;
esac
# wait to be ended, but never outlive the test (pid $$), nor a minute
for n in \$(seq 600); do
	[ ! -e go ] && kill -0 $$ 2>/dev/null || break
	sleep 0.1
done
EOF
}

# mounts at the points a container mounts over, as the host sees them
host_mounts() { awk '$5 == "/proc" || $5 == "/run" || $5 ~ "^/sys/fs/cgroup"' /proc/self/mountinfo; }

# leftovers LOG: what the harness that wrote LOG left behind, if anything
leftovers() {
	local dir p c
	dir=$(sed -n 's/^dir //p' "$1")
	[ -n "$dir" ] || { echo "no report in $1: $(cat "$1")"; return; }
	[ ! -e "$dir" ] || echo "dir $dir"
	for p in $(sed -n 's/^pids //p' "$1"); do
		# a zombie is its (live) parent's business, not a leak
		[ ! -e /proc/"$p" ] || [ "$(proc_state "$p")" = Z ] ||
			echo "process $p ($(cat /proc/"$p"/comm 2>/dev/null))"
	done
	for c in $(sed -n 's/^cgroups //p' "$1"); do [ ! -e "$c" ] || echo "cgroup $c"; done
	grep -F "$dir" /proc/self/mountinfo
}

# gone PID: wait up to 20 s for a child harness to end.
gone() {
	local i
	for ((i = 0; i < 400; i++)); do
		if [ ! -e /proc/"$1" ] || [ "$(proc_state "$1")" = Z ]; then
			wait "$1" 2>/dev/null; return 0
		fi
		sleep 0.05
	done
	say "harness $1 did not end"; return 1
}

# cleanup_case MODE: run two child harnesses, end them by MODE, check both.
cleanup_case() {
	local mode=$1 i pgid rc
	pids=()   # global: the EXIT trap of this test's subshell reads it
	host_mounts > mounts.before
	# however this test ends, no child harness outlives it (TERM: its EXIT trap cleans up)
	# (keeping the test's status: a trap's last command would replace it)
	trap 'st=$?; kill -TERM "${pids[@]}" 2>/dev/null || :; exit $st' EXIT
	for i in 1 2; do
		# as from a terminal: an async job would start with INT ignored for good
		env --default-signal=INT,QUIT setsid bash child.sh "$mode" > log$i 2>&1 &
		pids+=($!)
	done
	for i in 1 2; do
		case $mode in
		explicit) wait_for log$i cleaned 20 || return 1 ;;
		exit) gone "${pids[i - 1]}" || return 1 ;;
		*) wait_for log$i '^ready$' 20 || return 1 ;;
		esac
	done
	for i in 1 2; do
		case $mode in
		term) kill -TERM "${pids[i - 1]}" ;;
		int) # a ^C: the whole foreground process group
			pgid=$(awk '{print $5}' /proc/"${pids[i - 1]}"/stat)
			kill -INT -- -"$pgid" ;;
		esac
	done
	# explicit: look while the harness still runs, before its EXIT trap
	if [ "$mode" = explicit ]; then
		for i in 1 2; do
			rc=$(leftovers log$i)
			[ -z "$rc" ] || { say "after outer_cleanup, from run $i: $rc"; return 1; }
		done
		touch go
	fi
	for i in 1 2; do gone "${pids[i - 1]}" || return 1; done
	pids=()   # ended and reaped: nothing for the trap to signal
	for i in 1 2; do
		rc=$(leftovers log$i)
		[ -z "$rc" ] || { say "$mode, run $i left: $rc"; sed 's/^/      | /' log$i >&2; return 1; }
		grep -q prev-trap-ran log$i || { say "earlier EXIT trap lost: $(cat log$i)"; return 1; }
	done
	host_mounts > mounts.after
	cmp -s mounts.before mounts.after || { say "host mounts changed:"; diff mounts.before mounts.after >&2; return 1; }
	[ "$(sed -n 's/^dir //p' log1)" != "$(sed -n 's/^dir //p' log2)" ] || { say "shared OUTER_DIR"; return 1; }
}
t_cleanup_explicit() { child_script && cleanup_case explicit; }
t_cleanup_on_exit() { child_script && cleanup_case exit; }
t_cleanup_on_sigterm() { child_script && cleanup_case term; }
t_cleanup_on_interrupt() { child_script && cleanup_case int; }

t_rootfs_fixture() {
	local root again
	root=$(outer_rootfs "$BUILD") || return 1
	case $root in "$(cd "$HERE/../.." && pwd)"/*) say "cache inside the repo: $root"; return 1 ;; esac
	[ -x "$root/bin/sh" ] && [ -x "$root/usr/bin/probe" ] || { say "incomplete: $root"; return 1; }
	cmp -s "$root/usr/bin/probe" "$PROBE" || { say "stale probe in $root"; return 1; }
	again=$(outer_rootfs "$BUILD") || return 1
	expect_eq "cached path" "$again" "$root" || return 1
	# busybox sh and the probe run with nothing but the rootfs: both static
	expect_eq "probe via chroot" "$(chroot "$root" /bin/sh -c '/usr/bin/probe orphans 3; echo rc $?' | tr '\n' ' ')" \
		"orphans 3 rc 0 "
}

# Parallel builds into an empty cache: one complete tree, nothing half-built;
# another probe gets another tree.
t_rootfs_built_once_atomically() {
	local i
	export CVM_TEST_CACHE=$PWD/cache
	for i in 1 2 3 4; do outer_rootfs "$BUILD" > path$i 2> err$i & done
	# meanwhile a tree in the cache is complete the moment it has its name
	while [ "$(jobs -pr | wc -l)" -gt 0 ]; do
		for i in cache/rootfs-*; do
			[ ! -e "$i" ] || { [ -x "$i/usr/bin/probe" ] && [ -x "$i/bin/sh" ]; } ||
				{ say "half-built tree visible: $i"; wait; return 1; }
		done
	done
	wait
	for i in 2 3 4; do
		[ -s path$i ] && cmp -s path1 path$i || { say "run $i: $(cat path$i err$i)"; return 1; }
	done
	expect_eq "trees in the cache" "$(ls -A cache | tr '\n' ' ')" "$(basename "$(cat path1)") " || return 1
	[ -x "$(cat path1)/usr/bin/probe" ] || return 1
	mkdir -p other/tests/probe && cp "$PROBE" other/tests/probe/probe && echo >> other/tests/probe/probe
	i=$(outer_rootfs "$PWD/other") || return 1
	[ "$i" != "$(cat path1)" ] || { say "a changed probe reused $i"; return 1; }
	cmp -s "$i/usr/bin/probe" other/tests/probe/probe || { say "wrong probe in $i"; return 1; }
}

for t in $(declare -F | awk '$3 ~ /^t_/ {print $3}'); do
	run_test "${t#t_}" "$t"
done
finish
