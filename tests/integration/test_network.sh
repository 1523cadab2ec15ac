#!/bin/bash
# The private network (runtime/net.c), black-box. Each outer container has a
# network namespace of its own (outer.sh); here it also gets a veth to a
# "far" namespace that stands for the rest of the world:
#
#   workspace 10.255.255.254/30 eth0 == cvm0 10.255.255.253  outer container
#   outer eth0 198.51.100.1/24 (MTU 1400, default route) == far 198.51.100.2
#
# The far side has no route back to the workspace's network, so an answer
# from it proves the outer side's masquerade. Nothing touches the machine's
# own network namespace.
# usage: test_network.sh BUILD_DIR
. "$(dirname "$0")/workspace.sh" "$1"
. "$(dirname "$0")/networld.sh"

# start NAME [cvm run args]: a busybox workspace in the test network
start() { world_start "$1" 10 --rootfs "$ROOTFS" --state "$PWD/state" "${@:2}" -- sleep 1000; }

t_interface_route_dns_hosts() {
	start net1 || return 1
	ws_exec net1 -- sh -c 'cat /sys/class/net/eth0/mtu; ip -4 addr show eth0; ip route
		ip link show lo; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hosts' > out || return 1
	grep -q 'inet 10.255.255.254/30 ' out || { say "no address:"; cat out >&2; return 1; }
	grep -q '^default via 10.255.255.253 dev eth0' out || { say "no default route:"; cat out >&2; return 1; }
	expect_eq "MTU (the outer default route's)" "$(sed -n 1p out)" 1400 || return 1
	grep -q 'lo:.*UP' out || { say "lo is down"; return 1; }
	# resolv.conf: the outer container's, as it is
	expect_eq "resolv.conf" "$(sed -n '/^---$/,/^---$/p' out | sed '1d;$d')" "$(cat resolv.conf)" || return 1
	grep -q '^10.255.255.253[[:space:]].*host.docker.internal' out || { say "hosts:"; cat out >&2; return 1; }
	grep -q '^10.255.255.254[[:space:]]cvm$' out || { say "no hostname in hosts"; return 1; }
	NS_IN_OUTER net1 ip -o link show cvm0 | grep -q ' mtu 1400 ' || { say "outer MTU differs"; return 1; }
}

t_outer_side_and_nat() {
	start net2 || return 1
	ws_exec net2 -- wget -qO- http://host.docker.internal:8081/f > out 2>&1 || { say "outer: $(cat out)"; return 1; }
	expect_eq "from the outer side" "$(cat out)" outer-side || return 1
	# 198.51.100.2 knows no way back to 10.255.255.252/30: only NAT answers.
	ws_exec net2 -- wget -qO- http://198.51.100.2:8080/f > out 2>&1 || { say "far: $(cat out)"; return 1; }
	expect_eq "from the far side" "$(cat out)" far-side || return 1
	NS_IN_OUTER net2 nft list table ip cvm > nft || return 1
	grep -q 'ip saddr 10.255.255.252/30 oifname != "cvm0" masquerade' nft || { say "rule:"; cat nft >&2; return 1; }
	expect_eq "outer ip_forward" "$(NS_IN_OUTER net2 cat /proc/sys/net/ipv4/ip_forward)" 1
}

# An outer resolver on loopback (Docker's 127.0.0.11) is out of the
# workspace's reach: cvm relays from the outer end of the veth.
t_dns_relay_for_loopback_resolver() {
	printf 'nameserver 127.0.0.11\nnameserver 127.0.0.53\noptions ndots:0\n' > resolv.conf
	start net8 || return 1
	bg nsenter -t "$(outer_pid net8)" -n python3 -c "$DNS_SERVER" 127.0.0.11
	ws_exec net8 -- cat /etc/resolv.conf > out
	expect_eq "resolv.conf" "$(cat out)" "$(printf 'nameserver 10.255.255.253\noptions ndots:0')" || return 1
	for _ in $(seq 50); do
		ws_exec net8 -- nslookup far.test > out 2>&1 && break; sleep 0.1
	done
	grep -q 'Address.*198.51.100.2' out || { say "$(cat out)"; outer_log net8 | tail -3 >&2; return 1; }
	# only the workspace's network may use the relay: the far side may not
	! nsenter -t "$FAR" -n sh -c 'ip route add 10.255.255.252/30 via 198.51.100.1 &&
		timeout 3 busybox nslookup far.test 10.255.255.253' > out 2>&1 ||
		{ say "the relay answered the far side: $(cat out)"; return 1; }
}

