#!/bin/bash
# Tests of the test runner itself (lib.sh's run_test and assertions): every
# failed assertion fails its test, whatever comes after it, and the summary
# counts right. Sample suites run in a child bash; what they print is
# compared here without lib.sh's runner (the thing under test), so a broken
# runner fails this script too.
# usage: test_runner.sh [BUILD_DIR]   (the build dir is not used)
set -u
LIB=$(cd "$(dirname "$0")" && pwd)/lib.sh
W=$(mktemp -d /tmp/cvm-runner-test.XXXXXX)
trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
export RUNNER_W=$W
passed=0 failed=0 names=""

# check NAME WANT GOT: one result line of this script
check() {
	if [ "$2" = "$3" ]; then
		passed=$((passed + 1)); echo "ok - $1"
	else
		failed=$((failed + 1)); names="$names $1"; echo "not ok - $1"
		printf '    got:\n%s\n    want:\n%s\n' "$(echo "$3" | sed 's/^/      | /')" \
			"$(echo "$2" | sed 's/^/      | /')" >&2
	fi
}

# suite NAME: run ./NAME.sh (a sample suite sourcing lib.sh) in a child
# bash; its stdout in NAME.out, stderr in NAME.err, its status in NAME.rc.
suite() {
	{ echo ". '$LIB'"; cat; echo 'for t in $(declare -F | awk '\''$3 ~ /^t_/ {print $3}'\''); do run_test "${t#t_}" "$t"; done'
	  echo finish; } > "$1.sh"
	bash "$1.sh" > "$1.out" 2> "$1.err"; echo $? > "$1.rc"
}

# One of each way to fail, and the ways that must pass. Tests run in name
# order (declare -F sorts).
suite mixed <<'EOF'
t_a_first_fails_last_passes() { expect_eq "first" 1 2; expect_eq "last" 1 1; }
t_b_passes_after_a_failure() { expect_eq "same" x x; }
t_c_returns_non_zero() { return 3; }
t_d_fails_in_a_command_substitution() { x=$(expect_eq "inner" a b); true; }
t_e_fails_in_a_pipeline() { echo | fail "piped"; true; }
t_f_fails_in_a_background_job() { expect_eq "bg" 1 2 & wait; true; }
t_g_failed_command_then_its_status_checked() { sh -c 'exit 9'; expect_eq "exit" "$?" 9; }
t_h_every_helper_passing() {
	printf 'alpha\nbeta 12\n' > f
	expect_true "true" true && expect_false "false" false && expect_grep '^beta [0-9]+$' f &&
		expect_no_grep gamma f && expect_match "text" "$(cat f)" '^alpha$' && wait_for f beta 1 &&
		expect_eq "eq" 1 1
}
t_i_expect_true_fails() { expect_true "the command" sh -c 'exit 4'; true; }
t_j_expect_false_fails() { expect_false "the command" true; true; }
t_k_expect_grep_fails() { echo seen-line > f; expect_grep '^wanted$' f; true; }
t_l_expect_no_grep_fails() { echo bad-line > f; expect_no_grep bad f; true; }
t_m_expect_match_fails() { expect_match "text" "one
two" '^three$'; true; }
t_n_wait_for_fails() { echo other > f; wait_for f never 1; true; }
t_o_the_dir_is_fresh_and_empty() {
	expect_eq "files" "$(ls -A)" "" && expect_eq "cwd" "$PWD" "$T_TMP"
	echo "$T_TMP $T_FAILS" > "$RUNNER_W/paths"
}
t_p_fails_after_exit_0() { expect_eq "before exit" 1 2; exit 0; }
EOF
check "mixed: one line per test" "$(printf '%s\n' \
	"not ok - a_first_fails_last_passes" "ok - b_passes_after_a_failure" "not ok - c_returns_non_zero" \
	"not ok - d_fails_in_a_command_substitution" "not ok - e_fails_in_a_pipeline" \
	"not ok - f_fails_in_a_background_job" "ok - g_failed_command_then_its_status_checked" \
	"ok - h_every_helper_passing" "not ok - i_expect_true_fails" "not ok - j_expect_false_fails" \
	"not ok - k_expect_grep_fails" "not ok - l_expect_no_grep_fails" "not ok - m_expect_match_fails" \
	"not ok - n_wait_for_fails" "ok - o_the_dir_is_fresh_and_empty" "not ok - p_fails_after_exit_0")" \
	"$(grep -E '^(ok|not ok) ' mixed.out)"
check "mixed: the summary" "4 passed, 12 failed" "$(tail -1 mixed.out)"
check "mixed: the failed names" \
	"failed: a_first_fails_last_passes c_returns_non_zero d_fails_in_a_command_substitution e_fails_in_a_pipeline f_fails_in_a_background_job i_expect_true_fails j_expect_false_fails k_expect_grep_fails l_expect_no_grep_fails m_expect_match_fails n_wait_for_fails p_fails_after_exit_0" \
	"$(grep '^failed:' mixed.out)"
check "mixed: exit status" 1 "$(cat mixed.rc)"
# what each failure says: what was seen, in the style of expect_eq
for want in "first: got '1', want '2'" "inner: got 'a', want 'b'" piped "bg: got '1', want '2'" \
	"the command: 'sh -c exit 4' failed (exit 4)" "the command: 'true' succeeded" \
	"no line matching '^wanted\$' in f:" "      | seen-line" "lines matching 'bad' in f:" "      | bad-line" \
	"text: no line matching '^three\$' in:" "      | two" "timed out waiting for 'never' in f:" "      | other" \
	"(the test ended with status 0 after 1 failed assertion(s))"; do
	check "mixed: stderr says \"$want\"" yes \
		"$({ grep -qxF -- "    $want" mixed.err || grep -qxF -- "$want" mixed.err; } && echo yes || echo no)"
done
read -r dir fails < paths
check "mixed: the test's dir and record, then gone" "dir file gone gone" \
	"$(case $dir in /tmp/cvm-test.*) echo dir ;; esac) $(case $fails in /tmp/cvm-test-fails.*) echo file ;; esac) $(
	[ -e "$dir" ] || echo gone) $([ -e "$fails" ] || echo gone)"

suite green <<'EOF'
t_one() { expect_eq "x" 1 1; }
t_two() { sh -c 'exit 1'; expect_eq "status" "$?" 1; }
EOF
check "green: all pass" "$(printf 'ok - one\nok - two\n2 passed, 0 failed')" "$(cat green.out)"
check "green: exit status" 0 "$(cat green.rc)"
check "green: quiet" "" "$(cat green.err)"

[ -z "$names" ] || echo "failed:$names"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
