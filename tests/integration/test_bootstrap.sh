#!/bin/bash
# Black-box tests of what a platform team relies on when cvm replaces envbox:
# the bootstrap script (how the Coder agent starts) and its stop, envbox's
# CODER_* variables end to end (the token never in the log), and the log
# lines for operators (JSON, the "workspace ready" line).
# usage: test_bootstrap.sh BUILD_DIR
. "$(dirname "$0")/workspace.sh" "$1"

# start [cvm run args...]: a workspace running `sleep 1000` in a fresh outer
# container (state in ./state); sets WS, LOG (its stderr, cvm's log).
start() {
	WS=bs.$$.$SRANDOM
	LOG=$OUTER_DIR/$WS/err
	ws_start "$WS" "$PWD/state" "$@" -- sleep 1000
}

# stop [SECONDS]: docker stop; returns cvm's exit status and sets STOP_MS.
stop() {
	local t0 rc
	t0=$(date +%s%N)
	outer_signal "$WS" TERM
	outer_wait "$WS" "${1:-30}"; rc=$?
	STOP_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
	return $rc
}

show_log() { sed 's/^/      | /' "$LOG" >&2; }

t_bootstrap_runs_as_the_user_and_logs_its_output() {
	start --user nobody --bootstrap 'echo "uid=$(id -u) gid=$(id -g) home=$HOME pwd=$(pwd)"; echo on-stderr >&2; exec sleep 1001' || return 1
	wait_for "$LOG" 'cvm\[bootstrap\] info: uid=' || return 1
	grep -q 'cvm\[bootstrap\] info: uid=65534 gid=65534 ' "$LOG" || { show_log; return 1; }
	wait_for "$LOG" 'cvm\[bootstrap\] info: on-stderr$' || return 1
	# It runs in the workspace: its namespaces and cgroup, not the outer ones.
	out=$(ws_exec "$WS" -- ps -o user,args)
	echo "$out" | grep -q '^nobody *sleep 1001$' || { say "bootstrap not seen inside: $out"; return 1; }
}

t_bootstrap_gets_sigterm_first_while_the_workspace_runs() {
	mkdir vol && chmod 777 vol
	start --user nobody -v "$PWD/vol:/vol" --stop-timeout 10s --bootstrap \
		'trap "ps -o args > /vol/marker; echo got-term; exit 0" TERM; echo waiting; while :; do sleep 0.1; done' || return 1
	wait_for "$LOG" 'cvm\[bootstrap\] info: waiting' || return 1
	stop; rc=$?
	# The workspace's own command was stopped after the bootstrap: 128+TERM.
	expect_eq "exit" "$rc" 143 || { show_log; return 1; }
	[ -s vol/marker ] || { say "no marker written"; show_log; return 1; }
	# When the bootstrap got TERM, the workspace still ran.
	grep -q '^sleep 1000' vol/marker || { say "marker: $(cat vol/marker)"; return 1; }
	grep -q 'cvm\[bootstrap\] info: got-term' "$LOG" || { show_log; return 1; }
	[ "$STOP_MS" -lt 8000 ] || { say "stop took $STOP_MS ms"; return 1; }
	# Its end, then the workspace's stop, in that order.
	n1=$(grep -n 'cvm\[bootstrap\] info: pid .* ended (exit status 0)' "$LOG" | cut -d: -f1)
	[ -n "$n1" ] || { show_log; return 1; }
}

t_bootstrap_ignoring_sigterm_is_killed_after_the_grace() {
	start --stop-timeout 2s --bootstrap 'trap "" TERM; echo ignoring; while :; do sleep 0.1; done' || return 1
	wait_for "$LOG" 'cvm\[bootstrap\] info: ignoring' || return 1
	stop 20; rc=$?
	expect_eq "exit" "$rc" 143 || { show_log; return 1; }
	grep -q 'cvm\[bootstrap\] warn: pid [0-9]* did not end within the grace period of 2000 ms' "$LOG" ||
		{ show_log; return 1; }
	grep -q 'cvm\[bootstrap\] info: pid [0-9]* ended (signal 9)' "$LOG" || { show_log; return 1; }
	[ "$STOP_MS" -ge 1900 ] && [ "$STOP_MS" -lt 10000 ] || { say "stop took $STOP_MS ms"; return 1; }
}

t_bootstrap_that_fails_leaves_the_workspace_up() {
	start --bootstrap 'echo failing; exit 3' || return 1
	wait_for "$LOG" 'cvm\[bootstrap\] info: pid [0-9]* ended (exit status 3)' || return 1
	sleep 0.2
	out=$(ws_exec "$WS" -- echo alive)
	expect_eq "exec" "$out" alive
}

t_bootstrap_without_a_workspace_is_refused() {
	"$CVM" run --bootstrap 'echo x' -- true 2> err; rc=$?
	expect_eq "exit" "$rc" 2 || return 1
	grep -q 'bootstrap script: runs inside a workspace' err || { say "$(cat err)"; return 1; }
}

