#!/bin/bash
# Tests of bench/report and bench/lib.sh (cheap: nothing here runs a real
# bench): README's tables are what bench/results says, a hand edit is
# caught, and a new bench needs only its result file and one marker pair.
# usage: bench/test_report.sh
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
REPORT=$SRC/bench/report
. "$SRC/tests/integration/lib.sh"

# fake_results DIR: a result file "demo" written by bench/lib.sh, as a
# bench writes it: 3 rounds against a peer, one with --inverse and a failed
# round, one without a peer.
fake_results() {
	CVM_BENCH_RESULTS=$1 bash -c '. "$0/bench/lib.sh"
		bench_begin demo bench/demo --quick
		bench_row "start" ms "peer 1.2.3" cvm/peer "< 1.0" "10 12 11" "20 20 22"
		bench_row --inverse "open" µs "lxcfs 5" lxcfs/cvm ">= 8" "8 - 10" "100 90 120"
		bench_row "server CPU" % - - - "65"
		bench_end' "$SRC" 2>/dev/null
}

# readme FILE: text around one marker pair for "demo"
readme() {
	printf '%s\n' "# Title" "" "Prose before, 1.5 ms." "" "<!-- bench:demo -->" "stale" \
		"<!-- /bench:demo -->" "" "Prose after, 2.5 ms." > "$1"
}

t_readme_matches_results() {
	# the real README against the committed results: what scripts/test
	# checks, so that a hand edit of a figure fails the suite
	"$REPORT" --check > out 2>&1 || { sed 's/^/      | /' out >&2; fail "README's tables differ from bench/results"; }
	expect_grep '^ok - README.md.s bench:' out
	expect_no_grep '^not ok' out
}

t_results_file_has_rounds_ratio_and_range() {
	fake_results "$PWD"
	expect_eq "header" "$(head -1 demo.tsv | tr '\t' ' ')" "$(. "$SRC/bench/lib.sh"; echo "$BENCH_COLUMNS")"
	local got
	got=$(awk -F'\t' 'NR == 2 { print $3, $4, $5, $6, $7, $9, $10, $11, $12, $13, $14, $15, $16, $21 }' demo.tsv)
	expect_eq "row with a peer" "$got" "ms 10 10 12 20 22 peer 1.2.3 cvm/peer 0.5 0.5 0.6 3 < 1.0 bench/demo --quick"
	# --inverse: peer/cvm; the failed round counts in neither side's range
	got=$(awk -F'\t' 'NR == 3 { print $4, $6, $7, $12, $13, $14 }' demo.tsv)
	expect_eq "inverse row, a failed round" "$got" "8 10 90 11.25 12 12.5"
	got=$(awk -F'\t' 'NR == 4 { print $4, $7, $10, $12, $15 }' demo.tsv)
	expect_eq "row without a peer" "$got" "65 - - - 1"
	expect_eq "machine" "$(awk -F'\t' 'NR == 2 { print $18, $20 }' demo.tsv)" "$(nproc) $(uname -r)"
	expect_false "no temp file left beside it" test -e .demo.tsv.tmp
}

t_new_bench_is_a_result_file_and_a_marker_pair() {
	fake_results "$PWD"; readme README.md
	expect_true "report" "$REPORT" --readme README.md --results . > out
	expect_grep 'rewrote demo' out
	expect_grep '^\| start \| ms \| 10.0 \| 20.0 \(peer 1.2.3\) \| 0.50 \(cvm/peer\) \| 0.50–0.60 \| < 1.0 \|$' README.md
	expect_grep '^\| open \| µs \| 8.00 \| 90.0 \(lxcfs 5\) \| 11.25 \(lxcfs/cvm\) \| 12.00–12.50 \| >= 8 \|$' README.md
	expect_grep '^\| server CPU \| % \| 65.0 \| - \| - \| - \(1 run\) \| - \|$' README.md
	expect_grep '^`bench/demo --quick`, [0-9-]+, 3 interleaved rounds' README.md
	expect_no_grep '^stale$' README.md
	# everything outside the markers is as it was
	readme orig.md
	expect_eq "outside the markers" "$(sed '/bench:demo -->/,/\/bench:demo -->/d' README.md)" \
		"$(sed '/bench:demo -->/,/\/bench:demo -->/d' orig.md)"
	expect_true "check after report" "$REPORT" --check --readme README.md --results . > out
	expect_grep '^1 passed, 0 failed$' out
	expect_true "a second report" "$REPORT" --readme README.md --results . > out
	expect_grep 'tables up to date' out
}

