#!/bin/bash
# Black-box tests of the ways a person reaches a workspace from a real
# terminal: tmux is the terminal (a pty, a window size, keys typed one by
# one, the screen read back), as when someone runs the README's demo.
# usage: test_terminal.sh BUILD_DIR
. "$(dirname "$0")/workspace.sh" "$1"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
STATE=$(mktemp -d /tmp/cvm-term-state.XXXXXX)
# One tmux server of our own, no user config: nothing of the caller's.
TMUX_SOCK=cvm-test-$$
trap 'tmux -L "$TMUX_SOCK" kill-server 2>/dev/null; outer_cleanup; rm -rf "$STATE"' EXIT

term() { tmux -L "$TMUX_SOCK" -f /dev/null "$@"; }

# term_start NAME: a bash at a 120x40 terminal; the pane stays after exit.
term_start() {
	term new-session -d -s "$1" -x 120 -y 40 "env PS1='outer\$ ' bash --norc -i" &&
		term set-option -t "$1" remain-on-exit on >/dev/null
}

# term_type NAME TEXT: type TEXT and Enter; term_key NAME KEY: one key (C-c).
term_type() { term send-keys -t "$1" -l "$2" && term send-keys -t "$1" Enter; }
term_key() { term send-keys -t "$1" "$2"; }
term_screen() { term capture-pane -p -J -t "$1" -S -200; }

# term_wait NAME REGEX [SECONDS]: until a line of the screen matches.
term_wait() {
	local i limit=$(( ${3:-15} * 10 ))
	for ((i = 0; i < limit; i++)); do
		term_screen "$1" | grep -Eq -- "$2" && return 0
		sleep 0.1
	done
	say "no line matching '$2' on the screen of $1 after ${3:-15} s:"
	term_screen "$1" | grep -v '^$' | tail -25 | sed 's/^/      | /' >&2
	return 1
}

# term_count NAME REGEX: how many lines of the screen match.
term_count() { term_screen "$1" | grep -Ec -- "$2"; }

# term_interrupt NAME CMD: run CMD in the foreground, ^C it, and see the
# shell report it ended by SIGINT (one command a line: ash drops the rest
# of a line that ^C interrupted).
term_interrupt() {
	local tag=$SRANDOM    # a line of its own, not an earlier call's
	term_type "$1" "$2"
	sleep 0.5; term_key "$1" C-c
	term_type "$1" "echo \"ended $tag \$?\""
	term_wait "$1" "^ended $tag 130\$" 5
}

# The outer shell's terminal settings come back once cvm is gone.
outer_tty_restored() {
	term_type "$1" 'stty -a | grep -o -- "-\?icanon\|-\?echo " | tr -d " \n"; echo " settings"'
	term_wait "$1" '^icanonecho settings$' 5
}

# cvm as PID 1 of a new pid namespace, from a shell at a terminal: the
# README's way to try it. The workspace gets a terminal of its own.
# Each its own control socket: the unshared mount namespace shares /run.
run_unshared() {
	echo "unshare --pid --fork --mount --mount-proc $CVM run --network host --rootfs $ROOTFS" \
		"--state $STATE/$1 --control-socket $STATE/$1.sock -- /bin/sh"
}

t_run_from_a_terminal() {
	term_start run || return 1
	term_type run "$(run_unshared run)" || return 1
	term_wait run 'workspace ready' || return 1
	term_type run 'tty; echo "console $(stat -c %t:%T /dev/console) stdin $(stat -L -c %t:%T /proc/self/fd/0)"'
	term_wait run '^/dev/pts/0$' || return 1
	# /dev/console is the very pty the shell has as its terminal.
	term_wait run '^console 88:0 stdin 88:0$' || return 1
	term_type run 'stty size; ls /dev/pts | tr "\n" " "; echo'
	term_wait run '^40 120$' && term_wait run '^0 ptmx $' || return 1
	term_type run 'exit'
	term_wait run '^outer\$ $' || return 1
	outer_tty_restored run
}

# Job control: ^C ends the foreground job, ^Z stops it, fg brings it back.
t_job_control() {
	term_start jobs || return 1
	term_type jobs "$(run_unshared jobs)" || return 1
	term_wait jobs 'workspace ready' || return 1
	term_interrupt jobs 'sleep 100' || return 1
	term_type jobs 'sleep 200'
	sleep 0.5; term_key jobs C-z
	term_wait jobs 'Stopped +sleep 200' 5 || return 1
	term_type jobs 'jobs -l; ps -o stat,comm | grep "sleep$"'
	term_wait jobs '^T +sleep$' 5 || return 1
	term_interrupt jobs 'fg' || return 1
	# The shell itself survived every ^C.
	term_type jobs 'echo alive'
	term_wait jobs '^alive$' 5 || return 1
	term_type jobs 'exit'
	term_wait jobs '^outer\$ $' || return 1
	outer_tty_restored jobs
}

