#!/bin/bash
# The /proc server on this host (limits: tests/vm/): its files are bound over
# the workspace's /proc and /sys entries, read consistently, and it survives
# being killed while readers loop.
# usage: test_procfs.sh BUILD_DIR
. "$(dirname "$0")/workspace.sh" "$1"
STATE=$(mktemp -d /tmp/cvm-procfs-state.XXXXXX)
trap 'outer_cleanup; rm -rf "$STATE" "$STATE".*' EXIT

WS=pf.$$
ws_start "$WS" "$STATE" -- sleep 1000 || exit 1
ex() { ws_exec "$WS" "$@"; }
# the same without FUSE passthrough ([proc] passthrough = no): every read
# reaches the server (what kernels < 6.9 get)
PT=plain.$$
outer_start "$PT" --env CVM_PROC_PASSTHROUGH=no -- "$CVM" run --rootfs "$ROOTFS" --state "$STATE.pt" \
	-- sleep 1000 || exit 1
for _ in $(seq 200); do outer_exec "$PT" test -S /run/cvm/control.sock 2>/dev/null && break; sleep 0.05; done
pt() { ws_exec "$PT" "$@"; }
# the server of workspace $1 (default: $WS): cvm's child named cvm-procfs
# The live server: a killed one not yet reaped (a zombie, still a child)
# would take a kill that restarts nothing.
server_pid() {
	local c
	for c in $(cat /proc/"$(outer_pid "${1:-$WS}")"/task/*/children); do
		[ "$(cat /proc/"$c"/comm 2>/dev/null)" = cvm-procfs ] &&
			[ "$(awk '{print $3}' /proc/"$c"/stat 2>/dev/null)" != Z ] && { echo "$c"; return; }
	done
}

t_files_are_served() {
	out=$(ex sh -c 'grep " fuse " /proc/self/mountinfo | cut -d" " -f5 | sort')
	expect_eq "fuse mounts" "$out" "/proc/cpuinfo
/proc/diskstats
/proc/loadavg
/proc/meminfo
/proc/stat
/proc/swaps
/proc/uptime
/sys/devices/system/cpu/online"
}

t_contents_follow_the_host_without_limits() {
	out=$(ex sh -c 'grep ^MemTotal: /proc/meminfo; grep -c ^processor /proc/cpuinfo; cat /sys/devices/system/cpu/online; stat -c %U /proc/meminfo')
	expect_eq "inside" "$out" "$(grep ^MemTotal: /proc/meminfo)
$(nproc)
0$([ "$(nproc)" -gt 1 ] && echo "-$(( $(nproc) - 1 ))")
root"
}

t_loadavg_and_diskstats_are_the_workspaces() {
	out=$(ex cat /proc/loadavg)
	# the workspace's tasks only (sleep, cvm's init, this cat...), numbered inside
	echo "$out" | grep -qE '^[0-9]+\.[0-9]{2} [0-9]+\.[0-9]{2} [0-9]+\.[0-9]{2} [0-9]+/[0-9]+ [0-9]+$' ||
		{ say "loadavg: $out"; return 1; }
	total=$(echo "$out" | cut -d' ' -f4 | cut -d/ -f2); last=$(echo "$out" | cut -d' ' -f5)
	[ "$total" -ge 2 ] && [ "$total" -lt 20 ] && [ "$last" -lt 1000 ] || { say "loadavg: $out"; return 1; }
	expect_eq "disks" "$(ex cut -c14- /proc/diskstats | awk '{print $1}')" "$(cut -c14- /proc/diskstats | awk '{print $1}')"
}

t_uptime_is_the_workspaces() {
	up=$(ex cut -d. -f1 /proc/uptime)
	host=$(cut -d. -f1 /proc/uptime)
	[ "$up" -lt 120 ] && [ "$up" -lt "$host" ] || { say "workspace $up s, host $host s"; return 1; }
}

t_chunked_reads_match() {
	for f in meminfo cpuinfo stat swaps; do
		out=$(ex sh -c "a=\$(dd if=/proc/$f bs=1 2>/dev/null | md5sum); b=\$(dd if=/proc/$f bs=1024 2>/dev/null | md5sum); c=\$(cat /proc/$f | md5sum); echo \$a \$b \$c")
		set -- $out
		# meminfo and stat change between opens; compare what must be stable
		case $f in cpuinfo|swaps) [ "$1" = "$3" ] && [ "$3" = "$5" ] || { say "$f: $out"; return 1; } ;; esac
		[ -n "$1" ] || return 1
	done
	# one open, read in 1-byte and 1000-byte pieces: one snapshot
	out=$(ex sh -c 'exec 3</proc/meminfo; head -c 100 <&3 >/dev/null; wc -c <&3; wc -c < /proc/meminfo')
	set -- $out
	[ "$(( $1 + 100 ))" = "$2" ] || { say "continued read $1 + 100 vs $2"; return 1; }
}

# kill_server_100_times WS EXEC: 4 readers loop on /proc/meminfo meanwhile
kill_server_100_times() {
	local ws=$1 x=$2 killer n=0 pid
	# two readers a process per read, two a process reading 50 times (with
	# passthrough, all but its first open are passthrough ones)
	$x sh -c 'rm -f /tmp/stop /tmp/fails /tmp/counts; for r in 1 2; do (i=0; while [ ! -e /tmp/stop ]; do
		grep -q MemTotal /proc/meminfo || echo FAIL >> /tmp/fails; i=$((i+1)); done; echo $i >> /tmp/counts) &
		(i=0; while [ ! -e /tmp/stop ]; do probe readloop /proc/meminfo 50 > /dev/null || echo FAIL >> /tmp/fails
		i=$((i+50)); done; echo $i >> /tmp/counts) & done' &
	killer=$!
	sleep 0.5
	while [ $n -lt 100 ]; do
		pid=$(server_pid "$ws")
		[ -n "$pid" ] && kill -9 "$pid" && n=$((n + 1))
		sleep 0.02
	done
	$x touch /tmp/stop; wait "$killer"; sleep 0.5
	fails=$($x sh -c 'cat /tmp/fails 2>/dev/null | wc -l')
	reads=$($x sh -c 'cat /tmp/counts | awk "{s+=\$1} END {print s}"')
	say "100 kills, $reads reads, $fails failed"
	expect_eq "failed reads" "$fails" 0 || return 1
	[ "${reads:-0}" -gt 100 ] || { say "readers did not run"; return 1; }
	grep -q "restarted it on the same connection (restart 100)" "$OUTER_DIR/$ws/err"
}

# The server reads what the workspace sends: it holds no capability but
# cap_dac_override (bit 1: sysinfo(2) answers through /proc/PID/mem),
# cap_sys_admin (bit 21) for passthrough's backing files and cap_sys_nice
# (bit 23) to raise its follower thread.
server_caps() { grep -E '^Cap(Eff|Prm)' /proc/"$(server_pid "$1")"/status | awk '{print $2}' | sort -u; }
t_server_capabilities() {
	expect_eq "server's caps" "$(server_caps "$WS")" 0000000000a00002 &&
		expect_eq "server's caps without passthrough" "$(server_caps "$PT")" 0000000000800002
}

# A server restarted after cvm gave up its capabilities has no
# cap_sys_admin or cap_sys_nice to get back, and so no follower thread (its
# bounding set stays cvm's short one: without cap_setpcap it cannot shrink).
t_server_restarted_without_sys_admin() {
	local old
	old=$(server_pid "$WS")
	kill -9 "$old"
	for _ in $(seq 100); do
		[ -n "$(server_pid "$WS")" ] && [ "$(server_pid "$WS")" != "$old" ] && break
		sleep 0.05
	done
	expect_eq "restarted server's caps" "$(server_caps "$WS")" 0000000000000002 || return 1
	expect_eq "restarted server's threads" "$(ls /proc/"$(server_pid "$WS")"/task | wc -l)" 1 || return 1
	out=$(ex grep -c MemTotal /proc/meminfo); expect_eq "read after" "$out" 1
}

t_server_killed_100_times_readers_never_fail() {
	kill_server_100_times "$WS" ex
}

# procps (top, vmstat, free -s) opens once and reads again from offset 0
t_reading_again_from_the_start_gets_new_numbers() {
	for x in ex pt; do
		out=$($x probe reread /proc/uptime 2 300)
		set -- $out
		[ "$1" != "$3" ] || { say "$x: uptime unchanged: $out"; return 1; }
	done
}

t_without_passthrough_the_same_files() {
	expect_eq "MemTotal" "$(pt grep ^MemTotal: /proc/meminfo)" "$(grep ^MemTotal: /proc/meminfo)" || return 1
	expect_eq "processors" "$(pt grep -c ^processor /proc/cpuinfo)" "$(nproc)" || return 1
	up=$(pt cut -d. -f1 /proc/uptime)
	[ "$up" -lt 120 ] || { say "uptime $up"; return 1; }
	out=$(pt sh -c 'a=$(dd if=/proc/cpuinfo bs=1 2>/dev/null | md5sum); b=$(cat /proc/cpuinfo | md5sum); [ "$a" = "$b" ] && echo same')
	expect_eq "cpuinfo in 1-byte reads" "$out" same || return 1
	out=$(pt sh -c 'exec 3</proc/meminfo; head -c 100 <&3 >/dev/null; wc -c <&3; wc -c < /proc/meminfo')
	set -- $out
	[ "$(( $1 + 100 ))" = "$2" ] || { say "continued read $1 + 100 vs $2"; return 1; }
}

# A process that opened and closed a file before gets passthrough: reads
# that never reach the server. Seen from inside by its price: if that
# process then keeps the file open, a read from the start shows the numbers
# of its open. Other readers meanwhile wait at most 20 ms, never fail.
t_passthrough_for_processes_that_open_again() {
	out=$(ex probe reread /proc/uptime 2 300 2)
	set -- $out
	expect_eq "uptime re-read through passthrough" "$3" "$1" || return 1
	out=$(pt probe reread /proc/uptime 2 300 2)
	set -- $out
	[ "$1" != "$3" ] || { say "no passthrough, yet unchanged: $out"; return 1; }
	ex sh -c 'probe reread /proc/uptime 2 1500 2 > /dev/null' &
	local holder=$!
	sleep 0.5
	out=$(ex sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do cat /proc/uptime > /dev/null || echo FAIL; done; echo done')
	wait "$holder"
	expect_eq "reads while another holds the file" "$out" done
}

# The follower ([proc] follow): while a reader loops, a second thread of
# the server serves from the reader's CPU as SCHED_IDLE, moves with it, and
# sleeps again once the reads stop. (Tests run in name order, so this one
# comes before the kill tests: a restarted server has no follower.)
t_follower_serves_on_the_readers_cpu() {
	local spid tid cpu seen t0 t1 reader i policy
	spid=$(server_pid)
	tid=$(ls /proc/"$spid"/task | grep -vx "$spid" | head -n 1)
	if [ "$(nproc)" -lt 2 ]; then
		expect_eq "follower with one CPU" "$tid" ""
		return
	fi
	[ -n "$tid" ] || { say "no follower thread in the server"; return 1; }
	for cpu in 0 1; do
		t0=$(awk '{print $14 + $15}' /proc/"$spid"/task/"$tid"/stat)
		ex taskset $((1 << cpu)) probe readloop /proc/uptime 200000 > /dev/null &
		reader=$!
		for i in $(seq 100); do
			seen=$(awk '$1 == "Cpus_allowed_list:" {print $2}' /proc/"$spid"/task/"$tid"/status)
			[ "$seen" = "$cpu" ] && break
			sleep 0.02
		done
		# SCHED_IDLE (5) while it follows; main may raise it to normal (0)
		# for a moment when its CPU is busy with others (a shared machine):
		# seen idle at least once in 0.3 s.
		policy=
		for i in $(seq 15); do
			policy=$(awk '$1 == "policy" {print $3}' /proc/"$spid"/task/"$tid"/sched)
			[ "$policy" = 5 ] && break
			sleep 0.02
		done
		sleep 0.1
		t1=$(awk '{print $14 + $15}' /proc/"$spid"/task/"$tid"/stat)
		wait "$reader" || { say "the reader on CPU $cpu failed"; return 1; }
		expect_eq "the follower's CPUs while CPU $cpu reads" "$seen" "$cpu" || return 1
		expect_eq "its policy (SCHED_IDLE)" "$policy" 5 || return 1
		[ "$t1" -gt "$t0" ] || { say "the follower did no work on CPU $cpu ($t0 -> $t1 ticks)"; return 1; }
	done
	sleep 0.2
	t0=$(awk '{print $14 + $15}' /proc/"$spid"/task/"$tid"/stat)
	sleep 0.5
	t1=$(awk '{print $14 + $15}' /proc/"$spid"/task/"$tid"/stat)
	expect_eq "the follower's CPU ticks without readers" "$t1" "$t0" || return 1
	expect_eq "its state without readers" "$(proc_state "$tid")" S || return 1
	# asleep it is always idle again, raised or not while it served
	expect_eq "its policy without readers" \
		"$(awk '$1 == "policy" {print $3}' /proc/"$spid"/task/"$tid"/sched)" 5
}

# A SCHED_IDLE follower runs only when its CPU has nothing else to do; with
# every CPU busy the main thread raises it and answers instead: reads take
# at most milliseconds, never the seconds an idle-class thread can wait.
t_busy_cpus_do_not_stall_reads() {
	local ns
	ns=$(ex sh -c 'n=$(nproc); i=0; while [ $i -lt $n ]; do probe spin 4 & i=$((i + 1)); done
		sleep 0.3; probe readloop /proc/meminfo 300; wait')
	[ -n "$ns" ] && [ "$ns" -lt 20000000 ] ||
		{ say "a read took $ns ns on average with every CPU busy"; return 1; }
}

t_without_passthrough_server_killed_100_times_readers_never_fail() {
	kill_server_100_times "$PT" pt
}

# sysinfo(2) (busybox free, glibc's load averages): the same numbers as
# /proc/meminfo and /proc/uptime inside, for `cvm exec` commands...
t_sysinfo_says_what_meminfo_says() {
	out=$(ex sh -c 'probe sysinfo; echo; cat /proc/meminfo; echo; cut -d. -f1 /proc/uptime; free | grep Mem:')
	kv() { echo "$out" | awk -v k="$1" '$1 == k || $1 == k":" {print $2; exit}'; }
	expect_eq "totalram" "$(kv totalram)" "$(kv MemTotal)" || return 1
	expect_eq "totalswap" "$(kv totalswap)" "$(kv SwapTotal)" || return 1
	expect_eq "free's total" "$(echo "$out" | awk '/^Mem:/ {print $2}')" "$(kv MemTotal)" || return 1
	free=$(kv freeram) mfree=$(kv MemFree)
	[ $(( (free - mfree) * 100 / mfree )) -le 5 ] && [ $(( (mfree - free) * 100 / mfree )) -le 5 ] ||
		{ say "freeram $free vs MemFree $mfree"; return 1; }
	up=$(kv uptime) pup=$(echo "$out" | sed -n '/^[0-9]*$/p' | tail -1)
	[ "$up" -lt 120 ] && [ $((up - pup)) -le 1 ] && [ $((pup - up)) -le 1 ] ||
		{ say "sysinfo uptime $up, /proc/uptime $pup"; return 1; }
	procs=$(kv procs)
	[ "$procs" -ge 2 ] && [ "$procs" -lt 50 ] || { say "procs $procs"; return 1; }
}

# The answer is the kernel's struct, not libc's: musl's is 256 bytes longer,
# and a server built with musl once wrote all of it over the caller's stack.
t_sysinfo_writes_only_the_kernels_struct() {
	out=$(ex probe sysinfo-bounds)
	expect_eq "bytes written past the struct" "$out" "sysinfo-overrun 0"
}

# ... and for the inner init's whole tree
t_sysinfo_in_the_inner_inits_tree() {
	local name=si.$$
	outer_start "$name" -- "$CVM" run --rootfs "$ROOTFS" --state "$STATE.3" -- \
		sh -c 'probe sysinfo | grep -E "^(totalram|uptime) "; grep ^MemTotal: /proc/meminfo'
	outer_wait "$name" 20 || { outer_log "$name" >&2; return 1; }
	out=$(cat "$OUTER_DIR/$name/out")
	total=$(echo "$out" | awk '$1 == "totalram" {print $2}')
	up=$(echo "$out" | awk '$1 == "uptime" {print $2}')
	expect_eq "totalram" "$total" "$(echo "$out" | awk '$1 == "MemTotal:" {print $2}')" || return 1
	[ "$up" -lt 60 ] || { say "uptime $up"; return 1; }
}

# The answerer dies and comes back: callers wait for the next one, never
# fail and never hang.
t_sysinfo_survives_server_kills() {
	ex sh -c 'rm -f /tmp/sstop /tmp/sfails /tmp/scounts; for r in 1 2; do (i=0; while [ ! -e /tmp/sstop ]; do
		timeout 10 probe sysinfo > /dev/null || echo FAIL >> /tmp/sfails; i=$((i+1)); done; echo $i >> /tmp/scounts) & done' &
	local looper=$! n=0 pid
	sleep 0.5
	while [ $n -lt 30 ]; do
		pid=$(server_pid)
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null && n=$((n + 1))
		sleep 0.05
	done
	ex touch /tmp/sstop; wait "$looper"; sleep 0.5
	fails=$(ex sh -c 'cat /tmp/sfails 2>/dev/null | wc -l')
	calls=$(ex sh -c 'cat /tmp/scounts | awk "{s+=\$1} END {print s}"')
	say "30 kills, $calls sysinfo calls, $fails failed"
	expect_eq "failed calls" "$fails" 0 && [ "${calls:-0}" -gt 20 ]
}

t_only_the_configured_files() {
	local name=only.$$
	outer_start "$name" --env CVM_PROC_FILES="meminfo uptime" -- "$CVM" run --rootfs "$ROOTFS" \
		--state "$STATE.2" -- sh -c 'grep " fuse " /proc/self/mountinfo | cut -d" " -f5 | sort'
	outer_wait "$name" 20 || { outer_log "$name" >&2; return 1; }
	expect_eq "fuse mounts" "$(cat "$OUTER_DIR/$name/out")" "/proc/meminfo
/proc/uptime"
}

for t in $(declare -F | awk '$3 ~ /^t_/ {print $3}'); do
	run_test "${t#t_}" "$t"
done
run_test stop eval 'outer_signal "$WS" TERM; outer_wait "$WS" 20; expect_eq "exit" "$?" 143'
outer_signal "$PT" TERM; outer_wait "$PT" 20 >/dev/null
finish
