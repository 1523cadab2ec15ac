# What every bench shares: its result file, bench/results/NAME.tsv, which
# bench/report turns into README's table between <!-- bench:NAME --> and
# <!-- /bench:NAME -->. A bench sources this from the repository root,
# calls bench_begin, one bench_row per measurement, and bench_end once all
# went well (a failed run leaves the last good file in place).
#
# The file: one header line, then one tab-separated row per measurement:
#   bench metric unit cvm cvm_min cvm_max peer peer_min peer_max peer_name
#   ratio_of ratio ratio_min ratio_max runs target date nproc cpu kernel command
# cvm and peer are the values reported (the best round: every metric here
# is lower-is-better); _min and _max range over the rounds; ratio is the
# reported values' ratio, ratio_of says which way ("cvm/tini"), and
# ratio_min/max range over the rounds' own ratios (run-to-run noise). "-"
# where a row has no peer. date (UTC), nproc, cpu and kernel say where it ran,
# command what ran it (bench/report --run runs it again).
#
# Knobs every bench honours: CVM_BENCH_ROUNDS (interleaved rounds, the
# repetitions behind min/max; each bench has its own default) and
# CVM_BENCH_RESULTS (where the files go; default bench/results).

BENCH_RESULTS=${CVM_BENCH_RESULTS:-bench/results}
BENCH_COLUMNS="bench metric unit cvm cvm_min cvm_max peer peer_min peer_max peer_name ratio_of ratio ratio_min ratio_max runs target date nproc cpu kernel command"

# bench_begin NAME CMD...: start NAME's result file; CMD is what ran this
# bench, as bench/report --run should run it again.
bench_begin() {
	BENCH_NAME=$1; shift
	BENCH_CMD="$*"
	BENCH_FILE=$(mktemp /tmp/cvm-bench-result.XXXXXX)
	echo "$BENCH_COLUMNS" | tr ' ' '\t' > "$BENCH_FILE"
}

# bench_row [--inverse] METRIC UNIT PEER_NAME RATIO_OF TARGET "CVM..." ["PEER..."]
# One measurement: the values of each round, space-separated, round i of
# cvm against round i of the peer (a "-" marks a failed round, left out).
# The ratio is cvm/peer, or peer/cvm with --inverse ("how many times faster
# cvm is"). No PEER values: a row of cvm's own, no ratio. PEER_NAME names
# the peer with its version; RATIO_OF labels the ratio ("cvm/crun"); TARGET
# is what the ratio (or, without a peer, the value) should meet, or "-".
bench_row() {
	local inverse=0
	[ "$1" != --inverse ] || { inverse=1; shift; }
	awk -v inv=$inverse -v bench="$BENCH_NAME" -v metric="$1" -v unit="$2" \
		-v peer_name="${3:--}" -v ratio_of="${4:--}" -v target="${5:--}" \
		-v a="$6" -v b="${7:-}" -v date="$(date -u +%F)" -v nproc="$(nproc)" \
		-v cpu="$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
		-v kernel="$(uname -r)" -v command="$BENCH_CMD" '
	function num(s) { return s ~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/ }
	function fmt(v) { return v == "" ? "-" : sprintf("%.6g", v) }
	BEGIN {
		OFS = "\t"
		if (cpu == "") cpu = "-"
		n = split(a, x, " "); m = split(b, y, " ")
		if (m && m != n) { print "bench_row " metric ": " n " cvm rounds, " m " peer rounds" > "/dev/stderr"; exit 1 }
		amin = amax = bmin = bmax = rmin = rmax = ""
		for (i = 1; i <= n; i++) {
			if (num(x[i])) { v = x[i] + 0
				if (amin == "" || v < amin) amin = v
				if (amax == "" || v > amax) amax = v }
			if (m && num(y[i])) { w = y[i] + 0
				if (bmin == "" || w < bmin) bmin = w
				if (bmax == "" || w > bmax) bmax = w }
			if (m && num(x[i]) && num(y[i]) && (inv ? x[i] : y[i]) + 0 > 0) {
				r = inv ? y[i] / x[i] : x[i] / y[i]
				if (rmin == "" || r < rmin) rmin = r
				if (rmax == "" || r > rmax) rmax = r }
		}
		if (amin == "") { print "bench_row " metric ": no cvm value" > "/dev/stderr"; exit 1 }
		ratio = ""
		if (bmin != "" && (inv ? amin : bmin) > 0) ratio = inv ? bmin / amin : amin / bmin
		if (!m) peer_name = ratio_of = "-"
		print bench, metric, unit, fmt(amin), fmt(amin), fmt(amax), fmt(bmin), fmt(bmin), fmt(bmax),
			peer_name, ratio_of, fmt(ratio), fmt(rmin), fmt(rmax), n, target, date, nproc, cpu,
			kernel, command
	}' >> "$BENCH_FILE"
}

# bench_end: the run went well; its file replaces the last one.
bench_end() {
	mkdir -p "$BENCH_RESULTS"
	cat "$BENCH_FILE" > "$BENCH_RESULTS/.$BENCH_NAME.tsv.tmp"
	mv "$BENCH_RESULTS/.$BENCH_NAME.tsv.tmp" "$BENCH_RESULTS/$BENCH_NAME.tsv"
	rm -f "$BENCH_FILE"
	echo "results: $BENCH_RESULTS/$BENCH_NAME.tsv" >&2
}

# bench_rounds DEFAULT: the number of interleaved rounds (CVM_BENCH_ROUNDS)
bench_rounds() {
	local r=${CVM_BENCH_ROUNDS:-$1}
	case $r in ''|*[!0-9]*|0) echo "CVM_BENCH_ROUNDS: a positive number, not '$r'" >&2; return 1 ;; esac
	echo "$r"
}

# bench_version CMD...: the first version-looking word CMD prints
bench_version() {
	"$@" 2>&1 | grep -o -m1 '[0-9][0-9.]*[0-9]' | head -1
}
