# The engine suite (tests/vm/run BUILD engine): a real Docker Engine,
# containerd and podman as the outer container. Run by /init (busybox sh)
# as /payload/guest.sh: it binds the VM's /proc, /sys, /dev into the
# Debian root on /disk (tests/vm/engine-image) and runs the rest of this
# file there with bash, where it starts containerd and dockerd by hand (no
# systemd), builds the project's Dockerfile offline and runs the tests, one
# "ok"/"not ok" line each and a "N passed, N failed" at the end.
#
# The VM has no NIC and the static musl cvm built on Debian has no private
# network, so dockerd runs without a bridge or iptables, the outer
# containers with --network host and cvm with network = host. The
# private_network tests run the glibc cvm of BUILD instead (its image's
# outer base: the shared libraries it loads) with cvm's default network =
# private: in an outer container with a network namespace of its own
# (--network none: only lo) and in the VM's own (--network host).
if [ -z "${CVM_ENGINE_STAGE2:-}" ]; then
	# pivot_root, not a bare chroot: a process whose root is not its mount
	# namespace's root may not make user namespaces (clone3 gives EPERM),
	# and runc's pivot_root inside a container keeps a chroot a chroot.
	R=/disk
	# the private network's modules, from the initramfs (the Debian root
	# has none for this kernel)
	for m in $(cat /payload/net-modules); do modprobe "$m" || echo "engine: modprobe $m failed"; done
	mount -t proc proc $R/proc && mount --rbind /sys $R/sys && mount --rbind /dev $R/dev &&
		mkdir -p $R/dev/pts $R/dev/shm && mount -t devpts -o ptmxmode=0666 devpts $R/dev/pts &&
		mount -t tmpfs -o mode=1777 shm $R/dev/shm &&
		mount -t tmpfs -o mode=0755 tmpfs $R/run && mount -t tmpfs -o mode=1777 tmpfs $R/tmp &&
		{ [ ! -b /dev/vdb ] || { mkdir -p $R/srv/debian && mount -t ext4 -o ro /dev/vdb $R/srv/debian; }; } &&
		mkdir -p $R/tmp/payload $R/.vmroot && cp -a /payload/. $R/tmp/payload/ &&
		cd $R && pivot_root . .vmroot ||
		{ echo "engine: cannot pivot into the Debian root"; echo "0 passed, 1 failed"; exit 1; }
	chroot . /usr/bin/env -i CVM_ENGINE_STAGE2=1 PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		TERM=dumb CVM_VM_TESTS="$CVM_VM_TESTS" /bin/bash /tmp/payload/guest.sh
	# /init's poweroff is in the old root now
	echo "VMTEST exit $? (up $(cut -d' ' -f1 /proc/uptime)s)"
	exec /.vmroot/bin/busybox poweroff -f
fi

# ---- stage 2: bash in the Debian root --------------------------------------
P=/tmp/payload
IMG=cvm:test
PASSED=0 FAILED=0 N=0
OUT=/tmp/out
uptime_s() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "    $*"; }
# quiet: the output without cvm's log lines and Docker's warnings
quiet() { grep -vE '^[0-9-]+T[0-9:.]+Z cvm\[|^WARNING: '; }
check() {   # check NAME: run t_NAME as one test, its notes in $OUT
	local t0; t0=$(uptime_s); : > "$OUT"
	if "t_$1" >> "$OUT" 2>&1; then PASSED=$((PASSED + 1)); echo "ok - $1 ($(since "$t0") s)"
	else FAILED=$((FAILED + 1)); echo "not ok - $1 ($(since "$t0") s)"; fi
	sed 's/^/      | /' "$OUT"
}
# skip NAME WHY: a visible skip (counts as neither)
skip() { echo "ok - $1 # SKIP $2"; }

# the cvm settings every outer container here gets (see the top)
CVM_ENV=(-e CVM_WORKSPACE_NETWORK=host)
# the workspace's init: a shell that ends with 0 on SIGTERM (cvm's stop)
LOOP='trap "exit 0" TERM; while :; do sleep 1 & wait; done'

