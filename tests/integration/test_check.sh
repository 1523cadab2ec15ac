#!/bin/bash
# cvm check, black-box: on this host (hybrid cgroups, root), as an
# unprivileged uid, with a state dir on overlay, with a limit the host
# cannot apply, as PID 1 of an outer container; its JSON; and that it
# leaves no cgroup, mount or file behind.
# usage: test_check.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?build dir}" && pwd)
CVM=$BUILD/cvm
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
. "$HERE/outer.sh"

T=$(mktemp -d /tmp/cvm-check.XXXXXX)
chmod 755 "$T"
trap 'outer_cleanup; rm -rf "$T"' EXIT
IMG=$T/img STATE=$T/state
mkdir -m 755 "$IMG" "$STATE"
CG2=$OUTER_CG2
MYCG=$CG2$(sed -n 's/^0:://p' /proc/self/cgroup)
MYCG=${MYCG%/}
ALL="kernel userns id_range privileged mount idmap_image idmap_state overlay cgroup2 \
cgroup_layout cgroup_cpu cgroup_memory cgroup_pids cgroup_io cgroup_cpuset cgroup_delegation \
fuse seccomp gpu"

# line NAME FILE: the report's line for requirement NAME
line() { grep -E "^[a-z]+ +$1 " "$2"; }
# expect_line NAME STATUS FILE [PATTERN]
expect_line() {
	local l; l=$(line "$1" "$3") || { say "no line for $1:"; sed 's/^/      | /' "$3" >&2; return 1; }
	case $l in "$2 "*) ;; *) say "$1: want $2, got: $l"; return 1 ;; esac
	[ -z "${4:-}" ] || echo "$l" | grep -q -- "$4" || { say "$1: no '$4' in: $l"; return 1; }
}
# v1_mount [CONTROLLER]: where a cgroup v1 hierarchy (holding CONTROLLER) is
# mounted, from mountinfo: after the optional fields and "-", the type,
# the source, the super options.
v1_mount() {
	awk -v c="$([ "${1:-}" = io ] && echo blkio || echo "${1:-}")" '{
		for (i = 7; $i != "-"; i++) ;
		if ($(i + 1) == "cgroup" && (c == "" || ("," $(i + 3) ",") ~ ("," c ","))) { print $5; exit }
	}' /proc/self/mountinfo
}
# has_controller C: is C in the cgroup2 controllers of the group cvm is in?
has_controller() { grep -qw "$1" "$MYCG/cgroup.controllers"; }

t_runs_here() {
	"$CVM" check --rootfs "$IMG" --state "$STATE" > out; expect_eq "exit" "$?" 0 || return 1
	expect_line userns ok out "made one" &&
	expect_line mount ok out &&
	expect_line id_range ok out "100000-165535" &&
	expect_line idmap_image ok out "$IMG can be idmapped" &&
	expect_line idmap_state ok out "$STATE can be idmapped" &&
	expect_line overlay ok out "uid 0 on disk" &&
	expect_line cgroup2 ok out "mounted at $CG2" &&
	expect_line cgroup_delegation ok out "CLONE_INTO_CGROUP" &&
	expect_line fuse ok out &&
	expect_line seccomp ok out || return 1
	tail -1 out | grep -q '^cvm can run here' || { say "last line: $(tail -1 out)"; return 1; }
	# The places the lead's sections go
	grep -q '^capabilities (cvm after setup / workspace bounding set):$' out &&
	grep -q '^seccomp profile:$' out || { say "no capabilities/seccomp sections"; return 1; }
}

# This host: cgroup2 next to v1 hierarchies that hold the controllers. The
# expectations come from the host itself, so a pure v2 host must say ok.
t_hybrid_cgroups() {
	"$CVM" check > out; expect_eq "exit" "$?" 0 || return 1
	if [ -n "$(v1_mount)" ]; then
		expect_line cgroup_layout warn out "hybrid: cgroup v1 hierarchies" || return 1
		# the workspace's own v1 groups, tried with scratch ones
		expect_line cgroup_layout warn out "made and removed a cvm-check.\* group in each of the $(grep -c '^[1-9]' /proc/self/cgroup)" || return 1
		grep -q "systemd.unified_cgroup_hierarchy=1" out || { say "no fix for hybrid"; return 1; }
	else
		expect_line cgroup_layout ok out "unified" || return 1
	fi
	for c in cpu memory pids io cpuset; do
		if has_controller "$c"; then
			expect_line "cgroup_$c" ok out "available in $MYCG/cgroup.controllers" || return 1
		else
			v1=$(v1_mount "$c")
			expect_line "cgroup_$c" warn out "cannot be applied.*; cvm still runs" || return 1
			[ -z "$v1" ] || expect_line "cgroup_$c" warn out "v1 hierarchy at $v1 holds it" ||
				return 1
		fi
	done
	# The limits missing are warnings: cvm still runs
	tail -1 out | grep -q '^cvm can run here' || { say "last line: $(tail -1 out)"; return 1; }
}

