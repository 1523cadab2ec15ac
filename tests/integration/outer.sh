# The outer-container harness: what `docker run --privileged` gives cvm, made
# from unshare. Source it (bash, after lib.sh); needs root, cgroup2, util-linux.
#
#   outer_start NAME [--env K=V ...] -- CMD [ARGS...]
#       Start CMD as PID 1 of new pid, mount, cgroup, uts, ipc and network
#       namespaces and return once it runs (1 if it could not start). Its
#       network has only lo (up) until a test adds more (outer_pid + ip link
#       ... netns), so nothing it does reaches the machine's. Inside: a fresh
#       /proc, cgroup2 at /sys/fs/cgroup showing only its own subtree
#       (<cgroup2 mount>/cvm-test.<script pid>.NAME, the cgroup ns root), a
#       tmpfs on /run; the host's files otherwise, cwd the caller's. On a
#       host with cgroup v1 hierarchies (hybrid), PID 1 also sits in a group
#       of its own in each one mounted here (<v1 mount><caller's group>/
#       cvm-test.<script pid>.NAME, listed in $OUTER_DIR/NAME/cgroup1), the
#       cgroup namespace's root there too, as a pod on a hybrid node does. CMD gets
#       stdin /dev/null, stdout/stderr in $OUTER_DIR/NAME/{out,err}, no fds
#       above 2, default signal dispositions, its own session, the caller's
#       environment plus each --env. NAME: unique per script, no "/".
#       $OUTER_DIR/NAME/pid: PID 1's host PID; $OUTER_DIR/NAME/state: an
#       empty dir for the container's state (e.g. cvm --state).
#   outer_exec NAME CMD...   like docker exec: CMD in its namespaces (network
#       included) and in
#       PID 1's cgroup, with PID 1's root and cwd; returns CMD's status (125
#       if the container is not running); stdio pass through.
#   outer_wait NAME [SECONDS]  wait (default 30, whole seconds) for PID 1 to
#       end; returns its status (128+N if signal N killed it), or 124 on
#       timeout (it keeps running). Then removes the container's cgroup.
#   outer_signal NAME SIG    send SIG to PID 1 (the kernel drops it unless
#       PID 1 handles SIG, KILL and STOP aside, as under docker).
#   outer_log NAME           print its stdout, then its stderr.
#   outer_rootfs BUILD_DIR   print the cached busybox rootfs with the static
#       probe at /usr/bin/probe (read-only input: share, never write).
#   outer_cleanup            kill every container, remove its cgroups and
#       $OUTER_DIR. Runs on EXIT: sourcing chains it before an EXIT trap set
#       earlier; a script setting its own EXIT trap afterwards must call
#       outer_cleanup from it. Signals during it are ignored.
#   outer_pid NAME / outer_running NAME   PID 1's host PID / whether it runs.
#
# All mounts happen in the containers' private mount namespaces, which die
# with their last process; state lives in files under $OUTER_DIR so that
# containers started in subshells (run_test) are cleaned up too.

OUTER_DIR=$(mktemp -d /tmp/cvm-outer.XXXXXX)
# cgroup2 wherever the host mounts it (/sys/fs/cgroup, or .../unified when hybrid).
OUTER_CG2=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
# The caller's own group in each cgroup v1 hierarchy mounted here (whole,
# root "/"): "MOUNTPOINT/PATH", one a line; none on a cgroup v2 host. A
# hierarchy of /proc/self/cgroup ("4:cpu,cpuacct:/x") matches the mount
# whose super options hold all of its controllers (or its name=).
OUTER_V1=$(awk -F: 'NR == FNR { if ($1 != 0) { p = $0; sub(/^[^:]*:[^:]*:/, "", p); path[$2] = p }; next }
	{ split($0, f, " "); for (i = 7; f[i] != "-"; i++) ;
	  if (f[i + 1] != "cgroup" || f[4] != "/") next
	  n = split(f[i + 3], o, ",")
	  for (k in path) {
		m = split(k, c, ","); ok = 1
		for (j = 1; j <= m; j++) { hit = 0; for (l = 1; l <= n; l++) if (o[l] == c[j]) hit = 1; if (!hit) ok = 0 }
		if (ok && !(k in seen)) { seen[k] = 1; print f[5] (path[k] == "/" ? "" : path[k]) }
	  } }' /proc/self/cgroup /proc/self/mountinfo)

# The "unshare process" (bash, after unshare execs it): in the new mount ns
# but the host pid ns, so its first child is PID 1. It stays the parent to
# record PID 1's real wait status: unshare --fork 2.38 turns a SIGKILLed
# child into exit 1 ("sigprocmask unblock failed").
# $1 cgroup dir, $2 state dir, $3 the PID 1 setup script, then env args + CMD.
# The v1 groups to join are in $2/cgroup1.
OUTER_PARENT='cg=$1 d=$2 setup=$3; shift 3
trap "" INT QUIT   # a ^C to the test must not orphan PID 1 and lose its status
for f in /proc/self/fd/*; do f=${f##*/}; [ "$f" -le 2 ] || eval "exec $f>&-"; done
(
	exec </dev/null >"$d/out" 2>"$d/err"
	read -r pid _ < /proc/self/stat && echo "$pid" > "$d/pid"   # still the host /proc
	# Join the subtree first: a new cgroup ns is rooted where its creator stands.
	while IFS= read -r g; do echo 0 > "$g/cgroup.procs" || exit 125; done < "$d/cgroup1"
	echo 0 > "$cg/cgroup.procs" || exit 125
	exec unshare --cgroup -- setsid -- sh -c "$setup" outer-setup "$d" "$@"
) &
wait $!
echo $? > "$d/rc.tmp" && mv "$d/rc.tmp" "$d/rc"'

