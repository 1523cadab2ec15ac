# The outer-container harness: what `docker run --privileged` gives cvm,
# made from unshare. Source it after lib.sh; it cleans up on EXIT (a test
# script that needs its own EXIT trap calls outer_cleanup from it).
#
#   outer_start NAME [--env K=V ...] -- CMD...   CMD becomes PID 1 of a new pid,
#       mount and cgroup namespace, with a fresh /proc, its own cgroup2 subtree
#       at /sys/fs/cgroup and a tmpfs /run; stdout/stderr in $OUTER_DIR/NAME/{out,err}
#   outer_exec NAME CMD...      run CMD inside it, like docker exec
#   outer_wait NAME [SECONDS]   wait for PID 1 (default 30 s); returns its exit
#       status, 124 on timeout; removes the container's cgroup when it is over
#   outer_signal NAME SIG       signal PID 1, like docker stop/kill
#   outer_log NAME              print its stdout and stderr
#   outer_rootfs BUILD_DIR      print the cached busybox rootfs with /usr/bin/probe
#   outer_cleanup               kill and remove everything (runs on EXIT)

OUTER_DIR=$(mktemp -d /tmp/cvm-outer.XXXXXX)
OUTER_CGROUPS=""
# Wherever the host mounts cgroup2 (/sys/fs/cgroup, or .../unified on hybrid hosts).
OUTER_CG2=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)

# Runs as the outer container's first process, before CMD replaces it.
OUTER_SETUP='mount -t proc proc /proc && mount -t cgroup2 cgroup2 /sys/fs/cgroup &&
mount -t tmpfs -o mode=0755 tmpfs /run && exec "$@"'

outer_start() {
	local name=$1 d cg; shift
	local envs=()
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		[ "$1" = "--env" ] && { envs+=("$2"); shift 2; continue; }
		echo "outer_start: unknown option $1" >&2; return 2
	done
	shift
	[ -n "$OUTER_CG2" ] || { echo "outer_start: no cgroup2 mount on this host" >&2; return 1; }
	d=$OUTER_DIR/$name
	cg=$OUTER_CG2/cvm-test.$$.$name
	mkdir -p "$d" && mkdir "$cg" || return 1
	OUTER_CGROUPS="$OUTER_CGROUPS $cg"
	echo "$cg" > "$d/cgroup"
	(
		# Into the subtree first: the new cgroup namespace is rooted where we stand.
		echo "$BASHPID" > "$cg/cgroup.procs"
		env "${envs[@]}" unshare --pid --mount --cgroup --fork --propagation private \
			sh -c "$OUTER_SETUP" sh "$@" > "$d/out" 2> "$d/err" < /dev/null
		echo $? > "$d/rc"
	) &
	local wrapper=$! unshare_pid="" pid1="" i
	for i in $(seq 200); do
		unshare_pid=${unshare_pid:-$(cat /proc/$wrapper/task/*/children 2>/dev/null | awk '{print $1}')}
		[ -n "$unshare_pid" ] && pid1=$(cat /proc/"$unshare_pid"/task/*/children 2>/dev/null | awk '{print $1}')
		if [ -n "$pid1" ] && [ "$(readlink /proc/"$pid1"/ns/pid)" != "$(readlink /proc/self/ns/pid)" ]; then
			echo "$pid1" > "$d/pid"
			return 0
		fi
		[ -e "$d/rc" ] && { echo "$pid1" > "$d/pid"; return 0; }   # over already
		sleep 0.02
	done
	echo "outer_start $name: PID 1 did not appear" >&2
	return 1
}

outer_pid() { cat "$OUTER_DIR/$1/pid"; }

outer_exec() {
	local name=$1; shift
	nsenter -t "$(outer_pid "$name")" -p -m -C -- "$@"
}

outer_signal() { kill -s "$2" "$(outer_pid "$1")"; }

outer_log() { cat "$OUTER_DIR/$1/out" "$OUTER_DIR/$1/err"; }

# outer_kill_cgroup DIR: end every process in DIR (and below) and remove it.
outer_kill_cgroup() {
	local cg=$1 i
	[ -d "$cg" ] || return 0
	echo 1 > "$cg/cgroup.kill" 2>/dev/null
	for i in $(seq 100); do
		grep -q 'populated 0' "$cg/cgroup.events" 2>/dev/null && break
		sleep 0.05
	done
	# Children first: cvm may have made its own groups below ours.
	find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
	[ ! -d "$cg" ]
}

outer_wait() {
	local d=$OUTER_DIR/$1 limit=$(( ${2:-30} * 20 )) i=0
	while [ ! -e "$d/rc" ]; do
		[ $i -ge "$limit" ] && return 124
		sleep 0.05; i=$((i + 1))
	done
	outer_kill_cgroup "$(cat "$d/cgroup")"
	return "$(cat "$d/rc")"
}

outer_cleanup() {
	local cg
	for cg in $OUTER_CGROUPS; do outer_kill_cgroup "$cg"; done
	wait 2>/dev/null
	rm -rf "$OUTER_DIR"
}
trap outer_cleanup EXIT

# The busybox rootfs plus the static probe, built once per (scripts/rootfs,
# probe) and shared read-only: cvm never writes to an image.
outer_rootfs() {
	local build=$1 src key cache dir tmp
	src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	key=$(cat "$src/scripts/rootfs" "$build/tests/probe/probe" /bin/busybox | sha256sum | cut -c1-16)
	cache=${CVM_TEST_CACHE:-/var/cache/cvm-test}
	dir=$cache/rootfs-$key
	if [ ! -x "$dir/usr/bin/probe" ]; then
		mkdir -p "$cache" || return 1
		tmp=$(mktemp -d "$cache/.build.XXXXXX") || return 1
		"$src/scripts/rootfs" "$tmp/r" >/dev/null && mkdir -p "$tmp/r/usr/bin" &&
			cp "$build/tests/probe/probe" "$tmp/r/usr/bin/probe" &&
			chmod 755 "$tmp/r" || { rm -rf "$tmp"; return 1; }
		# rename is atomic: a parallel run sees all of it or none.
		mv -T "$tmp/r" "$dir" 2>/dev/null || [ -x "$dir/usr/bin/probe" ] || { rm -rf "$tmp"; return 1; }
		rm -rf "$tmp"
	fi
	echo "$dir"
}