# A new window size reaches the workspace, and its foreground gets SIGWINCH.
t_window_size_and_sigwinch() {
	term_start winch || return 1
	term_type winch "$(run_unshared winch)" || return 1
	term_wait winch 'workspace ready' || return 1
	term_type winch 'stty size'
	term_wait winch '^40 120$' || return 1
	# A foreground job that waits for SIGWINCH (the shell's line editor
	# takes its own at the prompt).
	term_type winch 'sh -c "trap \"echo got-winch; exit\" WINCH; echo waiting; while :; do sleep 0.1; done"'
	term_wait winch '^waiting$' 5 || return 1
	term resize-window -t winch -x 100 -y 30 || return 1
	term_wait winch '^got-winch$' 5 || return 1
	term_type winch 'stty size'
	term_wait winch '^30 100$' 5 || return 1
	term_type winch 'exit'
	term_wait winch '^outer\$ $'
}

# scripts/demo, the README's first command, in a terminal: a shell prompt
# inside the workspace.
t_demo_gives_a_prompt() {
	term_start demo || return 1
	term_type demo "CVM_DEMO_DIR=$STATE/demo $SRC/scripts/demo" || return 1
	term_wait demo 'workspace ready' 300 || return 1
	term_wait demo '^~ # $' 10 || return 1
	term_type demo 'echo "inside $(hostname) $(cat /proc/1/comm)"'
	term_wait demo '^inside cvm cvm-init$' || return 1
	term_type demo 'exit'
	term_wait demo '^outer\$ $' || return 1
	outer_tty_restored demo
}

# cvm exec -t from tmux: a pty of the workspace that follows the window.
t_exec_t_from_tmux() {
	ws_start ex "$STATE/ex" -- sleep 1000 || return 1
	term_start ex || return 1
	term_type ex "nsenter -t $(outer_pid ex) -m -p $CVM exec -t -- /bin/sh" || return 1
	term_type ex 'tty; stty size'
	term_wait ex '^/dev/pts/[0-9]+$' && term_wait ex '^40 120$' || return 1
	term resize-window -t ex -x 90 -y 25 || return 1
	sleep 0.5
	term_type ex 'stty size'
	term_wait ex '^25 90$' 5 || return 1
	term_interrupt ex 'sleep 100' || return 1
	term_type ex 'exit 7'
	term_wait ex '^outer\$ $' || return 1
	term_type ex 'echo "exec exit $?"'
	term_wait ex '^exec exit 7$' || return 1
	outer_tty_restored ex
}

# cvm exec -t from a terminal that is not tmux: script(1)'s pty.
t_exec_t_from_script() {
	ws_start sc "$STATE/sc" -- sleep 1000 || return 1
	out=$(script -qec "nsenter -t $(outer_pid sc) -m -p $CVM exec -t -- sh -c 'tty; test -t 0 && echo stdin-tty'" \
		/dev/null < /dev/null | tr -d '\r')
	# (script(1) passes the EOF of its own stdin on as a NUL, echoed "^@")
	echo "$out" | grep -Eq '/dev/pts/[0-9]+$' || { say "$out"; return 1; }
	echo "$out" | grep -qx stdin-tty || { say "$out"; return 1; }
}