# PID 1 itself, in all its namespaces now (cgroup2 mounted here shows the ns root).
OUTER_SETUP='d=$1; shift
# cgroup2 over what the host has there; where that is cgroup2 itself (a
# pure v2 host), the kernel refuses the same superblock twice on one
# mount point (EBUSY): unmount the host mount first, in this namespace only.
mount -t proc proc /proc &&
	{ mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null ||
	  { umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup; }; } &&
	mount -t tmpfs -o mode=0755 tmpfs /run || exit 125
ip link set lo up || exit 125
: > "$d/ready"
exec env --default-signal "$@"'

# outer_exec runs this inside first: join PID 1s cgroup, as docker exec does.
OUTER_JOIN='g=
while IFS= read -r l; do case $l in 0::*) g=${l#0::} ;; esac; done < /proc/1/cgroup
{ echo 0 > "/sys/fs/cgroup${g%/}/cgroup.procs"; } 2>/dev/null
exec "$@"'

outer_start() {
	local name=${1:?outer_start: NAME}; shift
	local envs=() d cg i
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		case $1 in
		--env) envs+=("${2:?outer_start: --env K=V}"); shift 2 ;;
		*) echo "outer_start: unknown option $1" >&2; return 2 ;;
		esac
	done
	[ "${1:-}" = "--" ] && [ $# -ge 2 ] || { echo "outer_start: usage: NAME [--env K=V]... -- CMD..." >&2; return 2; }
	shift
	case $name in */*|.*) echo "outer_start: bad name '$name'" >&2; return 2 ;; esac
	[ -n "$OUTER_CG2" ] || { echo "outer_start: no cgroup2 mount on this host" >&2; return 1; }
	d=$OUTER_DIR/$name
	cg=$OUTER_CG2/cvm-test.$$.$name
	mkdir "$d" || { echo "outer_start: $name exists" >&2; return 1; }
	mkdir "$d/state"
	# Recorded before anything runs, so outer_cleanup finds even a half-started one.
	echo "$cg" > "$d/cgroup" && mkdir "$cg" || return 1
	outer_v1_groups "$name" > "$d/cgroup1" || return 1
	unshare --pid --mount --uts --ipc --net --propagation private -- \
		bash -c "$OUTER_PARENT" outer-parent "$cg" "$d" "$OUTER_SETUP" -- "${envs[@]}" "$@" \
		</dev/null >/dev/null 2>"$d/unshare.err" &
	echo $! > "$d/unshare.pid"
	for ((i = 0; i < 400; i++)); do
		[ -e "$d/ready" ] && return 0
		[ -e "$d/rc" ] && break
		# outer_cleanup ran meanwhile (an interrupted script): undo this one
		[ -d "$d" ] || { outer_kill_cgroup "$cg"; return 1; }
		sleep 0.025
	done
	echo "outer_start $name: PID 1 did not start (exit $(cat "$d/rc" 2>/dev/null || echo -)):" >&2
	cat "$d/unshare.err" "$d/err" >&2 2>/dev/null || :
	return 1
}

# outer_v1_groups NAME: make NAME's group in each v1 hierarchy, print them.
outer_v1_groups() {
	local p g f
	for p in $OUTER_V1; do
		g=$p/cvm-test.$$.$1
		echo "$g" >> "$OUTER_DIR/$1/cgroup1.made"
		mkdir "$g" || return 1
		# a new cpuset has no CPUs and no memory nodes until given its parent's
		for f in cpuset.cpus cpuset.mems; do
			[ ! -e "$p/$f" ] || cat "$p/$f" > "$g/$f" || return 1
		done
		echo "$g"
	done
}

outer_pid() { cat "$OUTER_DIR/$1/pid"; }

outer_running() { [ -s "$OUTER_DIR/$1/pid" ] && [ ! -e "$OUTER_DIR/$1/rc" ]; }

outer_exec() {
	local name=${1:?outer_exec: NAME} pid; shift
	outer_running "$name" || { echo "outer_exec: $name is not running" >&2; return 125; }
	pid=$(outer_pid "$name")
	if [ -x "/proc/$pid/root/bin/sh" ]; then
		nsenter -t "$pid" -p -m -C -u -i -n -r -w -- /bin/sh -c "$OUTER_JOIN" sh "$@"
	else   # a root without sh: still inside, just not in its cgroup
		nsenter -t "$pid" -p -m -C -u -i -n -r -w -- "$@"
	fi
}

outer_signal() {
	outer_running "$1" || { echo "outer_signal: $1 is not running" >&2; return 1; }
	kill -s "$2" "$(outer_pid "$1")"
}

outer_log() { cat "$OUTER_DIR/$1/out" "$OUTER_DIR/$1/err"; }

# outer_kill_cgroup DIR: kill all in the cgroup tree DIR, then remove it.
outer_kill_cgroup() {
	local cg=$1 i
	[ -d "$cg" ] || return 0
	{ echo 1 > "$cg/cgroup.kill"; } 2>/dev/null || :
	for ((i = 0; i < 100; i++)); do
		grep -q '^populated 0' "$cg/cgroup.events" 2>/dev/null && break
		sleep 0.05
	done
	# Deepest first: the container may have made cgroups of its own.
	find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || :
	[ ! -d "$cg" ] || { echo "outer: cannot remove $cg" >&2; return 1; }
}

# outer_reap NAME: end whatever is left of it and remove its cgroup tree.
outer_reap() {
	local d=$OUTER_DIR/$1 cg i pid
	[ -s "$d/cgroup" ] || return 0
	cg=$(cat "$d/cgroup")
	# Until its parent has recorded PID 1's end, keep killing: PID 1 may join
	# the cgroup only now. PID 1's death takes its whole pid ns with it.
	for ((i = 0; i < 200; i++)); do
		[ -e "$d/rc" ] && break
		{ echo 1 > "$cg/cgroup.kill"; } 2>/dev/null || :
		pid=$(cat "$d/pid" 2>/dev/null) || :
		[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || :
		sleep 0.05
	done
	[ -e "$d/rc" ] || echo "outer: $1 did not end" >&2
	outer_kill_cgroup "$cg"
	outer_remove_v1 "$d"
}

# outer_remove_v1 DIR: remove the container's v1 groups (its processes are
# gone with its cgroup2 group), and what was made below them.
outer_remove_v1() {
	local g i
	[ -s "$1/cgroup1.made" ] || return 0
	while IFS= read -r g; do
		for ((i = 0; i < 100; i++)); do
			[ -d "$g" ] || break
			find "$g" -depth -type d -exec rmdir {} + 2>/dev/null || :
			[ -d "$g" ] && sleep 0.05
		done
		[ ! -d "$g" ] || echo "outer: cannot remove $g" >&2
	done < "$1/cgroup1.made"
	: > "$1/cgroup1.made"
}

outer_wait() {
	local d=$OUTER_DIR/${1:?outer_wait: NAME} limit=$(( ${2:-30} * 20 )) i
	[ -d "$d" ] || { echo "outer_wait: no container $1" >&2; return 125; }
	for ((i = 0; ; i++)); do
		[ -e "$d/rc" ] && break
		[ "$i" -lt "$limit" ] || return 124
		sleep 0.05
	done
	outer_reap "$1" || true
	return "$(cat "$d/rc")"
}

outer_cleanup() {
	local d
	[ -d "$OUTER_DIR" ] || return 0
	for d in "$OUTER_DIR"/*/; do
		if [ -e "$d/cgroup" ]; then outer_reap "$(basename "$d")" || :; fi
	done
	rm -rf "$OUTER_DIR"
}