t_hand_edit_is_caught_and_undone() {
	fake_results "$PWD"; readme README.md
	"$REPORT" --readme README.md --results . > /dev/null
	cp README.md good.md
	sed -i 's/^| start | ms | 10.0 |/| start | ms | 9.0 |/' README.md
	expect_false "edit made" cmp -s README.md good.md
	local rc=0
	"$REPORT" --check --readme README.md --results . > out 2>&1 || rc=$?
	expect_eq "check's status" "$rc" 1
	expect_grep '^not ok - README.md.s bench:demo table' out
	expect_grep '^    -\| start \| ms \| 9.0 \|' out
	expect_grep '^0 passed, 1 failed$' out
	expect_true "report" "$REPORT" --readme README.md --results . > /dev/null
	expect_true "undone byte for byte" cmp README.md good.md
}

t_marker_without_results_fails() {
	fake_results "$PWD"; readme README.md
	"$REPORT" --readme README.md --results . > /dev/null
	printf '%s\n' "<!-- bench:gone -->" "<!-- /bench:gone -->" >> README.md
	cp README.md before.md
	local rc=0
	"$REPORT" --readme README.md --results . > out 2>&1 || rc=$?
	expect_eq "report's status" "$rc" 1
	expect_grep 'bench:gone: no .*gone.tsv' out
	expect_true "README untouched" cmp README.md before.md
	rc=0; "$REPORT" --check --readme README.md --results . > out 2>&1 || rc=$?
	expect_eq "check's status" "$rc" 1
	expect_grep '^not ok - README.md.s bench:gone' out
	expect_grep '^1 passed, 1 failed$' out
}

t_broken_markers_are_refused() {
	fake_results "$PWD"
	local rc
	printf '%s\n' "<!-- bench:demo -->" "x" > README.md
	rc=0; "$REPORT" --readme README.md --results . > out 2>&1 || rc=$?
	expect_eq "unclosed" "$rc" 1; expect_grep 'never closed' out
	printf '%s\n' "<!-- bench:demo -->" "<!-- /bench:other -->" > README.md
	rc=0; "$REPORT" --check --readme README.md --results . > out 2>&1 || rc=$?
	expect_eq "mismatched" "$rc" 1; expect_grep 'closes nothing' out
	printf '%s\n' "no markers at all" > README.md
	rc=0; "$REPORT" --check --readme README.md --results . > out 2>&1 || rc=$?
	expect_eq "none" "$rc" 1; expect_grep '^not ok - README.md has <!-- bench:NAME --> markers' out
}

t_run_reruns_the_recorded_command() {
	# a bench that records itself (an absolute path) and writes what
	# CVM_BENCH_ROUNDS asks for: --run must run it, into --results
	cat > fakebench <<EOF
#!/bin/bash
. "$SRC/bench/lib.sh"
bench_begin demo "$PWD/fakebench"
bench_row "start" ms "peer 1" cvm/peer - "\$(seq -s ' ' 1 \${CVM_BENCH_ROUNDS:-2})" "\$(seq -s ' ' 2 2 \$((2 * \${CVM_BENCH_ROUNDS:-2})))"
bench_end
EOF
	chmod +x fakebench
	mkdir res && CVM_BENCH_RESULTS=res ./fakebench 2>/dev/null
	readme README.md
	"$REPORT" --readme README.md --results res > /dev/null
	expect_grep '^\| start \| ms \| 1.00 \| 2.00 \(peer 1\) \| 0.50 \(cvm/peer\) \| 0.50 \| - \|$' README.md
	expect_grep ', 2 interleaved rounds' README.md
	CVM_BENCH_ROUNDS=4 "$REPORT" --run --readme README.md --results res > out 2>&1 ||
		fail "--run failed: $(cat out)"
	expect_grep ', 4 interleaved rounds' README.md
	expect_false "results went to --results, not the source tree" test -e "$SRC/res"
	# a bench that fails leaves its table as it was
	printf '#!/bin/sh\nexit 3\n' > fakebench
	cp README.md before.md
	local rc=0
	"$REPORT" --run --readme README.md --results res > out 2>&1 || rc=$?
	expect_eq "status after a failed bench" "$rc" 1
	expect_grep 'fakebench failed' out
	expect_true "README untouched" cmp README.md before.md
}

for t in $(declare -F | awk '$3 ~ /^t_/ {print $3}'); do run_test "${t#t_}" "$t"; done
finish