# The capabilities and seccomp sections come from the tables cvm applies:
# what cvm keeps must be what a running cvm holds (test_exec.sh checks
# CapEff 0x81002 = dac_override, sys_ptrace, net_admin), and config-added refusals and
# seccomp = no show.
t_security_sections() {
	CVM_WORKSPACE_NETWORK=private "$CVM" check > out || return 1
	sed -n '/^capabilities/,/^seccomp profile:/p' out > caps
	[ "$(sed -n '/cvm keeps only/,/proc server keeps/p' caps | grep -c '^    ')" = 3 ] &&
		[ "$(sed -n '/proc server keeps/,/bounding set lacks/p' caps | grep -c '^    ')" = 3 ] &&
		grep -q '^    dac_override ' caps && grep -q '^    sys_ptrace ' caps &&
		grep -q '^    sys_module ' caps || { say "$(cat caps)"; return 1; }
	grep -qE '^    kexec_load +EPERM' out && grep -qE '^    name_to_handle_at +EOPNOTSUPP' out ||
		{ say "$(cat out)"; return 1; }
	CVM_WORKSPACE_NETWORK=private CVM_WORKSPACE_SECCOMP_DENY=ptrace,bpf \
		"$CVM" check --json > on.json || return 1
	CVM_WORKSPACE_NETWORK=host "$CVM" check --json > host.json || return 1
	CVM_WORKSPACE_SECCOMP=no "$CVM" check --json > off.json || return 1
	python3 - on.json off.json host.json <<-'EOF'
	import json, sys
	on, off, host = (json.load(open(f)) for f in sys.argv[1:4])
	keeps = [c["name"] for c in on["capabilities"]["cvm_keeps"]]
	assert keeps == ["dac_override", "sys_ptrace", "net_admin"], keeps
	keeps = [c["name"] for c in host["capabilities"]["cvm_keeps"]]
	assert keeps == ["dac_override", "sys_ptrace"], keeps
	sp = on["seccomp_profile"]
	assert sp["enabled"] is True
	calls = [r["syscall"] for r in sp["refused"]]
	assert "kexec_load" in calls and "open_by_handle_at" in calls, calls
	assert calls[-2:] == ["ptrace", "bpf"], calls
	assert off["seccomp_profile"]["enabled"] is False and off["seccomp_profile"]["refused"] == []
	EOF
}

t_json_one_entry_per_requirement() {
	"$CVM" check -r "$IMG" -s "$STATE" --json > json; expect_eq "exit" "$?" 0 || return 1
	"$CVM" check -r "$IMG" -s "$STATE" > text
	python3 - "$ALL" json text <<-'EOF' || return 1
	import json, re, sys
	want = sys.argv[1].split()
	d = json.load(open(sys.argv[2]))
	names = [c["name"] for c in d["checks"]]
	assert names == want, names
	assert d["can_run"] is True, d["can_run"]
	assert "capabilities" in d and "seccomp_profile" in d
	text = {}
	for l in open(sys.argv[3]):
	    m = re.match(r"^(ok|info|warn|missing) +(\S+) ", l)
	    if m: text[m.group(2)] = m.group(1)
	for c in d["checks"]:
	    assert c["status"] in ("ok", "info", "warn", "missing"), c
	    assert c["why"], c
	    assert c["status"] == text[c["name"]], (c, text[c["name"]])
	    # what to do, wherever something is wrong
	    assert (c["fix"] is not None) == (c["status"] in ("warn", "missing")), c
	EOF
}

# An essential requirement missing: nobody, without capabilities.
t_unprivileged_cannot_run() {
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all -- \
		"$CVM" check -r "$IMG" -s "$STATE" > out
	expect_eq "exit" "$?" 1 || return 1
	expect_line privileged missing out "cap_sys_admin" &&
	expect_line mount missing out "Operation not permitted" &&
	expect_line idmap_state missing out "uid_map" &&
	expect_line cgroup_delegation missing out "Permission denied" || return 1
	# hybrid: the workspace's own v1 groups need a cgroup mount of cvm's own
	if grep -q '^[1-9]' /proc/self/cgroup; then
		expect_line cgroup_layout missing out "hybrid: cgroup v1 hierarchy .*: fsopen cgroup: Operation not permitted; cvm run refuses to start without it" || return 1
	fi
	grep -q "to fix: run the outer container privileged" out || { say "no fix"; return 1; }
	tail -1 out | grep -q '^cvm cannot run here: missing privileged, mount' ||
		{ say "last line: $(tail -1 out)"; return 1; }
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all -- \
		"$CVM" check --json > json
	python3 -c 'import json,sys; d=json.load(open("json")); assert d["can_run"] is False' ||
		{ say "JSON can_run"; return 1; }
}

