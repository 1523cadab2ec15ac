# Shared helpers for the black-box tests: a tiny TAP-like runner.
# Each test is a shell function; it fails by returning non-zero, after
# printing what it saw with `say`. The runner prints one line per test and
# ends with "N passed, N failed".

PASSED=0
FAILED=0
FAILED_NAMES=""
T_TMP=""

say() { printf '    %s\n' "$*" >&2; }

run_test() {
	local name=$1; shift
	T_TMP=$(mktemp -d /tmp/cvm-test.XXXXXX)
	if ( set -e; cd "$T_TMP"; "$@" ) ; then
		PASSED=$((PASSED + 1)); echo "ok - $name"
	else
		FAILED=$((FAILED + 1)); FAILED_NAMES="$FAILED_NAMES $name"; echo "not ok - $name"
	fi
	rm -rf "$T_TMP"
}

finish() {
	[ -z "$FAILED_NAMES" ] || echo "failed:$FAILED_NAMES"
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}

# wait_for FILE PATTERN [TIMEOUT_S]: poll until PATTERN shows up in FILE.
wait_for() {
	local i=0 limit=$(( ${3:-10} * 20 ))
	while [ $i -lt $limit ]; do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05; i=$((i + 1))
	done
	say "timed out waiting for '$2' in $1:"; sed 's/^/      | /' "$1" >&2 2>/dev/null
	return 1
}

# expect_eq WHAT GOT WANT
expect_eq() {
	[ "$2" = "$3" ] && return 0
	say "$1: got '$2', want '$3'"; return 1
}

# child_of PID: the first child of PID (from /proc), empty if none.
child_of() {
	cat /proc/"$1"/task/*/children 2>/dev/null | awk '{print $1; exit}'
}

# proc_state PID: the one-letter state from /proc/PID/stat.
proc_state() {
	sed 's/.*) \(.\).*/\1/' /proc/"$1"/stat 2>/dev/null
}
