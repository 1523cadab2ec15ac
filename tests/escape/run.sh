#!/bin/bash
# The escape suite: root inside a workspace tries every escape we know
# (tests/escape/escape.c, one line per attempt) and each must fail. The
# suite says which layer stopped each one: it runs the same attempts in a
# second workspace without the seccomp profile, so an attempt blocked only
# with the profile was stopped by seccomp, one blocked in both by the
# kernel's own checks or by how cvm builds the workspace (the probe says
# which). Afterwards the outer side must be as it was.
# usage: tests/escape/run.sh BUILD_DIR
. "$(dirname "$0")/../integration/workspace.sh" "$1"
ESC=$BUILD/tests/escape/escape
[ -x "$ESC" ] || { echo "no $ESC: build first"; exit 1; }
DIR=$(mktemp -d /tmp/cvm-escape.XXXXXX)
TAG=cvm-escape-tag-$$-$RANDOM
KEY_DESC=cvm-escape-key-$$-$RANDOM
KEY=""
cleanup() {
	outer_cleanup
	[ -n "$KEY" ] && "$ESC" unkey "$KEY"
	rm -rf "$DIR"
}
trap cleanup EXIT
MARKER=$DIR/marker-$RANDOM
echo "outer secret" > "$MARKER"
KEY=$("$ESC" key "$KEY_DESC") || { echo "cannot add the marker key"; exit 1; }

# What the attempts could change on the outer side (the node, here).
outer_state() {
	local f
	for f in /proc/sys/kernel/core_pattern /proc/sys/kernel/modprobe \
		/proc/sys/vm/overcommit_memory /proc/sys/kernel/sysrq /proc/sys/net/ipv4/ip_forward \
		/sys/kernel/uevent_helper /proc/sys/kernel/ctrl-alt-del \
		/sys/kernel/mm/transparent_hugepage/enabled; do
		echo "$f: $(cat "$f" 2>&1)"
	done
	echo "hostname: $(hostname)"
	echo "marker: $(cat "$MARKER")"
	echo "key: $(grep -c "$KEY_DESC" /proc/keys)"
	echo "cvm binary: $(sha256sum < "$CVM")"
	echo "modules: $(cat /proc/modules 2>/dev/null | wc -l)"
	# mounts of the node, less the scratch places tests (this one's and
	# others') mount under
	echo "mounts: $(awk '$5 !~ "^/(tmp|var/tmp|run)/" {print $5}' /proc/self/mountinfo | sort | md5sum)"
	echo "oom_score_adj: $(cat /proc/self/oom_score_adj)"
}
outer_state > "$DIR/before"

# attack NAME [cvm run args]: a workspace with the probe at /escape; in its
# outer container a marker process. Then, from inside: the attempts as the
# init's child (what the init hands down), as a `cvm exec` command, and
# the watcher while `cvm exec` runs 20 times, each held 150 ms before its
# exec (CVM_DEBUG_JOIN_HOLD_MS) so that the watcher meets it in that state. Results in $DIR/NAME.out.
attack() {
	local name=$1 bin=$DIR/$1.bin opid=0 p; shift
	mkdir "$bin" "$DIR/$name.state"
	cp "$ESC" "$bin/escape"
	local WS_ENV=(env CVM_DEBUG_JOIN_HOLD_MS=150)
	ws_start "$name" "$DIR/$name.state" -v "$bin:/escape:ro" "$@" -- sh -c \
		'while [ ! -e /escape/go ]; do sleep 0.05; done
		 /escape/escape all > /tmp/escape-init.out 2>&1; exec sleep 100000' || return 1
	outer_exec "$name" bash -c "exec -a $TAG sleep 100000" > /dev/null 2>&1 &
	# and an abstract unix socket listening in the outer network namespace
	outer_exec "$name" python3 -c "import socket, time
s = socket.socket(socket.AF_UNIX); s.bind('\0$TAG'); s.listen(); time.sleep(100000)" \
		> /dev/null 2>&1 &
	for _ in $(seq 100); do
		for p in $(pgrep -f "^$TAG"); do
			[ "$(stat -L -c %i /proc/"$p"/ns/pid)" = \
			  "$(stat -L -c %i /proc/"$(outer_pid "$name")"/ns/pid)" ] &&
				opid=$(awk '/^NSpid:/ {print $NF}' /proc/"$p"/status)
		done
		[ "$opid" != 0 ] && break; sleep 0.05
	done
	[ "$opid" != 0 ] || { echo "no outer marker process in $name"; return 1; }
	# On a hybrid host: a marker group in each of the outer container's v1
	# groups (non-root ones, as a pod's on a hybrid node), next to cvm's
	# "workspace"; a v1 mount inside must not show it.
	while IFS= read -r p; do
		mkdir "$p/$TAG" || return 1
	done < "$OUTER_DIR/$name/cgroup1"
	{
		echo "ESC_MARKER=$MARKER"; echo "ESC_TAG=$TAG"; echo "ESC_OUTER_PID=$opid"
		echo "ESC_KEY=$KEY"; echo "ESC_KEY_DESC=$KEY_DESC"
		echo "ESC_CVM_INO=$(stat -L -c %d:%i "$CVM")"
		for t in user mnt pid uts ipc cgroup net; do
			echo "ESC_NS_$t=$(stat -L -c %i /proc/"$(outer_pid "$name")"/ns/$t)"
		done
	} > "$bin/env"
	: > "$bin/go"
	ws_exec "$name" -- /escape/escape watch 8 > "$DIR/$name.watch" &
	local w=$!
	sleep 0.5
	for _ in $(seq 20); do ws_exec "$name" -- true; done
	wait $w
	ws_exec "$name" -- /escape/escape all > "$DIR/$name.exec"
	for _ in $(seq 100); do
		ws_exec "$name" -- cat /tmp/escape-init.out 2>/dev/null | grep -q cvm_init && break
		sleep 0.1
	done
	ws_exec "$name" -- cat /tmp/escape-init.out > "$DIR/$name.init"
	outer_signal "$name" TERM; outer_wait "$name" 20 > /dev/null
	# One line per attempt (cvm exec's run and the watcher), and whatever
	# escaped in the init's run.
	cat "$DIR/$name.exec" "$DIR/$name.watch" > "$DIR/$name.out"
	awk -F'\t' '$2 == "ESCAPED" { print "init: " $0 }' "$DIR/$name.init" >> "$DIR/$name.out"
}