# Chain: ours first (containers may use the script's files), then the old one.
# A second TERM or ^C must not cut the cleanup short.
eval "OUTER_PREV_EXIT_TRAP=( $(trap -p EXIT) )"
OUTER_PREV_EXIT_TRAP=${OUTER_PREV_EXIT_TRAP[2]-}
trap 'trap "" INT TERM HUP; outer_cleanup; eval "$OUTER_PREV_EXIT_TRAP"' EXIT

# The busybox rootfs plus the static probe, built once per (this recipe,
# scripts/rootfs, busybox, probe) and shared read-only: cvm never writes to
# an image.
outer_rootfs() {
	local build=${1:?outer_rootfs: BUILD_DIR} src key cache dir tmp
	src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	key=$( { echo recipe-2; cat "$src/scripts/rootfs" /bin/busybox "$build/tests/probe/probe"; } |
		sha256sum | cut -c1-16) || return 1
	cache=${CVM_TEST_CACHE:-/var/cache/cvm-test}
	dir=$cache/rootfs-$key
	if [ ! -x "$dir/usr/bin/probe" ]; then
		mkdir -p "$cache" || return 1
		tmp=$(mktemp -d "$cache/.build.XXXXXX") || return 1
		"$src/scripts/rootfs" "$tmp/r" >/dev/null && mkdir -p "$tmp/r/usr/bin" &&
			cp "$build/tests/probe/probe" "$tmp/r/usr/bin/probe" &&
			chmod 755 "$tmp/r" || { rm -rf "$tmp"; return 1; }
		# rename is atomic: a parallel run sees all of it or none; the loser
		# finds the winner's copy in place.
		mv -T "$tmp/r" "$dir" 2>/dev/null || [ -x "$dir/usr/bin/probe" ] || { rm -rf "$tmp"; return 1; }
		rm -rf "$tmp"
	fi
	echo "$dir"
}