now() { cut -d. -f1 /proc/uptime; }
# wait_for SECONDS CMD...: until CMD succeeds
wait_for() {
	local end=$(($(now) + $1)); shift
	until "$@" > /dev/null 2>&1; do [ "$(now)" -lt $end ] || return 1; sleep 0.25; done
}
# ready NAME: the workspace of docker container NAME answers cvm exec
# (given up at once when the container has stopped)
ready() {
	local end=$(($(now) + 120))
	until docker exec "$1" cvm exec -- true > /dev/null 2>&1; do
		if [ "$(docker inspect -f '{{.State.Running}}' "$1")" != true ] || [ "$(now)" -ge $end ]; then
			say "$1: no workspace"; docker logs "$1" 2>&1 | tail -15 | sed 's/^/    /'; return 1
		fi
		sleep 0.5
	done
}
vol() { docker volume inspect -f '{{.Mountpoint}}' "$1"; }

start_engines() {
	local t0; t0=$(uptime_s)
	containerd > /tmp/containerd.log 2>&1 &
	wait_for 60 ctr version || { echo "engine: containerd did not start"; tail /tmp/containerd.log; return 1; }
	# --init-path: Debian ships tini as /usr/bin/tini-static, not docker-init
	dockerd --containerd /run/containerd/containerd.sock --bridge none --iptables=false \
		--ip6tables=false --ip-forward=false --ip-masq=false --storage-driver overlay2 \
		--init-path /usr/bin/tini-static > /tmp/dockerd.log 2>&1 &
	wait_for 120 docker info || { echo "engine: dockerd did not start"; tail /tmp/dockerd.log; return 1; }
	echo "engine: containerd and dockerd up in $(since "$t0") s ($(docker version -f '{{.Server.Version}}'))"
}

# The project's Dockerfile, offline: the workspace image is the busybox
# rootfs (docker import), cvm the static musl one, the outer base scratch.
t_dockerfile_builds_offline() {
	mkdir -p /tmp/ctx && cp "$P/Dockerfile" "$P/cvm" /tmp/ctx/ && chmod 755 /tmp/ctx/cvm
	docker import "$P/ws.tar" cvm-test-ws:1 > /dev/null || return 1
	DOCKER_BUILDKIT=1 docker build -q --build-arg CVM_BUILD=prebuilt --build-arg OUTER_BASE=scratch \
		--build-arg WORKSPACE_IMAGE=cvm-test-ws:1 -t "$IMG" /tmp/ctx > /tmp/build.log 2>&1 ||
		{ tail -20 /tmp/build.log; return 1; }
	docker run --rm --entrypoint /usr/local/bin/cvm "$IMG" --version || return 1
	[ "$(docker inspect -f '{{json .Config.Entrypoint}} {{.Config.StopSignal}}' "$IMG")" = \
		'["/usr/local/bin/cvm"] SIGTERM' ] || { say "entrypoint/stop signal wrong"; return 1; }
	docker save -o /tmp/cvm.tar "$IMG"
}

# docker run --privileged -d, the state in a named volume
t_run_detached() {
	docker run -d --privileged --network host --name w1 -v st1:/var/lib/cvm/state "${CVM_ENV[@]}" \
		"$IMG" run -- sh -c "$LOOP" > /dev/null || return 1
	ready w1 || return 1
	id=$(docker exec w1 cvm exec -- id)
	say "cvm exec -- id: $id"
	[ "${id%% *}" = "uid=0(root)" ] || return 1
	docker logs w1 2>&1 | grep -q 'workspace ready in' || { say "no ready line in docker logs"; return 1; }
}

# docker stop: SIGTERM to cvm, a clean stop within cvm's grace, exit 0
t_stop_clean() {
	docker inspect w1 > /dev/null 2>&1 || { say "no w1"; return 1; }
	docker exec w1 cvm exec -- sh -c 'echo kept > /root/stop-file; sync' || return 1
	t1=$(uptime_s)
	docker stop -t 30 w1 > /dev/null || return 1
	took=$(since "$t1")
	rc=$(docker inspect -f '{{.State.ExitCode}}' w1)
	say "docker stop: exit $rc in $took s"
	docker logs w1 2>&1 | grep -q 'grace period' && { say "cvm's grace period ran out"; return 1; }
	# The overlay's work dir: only the empty work/ overlayfs keeps there.
	left=$(cd "$(vol st1)/work" && find . -mindepth 1 ! -path ./work ! -path ./index 2>&1)
	[ -z "$left" ] || { say "left in the work dir: $left"; return 1; }
	[ "$rc" = 0 ] && awk -v t="$took" 'BEGIN { exit !(t < 10) }'
}