t_envbox_variables_end_to_end() {
	mkdir vol && echo data > vol/f
	WS=env.$$.$SRANDOM
	LOG=$OUTER_DIR/$WS/err
	outer_start "$WS" --env CODER_INNER_IMAGE="$ROOTFS" --env CVM_WORKSPACE_STATE="$PWD/state" \
		--env CODER_INNER_USERNAME=nobody --env CODER_INNER_HOSTNAME=coderbox \
		--env CODER_INNER_WORK_DIR=/tmp --env CODER_INNER_ENVS='MYVAR_*, OTHER' \
		--env MYVAR_A=1 --env OTHER=2 --env NOTPASSED=3 --env CODER_AGENT_TOKEN=tok-secret-4711 \
		--env CODER_AGENT_URL=https://coder.example:8443/ \
		--env CODER_MOUNTS="$PWD/vol:/data:ro" --env CODER_ADD_FUSE=true --env CODER_CPUS=  \
		--env CODER_BOOTSTRAP_SCRIPT='echo "boot $(id -u) token-length ${#CODER_AGENT_TOKEN} token $CODER_AGENT_TOKEN."
echo "agent url $CODER_AGENT_URL"
sleep 1000' \
		-- "$CVM" run --log-level=debug -- sleep 1000 || return 1
	wait_for "$LOG" 'workspace ready' || return 1
	out=$(ws_exec "$WS" -- sh -c 'id -u; hostname; pwd; echo "$CODER_AGENT_TOKEN $MYVAR_A $OTHER ${NOTPASSED:-unset} $CODER_AGENT_URL"; cat /data/f; touch /data/g 2>/dev/null || echo read-only; test -c /dev/fuse && echo fuse')
	expect_eq "inside" "$out" "65534
coderbox
/tmp
tok-secret-4711 1 2 unset https://coder.example:8443/
data
read-only
fuse" || return 1
	wait_for "$LOG" 'cvm\[bootstrap\] info: boot 65534 token-length 15 token \*\*\*\.$' || return 1
	wait_for "$LOG" 'cvm\[bootstrap\] info: agent url https://coder.example:8443/$' || return 1
	stop || :
	# Passed in, never logged: not at debug, not in any message.
	! grep -q 'tok-secret-4711' "$LOG" || { say "the agent token is in the log:"; show_log; return 1; }
}

t_envbox_bad_value_is_an_error() {
	CODER_CPUS=abc "$CVM" run -- true 2> err; rc=$?
	expect_eq "exit" "$rc" 2 || return 1
	grep -q "CODER_CPUS: bad value 'abc' for cpus" err || { say "$(cat err)"; return 1; }
	# a registry reference is an image to pull, which needs a state dir
	CODER_INNER_IMAGE=codercom/enterprise-base:ubuntu "$CVM" run -- true 2> err; rc=$?
	expect_eq "exit" "$rc" 2 || return 1
	grep -q "state is required with an image ref" err || { say "$(cat err)"; return 1; }
	CODER_INNER_IMAGE='codercom/enterprise-base:ubuntu latest' "$CVM" run -- true 2> err; rc=$?
	expect_eq "exit" "$rc" 2 || return 1
	grep -q "CODER_INNER_IMAGE: bad value 'codercom/enterprise-base:ubuntu latest' for ref" err ||
		{ say "$(cat err)"; return 1; }
}

t_json_log_lines_and_the_ready_line() {
	start --log-format=json --log-level=debug \
		--bootstrap 'printf "caf\303\251 \377\tx\n"; echo "hello \"json\""' || return 1
	wait_for "$LOG" '"hello \\"json\\""' || return 1
	stop; rc=$?
	expect_eq "exit" "$rc" 143 || return 1
	python3 - "$LOG" <<'EOF' || { show_log; return 1; }
import json, sys
lines = open(sys.argv[1], encoding="utf-8", errors="strict").read().splitlines()
assert lines, "no log lines"
ready = boot = 0
for line in lines:
    o = json.loads(line)
    assert {"time", "level", "component", "message", "fields"} <= set(o), o
    assert isinstance(o["fields"], dict) and o["component"] and o["level"] in ("error", "warn", "info", "debug"), o
    if o["message"].startswith("workspace ready"):
        ready += 1
        assert o["component"] == "supervisor" and isinstance(o["fields"]["startup_ms"], int), o
        assert 0 <= o["fields"]["startup_ms"] < 60000 and o["fields"]["rootfs"], o
    if o["component"] == "bootstrap" and o["message"] == 'hello "json"':
        boot += 1
    if o["component"] == "bootstrap" and o["message"].startswith("caf"):
        # UTF-8 kept, a stray byte replaced, a tab escaped: still one JSON line
        assert o["message"] == "caf\u00e9 \ufffd\tx", repr(o["message"])
        boot += 1
assert ready == 1, "%d ready lines" % ready
assert boot == 2, "bootstrap output not logged as its own component"
EOF
}

t_text_ready_line() {
	start || return 1
	wait_for "$LOG" 'cvm\[supervisor\] info: workspace ready in [0-9]* ms startup_ms=[0-9]* init_pid=[0-9]* rootfs=/' || return 1
	expect_eq "ready lines" "$(grep -c 'workspace ready' "$LOG")" 1
}

for t in $(declare -F | awk '$3 ~ /^t_/ {print $3}'); do
	run_test "${t#t_}" "$t"
done
finish