# Root inside may send from any address; the outer side forwards only the
# workspace's own. The far side is given routes back to the spoofed address,
# so without the drop the connection would work.
t_spoofed_source_dropped() {
	start net7 || return 1
	nsenter -t "$FAR" -n ip route add 192.0.2.9 via 198.51.100.1 || return 1
	NS_IN_OUTER net7 ip route add 192.0.2.9 via 10.255.255.254 || return 1
	NS_IN_OUTER net7 nft list chain ip cvm prerouting > nft || return 1
	grep -q 'iifname "cvm0" ip saddr != 10.255.255.252/30 drop' nft || { say "rule:"; cat nft >&2; return 1; }
	# the route's preferred source makes wget send from 192.0.2.9
	ws_exec net7 -- sh -c 'ip addr add 192.0.2.9/32 dev eth0 &&
		ip route add 198.51.100.2 via 10.255.255.253 dev eth0 src 192.0.2.9 &&
		timeout 3 wget -qO- http://198.51.100.2:8080/f; echo rc=$?' > out 2>&1
	! grep -q far-side out || { say "the spoofed source got through"; return 1; }
	grep -q 'rc=[1-9]' out || { say "$(cat out)"; return 1; }
	ws_exec net7 -- sh -c 'ip route del 198.51.100.2 && wget -qO- http://198.51.100.2:8080/f' > out 2>&1
	grep -q far-side out || { say "control without spoofing failed: $(cat out)"; return 1; }
}

# Root inside owns its network namespace: bridges, veths, net sysctls.
t_root_inside_makes_links() {
	start net3 || return 1
	ws_exec net3 -- sh -c 'ip link add br0 type bridge && ip link set br0 up &&
		ip link add vx type veth && ip link set vx master br0 &&
		echo 1 > /proc/sys/net/ipv4/ip_forward && cat /proc/sys/net/ipv4/ip_forward &&
		ls /sys/class/net/br0/brif' > out 2>&1 || { say "$(cat out)"; return 1; }
	grep -q '^1$' out && grep -q 'vx' out || { say "$(cat out)"; return 1; }
	# ...which is not the outer one: the outer namespace has no br0
	! NS_IN_OUTER net3 ip link show br0 >/dev/null 2>&1 || { say "br0 outside"; return 1; }
	# the rest of /proc/sys stays read-only
	! ws_exec net3 -- sh -c 'echo 1 > /proc/sys/kernel/panic' 2>/dev/null || { say "/proc/sys/kernel writable"; return 1; }
}

# Stop removes the table and the veth; ip_forward goes back. A helper that
# keeps the outer namespace alive after cvm (PID 1) is gone shows it.
t_stop_removes_everything() {
	start net4 || return 1
	local holder
	nsenter -t "$(outer_pid net4)" -n sleep 600 & holder=$!; PIDS+=($holder)
	sleep 0.1
	outer_signal net4 TERM && outer_wait net4 30 || :
	outer_running net4 && { say "cvm did not stop"; return 1; }
	nsenter -t "$holder" -n nft list tables > tables || return 1
	! grep -q 'table ip cvm' tables || { say "table left: $(cat tables)"; return 1; }
	! nsenter -t "$holder" -n ip link show cvm0 >/dev/null 2>&1 || { say "cvm0 left"; return 1; }
	expect_eq "ip_forward restored" "$(nsenter -t "$holder" -n cat /proc/sys/net/ipv4/ip_forward)" 0
}

t_network_host_shares_outer() {
	start net5 --network host || return 1
	ws_exec net5 -- sh -c 'ip -4 addr; ls /sys/class/net' > out || return 1
	grep -q 'inet 198.51.100.1/24' out || { say "not the outer network:"; cat out >&2; return 1; }
	! grep -q 'cvm0' out && ! NS_IN_OUTER net5 nft list table ip cvm >/dev/null 2>&1 ||
		{ say "private network made anyway"; return 1; }
}

t_custom_cidr() {
	start net6 --network-cidr 192.168.77.0/29 || return 1
	ws_exec net6 -- sh -c 'ip -4 addr show eth0; ip route' > out || return 1
	grep -q 'inet 192.168.77.2/29' out && grep -q '^default via 192.168.77.1' out ||
		{ say "$(cat out)"; return 1; }
	ws_exec net6 -- wget -qO- http://198.51.100.2:8080/f > out 2>&1 && expect_eq "NAT" "$(cat out)" far-side
}

# Without CAP_NET_ADMIN: nothing starts, and the message says what to do.
t_no_net_admin_says_why() {
	outer_start np -- setpriv --bounding-set -net_admin -- \
		"$CVM" run --rootfs "$ROOTFS" --state "$PWD/state" -- true || return 1
	local rc=0; outer_wait np 20 || rc=$?
	expect_eq "exit" "$rc" 125 || return 1
	grep -q "needs CAP_NET_ADMIN .*network = host" "$OUTER_DIR/np/err" || { outer_log np >&2; return 1; }
}

run_test "without CAP_NET_ADMIN: exit 125, saying why" t_no_net_admin_says_why
run_test "interface, address, MTU, route, lo, resolv.conf, hosts" with_helpers t_interface_route_dns_hosts
run_test "the outer side by name; NAT to a far network" with_helpers t_outer_side_and_nat
run_test "DNS relay for an outer resolver on loopback" with_helpers t_dns_relay_for_loopback_resolver
run_test "a spoofed source is dropped at cvm0" with_helpers t_spoofed_source_dropped
run_test "root inside makes bridges, veths, writes net sysctls" with_helpers t_root_inside_makes_links
run_test "stop removes the nft table and the veth" with_helpers t_stop_removes_everything
run_test "network = host shares the outer network" with_helpers t_network_host_shares_outer
run_test "network_cidr is honoured" with_helpers t_custom_cidr
stop_helpers
finish