# docker start after stop, docker restart, docker rm + run: the data is
# there, and nothing the last run left (its control socket in the
# container's /run, its cgroup) blocks the start
t_restart_and_recreate() {
	docker start w1 > /dev/null && ready w1 || return 1
	[ "$(docker exec w1 cvm exec -- cat /root/stop-file)" = kept ] || { say "lost after stop/start"; return 1; }
	docker exec w1 cvm exec -- sh -c 'echo two > /root/restart-file; sync' || return 1
	docker restart -t 30 w1 > /dev/null && ready w1 || { say "docker restart"; return 1; }
	[ "$(docker exec w1 cvm exec -- cat /root/restart-file)" = two ] || { say "lost after restart"; return 1; }
	docker stop -t 30 w1 > /dev/null && docker rm w1 > /dev/null || return 1
	docker run -d --privileged --network host --name w1 -v st1:/var/lib/cvm/state "${CVM_ENV[@]}" \
		"$IMG" run -- sh -c "$LOOP" > /dev/null && ready w1 || { say "rm + run"; return 1; }
	got=$(docker exec w1 cvm exec -- cat /root/stop-file /root/restart-file | tr '\n' ' ')
	say "after rm + run: $got"
	[ "$got" = "kept two " ]
}

# docker kill -s KILL: no grace at all; what was fsynced is there on the
# next start, and the overlay's leftovers do not block it
t_kill_then_start() {
	docker exec w1 cvm exec -- sh -c 'echo synced > /root/kill-file; sync' || return 1
	docker kill -s KILL w1 > /dev/null || return 1
	wait_for 30 sh -c '[ "$(docker inspect -f {{.State.Running}} w1)" = false ]' || return 1
	say "after kill: exit $(docker inspect -f '{{.State.ExitCode}}' w1)"
	docker start w1 > /dev/null && ready w1 || return 1
	[ "$(docker exec w1 cvm exec -- cat /root/kill-file)" = synced ] || { say "lost after kill"; return 1; }
	docker stop -t 30 w1 > /dev/null
	rc=$(docker inspect -f '{{.State.ExitCode}}' w1)
	docker rm w1 > /dev/null
	[ "$rc" = 0 ] || { say "stop after the restart: exit $rc"; return 1; }
}

# drive_tty CMD: run CMD under script(1), a pty as a person's terminal,
# fed through a fifo like expect: wait for a shell prompt, type a line that
# prints the tty and out-42, then exit. Ok when the prompt came, out-42
# came back and tty named a pty or the console. The screen's end is shown.
drive_tty() {
	local spid ok=0
	rm -f /tmp/tin /tmp/tout; mkfifo /tmp/tin
	script -qfec "$1" /dev/null < /tmp/tin > /tmp/tout 2>&1 &
	spid=$!
	exec 3> /tmp/tin
	# a prompt, or script's end (the container is gone: no use waiting)
	if wait_for 120 sh -c "grep -q '# ' /tmp/tout || ! kill -0 $spid" && grep -q '# ' /tmp/tout; then
		echo 'tty; echo "out-$((6 * 7))"' >&3
		wait_for 30 grep -q 'out-42' /tmp/tout && ok=1
		echo 'exit' >&3
	fi
	exec 3>&-
	wait_for 30 sh -c "! kill -0 $spid"
	kill "$spid" 2> /dev/null
	tr -d '\r' < /tmp/tout | tail -8 | sed 's/^/    /'
	[ $ok = 1 ] && tr -d '\r' < /tmp/tout | grep -qE '^/dev/(pts/[0-9]+|console)$'
}

# docker run -it: a shell with a terminal (Docker's pty)
t_interactive_terminal() {
	local rc=0
	drive_tty "docker run --rm -it --privileged --network host --name w2 -v st2:/var/lib/cvm/state \
		${CVM_ENV[*]} $IMG run -- sh -i" || rc=1
	docker rm -f w2 > /dev/null 2>&1
	return $rc
}