# The state dir on overlay is fatal for cvm run; an image there means the
# fallback copy. Both overlays live in a private mount namespace.
t_overlay_filesystems() {
	mkdir -p l u w m
	unshare -m --propagation private sh -c '
		mount -t overlay overlay -o lowerdir=l,upperdir=u,workdir=w m || exit 99
		mkdir m/img m/state
		"$1" check -r "$PWD/m/img" -s "$2" > out.image; echo $? > rc.image
		"$1" check -r "$3" -s "$PWD/m/state" > out.state; echo $? > rc.state' sh \
		"$CVM" "$STATE" "$IMG"
	expect_eq "exit (image on overlay)" "$(cat rc.image)" 0 &&
	expect_line idmap_image warn out.image "on overlay, which the kernel cannot idmap; cvm falls back to a one-time shifted copy into $STATE/rootfs" &&
	expect_line overlay ok out.image "stand-in image" &&
	expect_eq "exit (state on overlay)" "$(cat rc.state)" 1 &&
	expect_line idmap_state missing out.state "on overlay, which the kernel cannot idmap" &&
	expect_line idmap_state missing out.state "to fix: put the state dir on a volume" &&
	expect_line overlay info out.state "not tried" || return 1
	tail -1 out.state | grep -qx 'cvm cannot run here: missing idmap_state' ||
		{ say "last line: $(tail -1 out.state)"; return 1; }
}

# An explicit limit whose controller this host lacks: cvm run refuses it.
t_explicit_limit() {
	CVM_RESOURCES_MEMORY=64M "$CVM" check > out; rc=$?
	if has_controller memory; then
		expect_eq "exit" "$rc" 0 && expect_line cgroup_memory ok out
	else
		expect_eq "exit" "$rc" 1 &&
		expect_line cgroup_memory missing out "the configured memory limit needs it"
	fi
}

# The config is read as cvm run reads it: file < CVM_* < flags.
t_config_layers() {
	mkdir -m 755 s1 s2 s3
	printf '[workspace]\nrootfs = %s\nstate = %s/s1\n' "$IMG" "$PWD" > cvm.ini
	"$CVM" check -c cvm.ini > out && expect_line idmap_state ok out "^ok *idmap_state *$PWD/s1 " ||
		return 1
	CVM_WORKSPACE_STATE=$PWD/s2 "$CVM" check -c cvm.ini > out &&
		expect_line idmap_state ok out "$PWD/s2 can" || return 1
	CVM_WORKSPACE_STATE=$PWD/s2 "$CVM" check -c cvm.ini -s "$PWD/s3" > out &&
		expect_line idmap_state ok out "$PWD/s3 can" || return 1
	printf '[workspace]\nstate = %s/s1\n' "$PWD" > bad.ini
	"$CVM" check -c bad.ini 2> err; expect_eq "exit (bad config)" "$?" 2 || return 1
	grep -q "rootfs is required with state" err || { say "$(cat err)"; return 1; }
	"$CVM" check --bogus 2>/dev/null; expect_eq "exit (bad flag)" "$?" 2
}

t_help() {
	"$CVM" check --help | grep -q -- '--json' || return 1
	"$CVM" --help | grep -q '^  check ' || { say "cvm --help does not list check"; return 1; }
}

# As PID 1 of an outer container: its own cgroup is cvm's group, and the
# scratch group goes under it.
t_in_outer_container() {
	outer_start chk -- "$CVM" check -r "$IMG" -s "$STATE" || return 1
	outer_wait chk 20; expect_eq "exit" "$?" 0 || { outer_log chk >&2; return 1; }
	out=$OUTER_DIR/chk/out
	expect_line cgroup2 ok "$out" "cvm's group: /sys/fs/cgroup$" &&
	expect_line cgroup_delegation ok "$out" "made /sys/fs/cgroup/cvm-check\." &&
	expect_line overlay ok "$out"
}

# Nothing left: no cgroup, no mount, no file, not even the missing state dir.
t_leaves_nothing() {
	local before after
	snapshot() {
		find "$CG2" -name 'cvm-check.*'
		awk '$9 == "cgroup" { print $5 }' /proc/self/mountinfo | xargs -r -I{} find {} -name 'cvm-check.*'
		cat /proc/self/mountinfo
		find "$T" | sort
	}
	before=$(snapshot)
	"$CVM" check -r "$IMG" -s "$STATE" > /dev/null &&
	"$CVM" check -r "$IMG" -s "$T/not-yet" --json > /dev/null || return 1
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all -- \
		"$CVM" check -r "$IMG" -s "$STATE" > /dev/null
	after=$(snapshot)
	[ "$before" = "$after" ] || { say "changed:"; diff <(echo "$before") <(echo "$after") >&2; return 1; }
	[ ! -e "$T/not-yet" ] || { say "check made the state dir"; return 1; }
}

run_test runs_here t_runs_here
run_test hybrid_cgroups t_hybrid_cgroups
run_test json_one_entry_per_requirement t_json_one_entry_per_requirement
run_test security_sections t_security_sections
run_test unprivileged_cannot_run t_unprivileged_cannot_run
run_test overlay_filesystems t_overlay_filesystems
run_test explicit_limit t_explicit_limit
run_test config_layers t_config_layers
run_test help t_help
run_test in_outer_container t_in_outer_container
run_test leaves_nothing t_leaves_nothing
finish
