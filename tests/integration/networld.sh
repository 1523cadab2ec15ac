# The test network for workspaces with a private network: source it after
# workspace.sh. world NAME gives outer container NAME a veth to a "far"
# network namespace that stands for the rest of the world:
#
#   workspace 10.255.255.254/30 eth0 == cvm0 10.255.255.253  outer container
#   outer eth0 198.51.100.1/24 (MTU 1400, default route) == far 198.51.100.2
#
# with an HTTP server in the far namespace (port 8080, file f: "far-side")
# and one in the outer container's (port 8081, "outer-side"). The far side
# has no route back to the workspace's network: an answer from it proves the
# outer side's masquerade. The outer container gets ./resolv.conf as its
# /etc/resolv.conf (made with a nameserver on the far side if the test has
# none). Nothing touches the machine's own namespace.

PIDS=()
# bg CMD...: start a helper whose end this script owns (killed at exit)
bg() { "$@" >/dev/null 2>&1 & PIDS+=($!); }
stop_helpers() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; PIDS=(); }
trap 'stop_helpers; outer_cleanup' EXIT
# Each test runs in a subshell (run_test): its helpers end with it.
with_helpers() { local rc=0; "$@" || rc=$?; stop_helpers; return $rc; }

NS_IN_OUTER() { nsenter -t "$(outer_pid "$1")" -n -- "${@:2}"; }

# world NAME: build it in the current directory (www-far, www-outer).
# Sets FAR to the pid holding the far namespace.
world() {
	local name=$1 opid
	opid=$(outer_pid "$name")
	mkdir -p www-far www-outer
	echo far-side > www-far/f; echo outer-side > www-outer/f
	unshare --net sleep 600 & FAR=$!; PIDS+=($FAR)
	sleep 0.1
	nsenter -t "$FAR" -n ip link add eth0 type veth peer name eth0 netns "$opid" || return 1
	nsenter -t "$FAR" -n sh -c 'ip link set lo up && ip addr add 198.51.100.2/24 dev eth0 &&
		ip link set eth0 up' || return 1
	NS_IN_OUTER "$name" sh -c 'ip link set eth0 mtu 1400 && ip addr add 198.51.100.1/24 dev eth0 &&
		ip link set eth0 up && ip route add default via 198.51.100.2' || return 1
	[ -e resolv.conf ] || printf 'search test.example\nnameserver 198.51.100.53\noptions ndots:2\n' > resolv.conf
	outer_exec "$name" mount --bind "$PWD/resolv.conf" /etc/resolv.conf || return 1
	bg nsenter -t "$FAR" -n busybox httpd -f -p 8080 -h "$PWD/www-far"
	bg nsenter -t "$opid" -n busybox httpd -f -p 8081 -h "$PWD/www-outer"
}


# world_start NAME SECONDS CVM-RUN-ARGS...: an outer container with the
# world, then cvm in it (the world must exist first: cvm takes the MTU of
# the outer default route at start); returns once `cvm exec` reaches it, or
# fails after SECONDS.
world_start() {
	local name=$1 secs=$2; shift 2
	outer_start "$name" -- sh -c 'while [ ! -e /run/go ]; do sleep 0.05; done
		exec "$@"' sh "$CVM" run "$@" || return 1
	world "$name" || { say "cannot build the test network"; return 1; }
	outer_exec "$name" touch /run/go
	for _ in $(seq $((secs * 20))); do
		outer_exec "$name" test -S /run/cvm/control.sock 2>/dev/null && return 0
		sleep 0.05
	done
	say "workspace did not come up:"; outer_log "$name" >&2; return 1
}

# A DNS server for tests: every A query gets 198.51.100.2, anything else an
# empty answer. usage: python3 -c "$DNS_SERVER" ADDR
DNS_SERVER='
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    q, peer = s.recvfrom(4096)
    i = 12
    while q[i]:
        i += q[i] + 1
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
    question = q[12:i + 5]
    a = b"" if qtype != 1 else struct.pack(">HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton("198.51.100.2")
    s.sendto(q[:2] + struct.pack(">HHHHH", 0x8180, 1, 1 if a else 0, 0, 0) + question + a, peer)
'