# docker exec -it <outer> cvm exec -t: a shell in a running workspace,
# through Docker's exec pty and then cvm's own
t_exec_it() {
	local rc=0
	docker run -d --privileged --network host --name w5 -v st5:/var/lib/cvm/state "${CVM_ENV[@]}" \
		"$IMG" run -- sh -c "$LOOP" > /dev/null || return 1
	ready w5 && drive_tty "docker exec -it w5 cvm exec -t -- sh -i" || rc=1
	docker rm -f w5 > /dev/null 2>&1
	return $rc
}

# docker run --memory --cpus: cvm's auto limits copy them; the workspace's
# /proc and sysinfo say so
t_memory_cpus_auto() {
	out=$(docker run --rm --privileged --network host --memory 512m --cpus 1.5 -v st3:/var/lib/cvm/state \
		"${CVM_ENV[@]}" "$IMG" run -- sh -c 'cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max
		free -m | awk "/^Mem:/ {print \"free\", \$2}"; echo "nproc $(nproc)"; head -1 /proc/meminfo' 2>&1)
	say "$(echo "$out" | quiet | tr '\n' '|')"
	echo "$out" | grep -qx 536870912 && echo "$out" | grep -qx '150000 100000' &&
		echo "$out" | grep -qx 'free 512' && echo "$out" | grep -qx 'nproc 2' &&
		echo "$out" | grep -qx 'MemTotal:         524288 kB'
}

# delegated INNER-CMD: what the workspace sees of its cgroup (a group of its
# own that it can write below), printed as one line
DELEG='echo "controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"; mkdir /sys/fs/cgroup/probe &&
	[ -f /sys/fs/cgroup/probe/cgroup.procs ] && echo delegated; rmdir /sys/fs/cgroup/probe'

# docker run --init (tini PID 1, cvm its child) and an entrypoint shell
# that does not exec: cvm still makes the delegated group
t_init_and_shell_entrypoint() {
	out=$(docker run --rm --privileged --network host --init --memory 256m -v st4:/var/lib/cvm/state \
		"${CVM_ENV[@]}" "$IMG" run -- sh -c "$DELEG; cat /sys/fs/cgroup/memory.max" 2>&1)
	say "--init: $(echo "$out" | quiet | tr '\n' '|')"
	echo "$out" | grep -q 'not the container.s PID 1' && { say "cvm refused the cgroup"; return 1; }
	echo "$out" | grep -qx delegated && echo "$out" | grep -qx 268435456 || return 1
	out=$(docker run --rm --privileged --network host --memory 256m -v st4:/var/lib/cvm/state \
		"${CVM_ENV[@]}" --entrypoint /var/lib/cvm/images/workspace/bin/sh "$IMG" \
		-c "/usr/local/bin/cvm run -- sh -c '$DELEG; cat /sys/fs/cgroup/memory.max'; echo cvm-exit \$?" 2>&1)
	say "sh entrypoint: $(echo "$out" | quiet | tr '\n' '|')"
	echo "$out" | grep -qx delegated && echo "$out" | grep -qx 268435456 && echo "$out" | grep -qx 'cvm-exit 0'
}

# systemd as the workspace's init under docker run --init (cvm not PID 1):
# the Debian image of scripts/debian-image (the second disk) bound in as the
# workspace image; it boots to "running" and docker stop is its clean
# shutdown. Without a delegated group systemd exits at once (status 255).
t_systemd_under_docker_init() {
	local img=/srv/debian/rootfs
	[ -d $img/usr/lib/systemd ] || { say "no Debian image at $img"; return 1; }
	docker run -d --privileged --network host --init --name sd --stop-timeout 90 \
		-v $img:/var/lib/cvm/images/debian:ro -e CVM_WORKSPACE_ROOTFS=/var/lib/cvm/images/debian \
		-v stsd:/var/lib/cvm/state "${CVM_ENV[@]}" "$IMG" run --stop-timeout 60s > /dev/null || return 1
	ready sd || return 1
	wait_for 300 docker exec sd cvm exec -- test -S /run/systemd/private
	st=$(docker exec sd cvm exec -- timeout 300 systemctl is-system-running --wait 2>&1)
	say "systemd: $st; init: $(docker exec sd cvm exec -- cat /proc/1/comm)," \
		"outer PID 1: $(cat /proc/"$(docker inspect -f '{{.State.Pid}}' sd)"/comm)"
	[ "$st" = running ] || docker exec sd cvm exec -- systemctl --failed --no-legend --plain | sed 's/^/    /'
	t1=$(uptime_s)
	docker stop sd > /dev/null
	rc=$(docker inspect -f '{{.State.ExitCode}}' sd)
	say "docker stop: exit $rc in $(since "$t1") s; $(docker logs sd 2>&1 | grep -E 'powered off|grace|cgroup' | tr '\n' '|')"
	docker rm sd > /dev/null
	[ "$st" = running ] && [ "$rc" = 0 ]
}

# containerd directly, as the kubelet drives it: ctr images import, ctr run
# --privileged, ctr task kill (SIGTERM)
t_containerd_ctr() {
	[ -f /tmp/cvm.tar ] || { say "no saved image"; return 1; }
	ctr images import /tmp/cvm.tar > /dev/null || return 1
	mkdir -p /var/tmp/ctr-state
	# ctr's spec has no /sys/fs/cgroup (the kubelet's CRI adds one): as CRI
	# does for a privileged container, a writable cgroup2
	ctr run --privileged --net-host --env CVM_WORKSPACE_NETWORK=host \
		--mount type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=rw:nosuid:nodev:noexec \
		--mount type=bind,src=/var/tmp/ctr-state,dst=/var/lib/cvm/state,options=rbind:rw \
		docker.io/library/$IMG c1 /usr/local/bin/cvm run -- sh -c "$DELEG; $LOOP" > /tmp/ctr.out 2>&1 &
	cpid=$!
	wait_for 120 ctr task exec --exec-id e1 c1 /usr/local/bin/cvm exec -- true ||
		{ say "no workspace"; tail -15 /tmp/ctr.out | sed 's/^/    /'; kill $cpid; return 1; }
	id=$(ctr task exec --exec-id e2 c1 /usr/local/bin/cvm exec -- id)
	say "cvm exec -- id: $id"
	ctr task kill c1
	wait $cpid; rc=$?
	ctr container rm c1 > /dev/null 2>&1
	say "ctr task kill: exit $rc; $(quiet < /tmp/ctr.out | tr '\n' '|')"
	[ "${id%% *}" = "uid=0(root)" ] && [ "$rc" = 0 ] && grep -qx delegated /tmp/ctr.out &&
		grep -q 'workspace ready in' /tmp/ctr.out
}

# podman run --privileged (Debian's podman, crun, cgroupfs: no systemd here)
t_podman() {
	PODMAN=(podman --cgroup-manager cgroupfs --events-backend file)
	ref=$("${PODMAN[@]}" load -q -i /tmp/cvm.tar | sed -n 's/^Loaded image[^:]*: *//p' | head -1)
	[ -n "$ref" ] || { say "podman load gave no image"; return 1; }
	out=$("${PODMAN[@]}" run --rm --privileged --network host -v pst:/var/lib/cvm/state "${CVM_ENV[@]}" \
		"$ref" run -- sh -c "id; $DELEG" 2>&1); rc=$?
	say "podman run: exit $rc, $(echo "$out" | quiet | tr '\n' '|')"
	[ $rc = 0 ] && echo "$out" | grep -q '^uid=0(root)' && echo "$out" | grep -qx delegated
}

# ---- the private network ---------------------------------------------------
NIMG=cvm:net
NET_IN=10.255.255.254 NET_OUT=10.255.255.253   # network_cidr's default, 10.255.255.252/30

# The glibc cvm's image: the same Dockerfile, prebuilt, its outer base an
# image of the shared libraries that cvm loads (docker import), not scratch.
net_image() {
	docker image inspect "$NIMG" > /dev/null 2>&1 && return 0
	docker image inspect cvm-test-ws:1 > /dev/null 2>&1 || docker import "$P/ws.tar" cvm-test-ws:1 > /dev/null
	tar -C "$P/glibc/libs" -cf /tmp/libs.tar . && docker import /tmp/libs.tar cvm-test-libs:1 > /dev/null || return 1
	mkdir -p /tmp/ctx-net && cp "$P/Dockerfile" /tmp/ctx-net/ && install -m 755 "$P/glibc/cvm" /tmp/ctx-net/cvm
	DOCKER_BUILDKIT=1 docker build -q --build-arg CVM_BUILD=prebuilt --build-arg OUTER_BASE=cvm-test-libs:1 \
		--build-arg WORKSPACE_IMAGE=cvm-test-ws:1 -t "$NIMG" /tmp/ctx-net > /tmp/build-net.log 2>&1 ||
		{ tail -20 /tmp/build-net.log; return 1; }
}

# in_outer NAME CMD...: CMD in the network namespace of docker container NAME
in_outer() { nsenter -t "$(docker inspect -f '{{.State.Pid}}' "$1")" -n "${@:2}"; }

# net_state NAME: the workspace of NAME has eth0 with the second address and
# a default route via cvm0, reaches cvm0; the outer namespace has exactly
# one cvm0 (with the first address) and cvm's table with its two rules
net_state() {
	local in route links tbl
	in=$(docker exec "$1" cvm exec -- ip -4 -o addr show dev eth0 2>&1)
	route=$(docker exec "$1" cvm exec -- ip route show default 2>&1)
	say "$1 inside: eth0 $(echo "$in" | awk '$3 == "inet" {print $4; exit}'), $(echo "$route" | head -1)"
	echo "$in" | grep -q "inet $NET_IN/30" || { say "no $NET_IN/30 on eth0"; return 1; }
	echo "$route" | grep -q "^default via $NET_OUT dev eth0" || { say "no default route via $NET_OUT"; return 1; }
	docker exec "$1" cvm exec -- ping -c 1 -W 5 "$NET_OUT" > /dev/null || { say "cvm0 unreachable"; return 1; }
	links=$(in_outer "$1" ip -o link show | grep -c ': cvm0@')
	in_outer "$1" ip -4 -o addr show dev cvm0 | grep -q "inet $NET_OUT/30" || { say "cvm0 has no $NET_OUT/30"; return 1; }
	tbl=$(in_outer "$1" nft list tables | grep -cx 'table ip cvm')
	say "$1 outside: $links cvm0, $tbl table ip cvm, ip_forward $(in_outer "$1" cat /proc/sys/net/ipv4/ip_forward)"
	[ "$links" = 1 ] && [ "$tbl" = 1 ] || return 1
	in_outer "$1" nft list table ip cvm > /tmp/nft.out || return 1
	grep -q "ip saddr 10.255.255.252/30 oifname != \"cvm0\" masquerade" /tmp/nft.out &&
		grep -q "iifname \"cvm0\" ip saddr != 10.255.255.252/30 drop" /tmp/nft.out ||
		{ say "rules:"; sed 's/^/      /' /tmp/nft.out; return 1; }
}

# --network none: the outer container's own network namespace
NRUN=(docker run -d --privileged --network none --name n1 -v stn:/var/lib/cvm/state "$NIMG" run -- sh -c "$LOOP")

t_private_network() {
	net_image || return 1
	"${NRUN[@]}" > /dev/null || return 1
	ready n1 && net_state n1 || return 1
	say "resolv.conf inside: $(docker exec n1 cvm exec -- cat /etc/resolv.conf | tr '\n' '|')"
}

# file FILE WORD: the workspace of n1 still has FILE with WORD
has_file() {
	local got; got=$(docker exec n1 cvm exec -- cat "$1" 2>&1)
	[ "$got" = "$2" ] || { say "$1: '$got', not '$2'"; return 1; }
}

# docker restart, kill -s KILL + start, rm -f + run with the same volume:
# the file is there and the network comes up each time
t_private_network_restart() {
	docker inspect n1 > /dev/null 2>&1 || { say "no n1"; return 1; }
	docker exec n1 cvm exec -- sh -c 'echo net > /root/net-file; sync' || return 1
	docker restart -t 30 n1 > /dev/null && ready n1 || { say "docker restart"; return 1; }
	net_state n1 && has_file /root/net-file net || return 1
	docker kill -s KILL n1 > /dev/null || return 1
	wait_for 30 sh -c '[ "$(docker inspect -f {{.State.Running}} n1)" = false ]' || return 1
	docker start n1 > /dev/null && ready n1 || { say "start after kill"; return 1; }
	net_state n1 && has_file /root/net-file net || return 1
	docker rm -f n1 > /dev/null && "${NRUN[@]}" > /dev/null && ready n1 || { say "rm -f + run"; return 1; }
	net_state n1 && has_file /root/net-file net
}

# docker stop: exit 0, in cvm's grace
t_private_network_stop() {
	docker inspect n1 > /dev/null 2>&1 || { say "no n1"; return 1; }
	t1=$(uptime_s)
	docker stop -t 30 n1 > /dev/null || return 1
	took=$(since "$t1") rc=$(docker inspect -f '{{.State.ExitCode}}' n1)
	say "docker stop: exit $rc in $took s"
	docker rm n1 > /dev/null
	[ "$rc" = 0 ] && awk -v t="$took" 'BEGIN { exit !(t < 10) }'
}

# n2_stop: docker stop n2 gives exit 0 and leaves no table ip cvm and no
# cvm0 in the VM's namespace
n2_stop() {
	local rc left
	docker stop -t 30 n2 > /dev/null || return 1
	rc=$(docker inspect -f '{{.State.ExitCode}}' n2)
	left="$(nft list tables | grep -x 'table ip cvm')$(ip -o link show | grep ': cvm0@')"
	say "docker stop: exit $rc; left: '$left'; ip_forward $(cat /proc/sys/net/ipv4/ip_forward)"
	[ "$rc" = 0 ] && [ -z "$left" ]
}

# --network host: cvm0 and the table in the VM's own namespace, which
# outlives the container. A clean stop removes both and puts ip_forward
# back; kill -s KILL leaves the table behind and the next start replaces
# it. (ip_forward stays on after a kill: the next cvm finds it on, so that
# is what its stop restores.)
t_private_network_host() {
	local fw0 left
	net_image || return 1
	fw0=$(cat /proc/sys/net/ipv4/ip_forward)
	docker run -d --privileged --network host --name n2 -v stn2:/var/lib/cvm/state "$NIMG" \
		run -- sh -c "$LOOP" > /dev/null && ready n2 && net_state n2 || return 1
	say "resolv.conf: the VM's $(wc -c < /etc/resolv.conf) bytes;" \
		"inside: $(docker exec n2 cvm exec -- cat /etc/resolv.conf | tr '\n' '|')"
	n2_stop || return 1
	[ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$fw0" ] || { say "ip_forward was $fw0"; return 1; }
	docker start n2 > /dev/null && ready n2 || { say "start after stop"; return 1; }
	docker kill -s KILL n2 > /dev/null || return 1
	wait_for 30 sh -c '[ "$(docker inspect -f {{.State.Running}} n2)" = false ]' || return 1
	left=$(nft list tables | grep -cx 'table ip cvm')
	say "after kill -s KILL: $left table ip cvm left in the VM's namespace"
	[ "$left" = 1 ] || return 1   # what the next start must replace
	docker start n2 > /dev/null && ready n2 && net_state n2 || { say "start after kill"; return 1; }
	n2_stop
	rc=$?
	docker rm -f n2 > /dev/null
	return $rc
}

echo "engine: $(uname -r), up $(uptime_s) s"
start_engines || { echo "0 passed, 1 failed"; exit 1; }
for t in ${CVM_VM_TESTS:-dockerfile_builds_offline run_detached stop_clean restart_and_recreate \
	kill_then_start interactive_terminal exec_it memory_cpus_auto init_and_shell_entrypoint systemd_under_docker_init \
	containerd_ctr podman private_network private_network_restart private_network_stop \
	private_network_host}; do
	if [ "$t" = podman ] && [ -f /podman-missing ]; then
		skip podman "$(tr '\n' ' ' < /podman-missing)"; continue
	fi
	check "$t"
done
docker ps -aq | xargs -r docker rm -f > /dev/null 2>&1
kill "$(cat /run/docker.pid 2>/dev/null)" 2>/dev/null
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