# A shell starts its background jobs with SIGINT and SIGQUIT ignored; that
# must reach neither the workspace's init nor its command, and cvm must
# still hear SIGINT and pass it on.
t_ignored_signals_stay_outside() {
	out=$( (trap '' INT QUIT; unshare --pid --fork --mount --mount-proc "$CVM" run --network host \
		--rootfs "$ROOTFS" --state "$STATE/ign" -- grep SigIgn /proc/self/status /proc/1/status \
		< /dev/null 2>/dev/null) )
	# (the command is grep itself: busybox sh -c ignores SIGQUIT on its own)
	expect_eq "SigIgn inside" "$out" "/proc/self/status:SigIgn:	0000000000000000
/proc/1/status:SigIgn:	0000000000000000" || return 1
	# SIGINT to cvm (ignored when it started) reaches the command inside
	# (then the stop sequence's SIGTERM: INT's trap runs first).
	(trap '' INT QUIT; exec "$CVM" run --network host --rootfs "$ROOTFS" --state "$STATE/ign2" \
		--control-socket "$STATE/ign2.sock" -- sh -c 'trap "echo got-int; exit 3" INT
		trap "echo got-term; exit 4" TERM; echo up; while :; do sleep 0.1; done' \
		< /dev/null > "$STATE/ign2.out" 2>&1) &
	pid=$!
	wait_for "$STATE/ign2.out" '^up$' || return 1
	kill -INT "$pid"
	wait_for "$STATE/ign2.out" '^got-int$' 5 || { kill -TERM "$pid"; wait "$pid"; return 1; }
	wait "$pid"; rc=$?
	expect_eq "cvm exit" "$rc" 3
}

# Without a terminal the workspace has no /dev/console (systemd then starts
# no getty on it), as under docker run without -t.
t_no_terminal_no_console() {
	out=$(unshare --pid --fork --mount --mount-proc "$CVM" run --network host --rootfs "$ROOTFS" \
		--state "$STATE/nocon" -- sh -c 'test -e /dev/console && echo console; tty' < /dev/null 2>&1)
	echo "$out" | grep -q '^console' && { say "$out"; return 1; }
	echo "$out" | grep -qx 'not a tty' || { say "$out"; return 1; }
}

# Attack from inside: look for a handle on the outer terminal (where
# TIOCSTI would type into the shell that started cvm). Every terminal any
# process inside holds, and /dev/console, must be of the workspace's own
# devpts (/dev/tty, 5:0, is each process's own controlling terminal).
t_outer_terminal_out_of_reach() {
	term_start reach || return 1
	term_type reach "$(run_unshared reach)" || return 1
	term_wait reach 'workspace ready' || return 1
	term_type reach 'pts=$(stat -c %d /dev/pts/ptmx); n=0; for f in /proc/[0-9]*/fd/* /dev/console /dev/tty; do set -- $(stat -L -c "%d %F" "$f" 2>/dev/null); [ "$2 $3" = "character special" ] || continue; case $(stat -L -c %t:%T "$f") in 5:0) ;; 88:*|5:*) n=$((n+1)); [ "$1" = "$pts" ] || echo "OUTER $f"; esac; done; echo "ttys checked $n"'
	term_wait reach '^ttys checked [1-9][0-9]*$' || return 1
	[ "$(term_count reach '^OUTER ')" = 0 ] || { term_screen reach | grep '^OUTER ' >&2; return 1; }
	term_type reach 'exit'
	term_wait reach '^outer\$ $'
}

# systemd as init on the console, as `docker run -it` of a systemd image
# gives: its boot messages and console-getty's login prompt come through
# the relay, though systemd opens and closes /dev/console as it goes. cvm
# is PID 1 of a pid, mount and cgroup namespace in a group of its own (as
# under a container engine) with the terminal as its stdin.
t_systemd_on_the_console() {
	local image cg pid d=$OUTER_DIR/console
	image=$("$SRC/scripts/debian-image") || { say "cannot build the Debian image"; return 1; }
	# Its own group, in cgroup2 and (hybrid host) each v1 hierarchy, as
	# outer_start makes them; removed at the end by console_cleanup.
	cg=$OUTER_CG2/cvm-test.$$.console
	mkdir -p "$d" && mkdir "$cg" && outer_v1_groups console > "$d/cgroup1" || return 1
	term_start sd || { console_cleanup "$cg" "$d"; return 1; }
	term_type sd "for g in $cg \$(cat $d/cgroup1); do echo \$\$ > \$g/cgroup.procs; done && unshare --pid --fork --mount --cgroup --uts --ipc --propagation private -- sh -c 'mount -t proc proc /proc && mount -t cgroup2 cgroup2 /sys/fs/cgroup && mount -t tmpfs tmpfs /run && exec \"\$@\"' sh $CVM run --network host --rootfs $image --state $STATE/sd --stop-timeout 30s; echo \"cvm exit \$?\""
	term_wait sd 'Welcome to Debian' 60 && term_wait sd ' login: ?$' 180 ||
		{ console_cleanup "$cg" "$d"; return 1; }
	# cvm is PID 1 there: the unshare's child, in our group.
	pid=$(for p in $(cat "$cg/cgroup.procs" "$cg"/*/cgroup.procs 2>/dev/null); do
		[ "$(cat /proc/"$p"/comm 2>/dev/null)" = cvm ] &&
			[ "$(cat /proc/"$(awk '{print $4}' /proc/"$p"/stat)"/comm 2>/dev/null)" = unshare ] &&
			echo "$p"; done | head -1)
	[ -n "$pid" ] || { say "no cvm in $cg"; console_cleanup "$cg" "$d"; return 1; }
	kill -TERM "$pid"
	# The shutdown's messages come through too, then the pane's shell ends.
	term_wait sd 'Reached target.*(Power-Off|System Power Off|Shutdown)' 60 &&
		term_wait sd '^cvm exit 0$' 120 || { console_cleanup "$cg" "$d"; return 1; }
	console_cleanup "$cg" "$d"
}

console_cleanup() {
	outer_kill_cgroup "$1"
	outer_remove_v1 "$2"
}

for t in run_from_a_terminal job_control window_size_and_sigwinch demo_gives_a_prompt \
	exec_t_from_tmux exec_t_from_script ignored_signals_stay_outside no_terminal_no_console \
	outer_terminal_out_of_reach systemd_on_the_console; do
	run_test "$t" "t_$t"
done
finish