attack a || exit 1
attack b --no-seccomp || exit 1
# The control for the network attempts: sharing the outer network (network
# = host, by configuration), the outer abstract socket is reachable. So the
# attempt can succeed, and what stops it in a is the private network.
attack c --network host || exit 1

# The verdicts, one test line per attempt. Which layer: the same outcome
# without the profile (numbers aside) means the probe's reason stands;
# blocked only with it means seccomp.
norm() { sed 's/[0-9]\+/#/g'; }
host_filter=""
[ "$(awk '/^Seccomp:/ {print $2}' /proc/self/status)" = 2 ] && host_filter=" or this host's own seccomp filter refuses it"
while IFS=$'\t' read -r name verdict how; do
	other=$(awk -F'\t' -v n="$name" '$1 == n { print $2 "\t" $3; exit }' "$DIR/b.out")
	if [ "$verdict" != blocked ]; then
		echo "not ok - $name: ESCAPED: $how"; FAILED=$((FAILED + 1)); FAILED_NAMES="$FAILED_NAMES $name"
		continue
	fi
	case $how in "absent on this kernel"*)
		echo "ok - $name: n/a here, $how"; PASSED=$((PASSED + 1)); continue ;;
	esac
	without=${other#*	}
	if [ "${other%%	*}" = ESCAPED ]; then
		layer="seccomp, the only layer (without it: $without)"
	elif [ "$(echo "$without" | norm)" = "$(echo "$how" | norm)" ]; then
		layer="$how"
	else
		case $without in ENOSYS) without="ENOSYS, this kernel lacks it$host_filter" ;; esac
		layer="seccomp ($how); without it: $without"
	fi
	echo "ok - $name: $layer"; PASSED=$((PASSED + 1))
done < <(grep -v '^init: ' "$DIR/a.out")

t_init_hands_down_nothing() {
	if grep -q ESCAPED "$DIR/a.init"; then say "$(grep ESCAPED "$DIR/a.init")"; return 1; fi
	[ "$(wc -l < "$DIR/a.init")" -ge 40 ] || { say "$(cat "$DIR/a.init")"; return 1; }
}
t_at_least_40_attempts() {
	local n
	# counted only where the target exists on this kernel
	n=$(grep -v 'absent on this kernel' "$DIR/a.out" | cut -f1 | sort -u | wc -l)
	[ "$n" -ge 40 ] || { say "only $n distinct attempts"; return 1; }
	echo "    $n distinct attempts ran" >&2
}
t_abstract_socket_control() {
	grep -q $'^abstract_socket_of_outer_network\tESCAPED' "$DIR/c.out" ||
		{ say "with network = host: $(grep abstract "$DIR/c.out")"; return 1; }
}
t_outer_side_unchanged() {
	outer_state > "$DIR/after"
	diff "$DIR/before" "$DIR/after" >&2
}
run_test init_hands_down_nothing t_init_hands_down_nothing
run_test at_least_40_attempts t_at_least_40_attempts
run_test abstract_socket_reachable_with_host_network t_abstract_socket_control
run_test outer_side_unchanged t_outer_side_unchanged
finish
