# Shared helpers for the black-box tests: a tiny TAP-like runner.
# Each test is a shell function, run in a subshell in a fresh temp dir. It
# fails when it returns non-zero, or when any assertion in it failed, even
# one it went on after: the assertions (expect_*, fail, wait_for and the
# scripts' own has/expect_line) record each failure in $T_FAILS, a file, so
# that one in a $(...), a pipeline or a background job counts as well. (A
# test's status alone is its last command's: bash ignores `set -e` in a
# function run as an `if` condition, so a failed check in the middle of a
# test would otherwise pass unseen.) The runner prints one line per test
# and ends with "N passed, N failed".

PASSED=0
FAILED=0
FAILED_NAMES=""
T_TMP=""
T_FAILS=""

say() { printf '    %s\n' "$*" >&2; }

# fail WHAT...: say WHAT and fail the running test, whatever comes after;
# returns 1, so `cond || fail "..." || return 1` still stops the test there.
fail() {
	say "$@"
	[ -z "$T_FAILS" ] || printf '%s\n' "$*" >> "$T_FAILS"
	return 1
}

run_test() {
	local name=$1 rc=0; shift
	T_TMP=$(mktemp -d /tmp/cvm-test.XXXXXX)
	# beside the test's dir, not in it: a test may look at what its dir holds
	T_FAILS=$(mktemp /tmp/cvm-test-fails.XXXXXX)
	( cd "$T_TMP" && "$@" ) || rc=$?
	if [ $rc = 0 ] && [ ! -s "$T_FAILS" ]; then
		PASSED=$((PASSED + 1)); echo "ok - $name"
	else
		# what used to pass unseen: worth saying, it is easy to miss
		[ $rc != 0 ] || say "(the test ended with status 0 after $(wc -l < "$T_FAILS") failed assertion(s))"
		FAILED=$((FAILED + 1)); FAILED_NAMES="$FAILED_NAMES $name"; echo "not ok - $name"
	fi
	rm -rf "$T_TMP" "$T_FAILS"
	T_FAILS=""
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
	fail "timed out waiting for '$2' in $1:"; sed 's/^/      | /' "$1" >&2 2>/dev/null
	return 1
}

# expect_eq WHAT GOT WANT
expect_eq() {
	[ "$2" = "$3" ] && return 0
	fail "$1: got '$2', want '$3'"
}

# expect_true WHAT CMD...: CMD succeeds (its output passes through)
expect_true() {
	local what=$1 rc=0; shift
	"$@" || rc=$?
	[ $rc = 0 ] || fail "$what: '$*' failed (exit $rc)"
}

# expect_false WHAT CMD...: CMD fails
expect_false() {
	local what=$1; shift
	! "$@" || fail "$what: '$*' succeeded"
}

# expect_grep PATTERN FILE: a line of FILE matches PATTERN (grep -E)
expect_grep() {
	grep -qE -- "$1" "$2" 2>/dev/null && return 0
	fail "no line matching '$1' in $2:"; sed 's/^/      | /' "$2" >&2 2>/dev/null
	return 1
}

# expect_no_grep PATTERN FILE: no line of FILE matches PATTERN (grep -E)
expect_no_grep() {
	[ -e "$2" ] || { fail "$2 is missing"; return 1; }
	! grep -qE -- "$1" "$2" && return 0
	fail "lines matching '$1' in $2:"; grep -E -- "$1" "$2" | sed 's/^/      | /' >&2
	return 1
}

# expect_match WHAT TEXT PATTERN: a line of TEXT matches PATTERN (grep -E)
expect_match() {
	printf '%s\n' "$2" | grep -qE -- "$3" && return 0
	fail "$1: no line matching '$3' in:"; printf '%s\n' "$2" | sed 's/^/      | /' >&2
	return 1
}

# child_of PID: the first child of PID (from /proc), empty if none.
child_of() {
	cat /proc/"$1"/task/*/children 2>/dev/null | awk '{print $1; exit}'
}

# proc_state PID: the one-letter state from /proc/PID/stat.
proc_state() {
	sed 's/.*) \(.\).*/\1/' /proc/"$1"/stat 2>/dev/null
}
