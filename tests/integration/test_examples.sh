#!/bin/bash
# The examples hold: the YAML and JSON parse, docker-run.sh is valid shell,
# the Terraform template is well formed, each file is named in README, the
# platforms' grace periods are longer than cvm's, and the configuration the
# pod manifest and docker-run.sh (with the Dockerfile's ENV) give cvm starts
# a workspace: cvm as PID 1 of an outer container, the busybox rootfs in
# place of the image. Needs python3 with PyYAML (Debian's python3-yaml).
# usage: test_examples.sh BUILD_DIR
. "$(dirname "$0")/workspace.sh" "$1"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
EX=$SRC/examples
N=0

# py SCRIPT [ARGS...]: python3 with the examples' path in $EX
py() { EX=$EX SRC=$SRC ROOTFS=$ROOTFS python3 -c "$@"; }

# run_cvm [--env K=V]... -- ARGS...: cvm ARGS as PID 1 of a fresh outer
# container, to the end; stdout/stderr in ./out and ./err; returns its status.
run_cvm() {
	N=$((N + 1))
	local name=ex$N.$$.$SRANDOM envs=() rc
	while [ "$1" != "--" ]; do envs+=("$1" "$2"); shift 2; done
	shift
	outer_start "$name" "${envs[@]}" -- "$CVM" "$@" || return 125
	outer_wait "$name" 60; rc=$?
	cat "$OUTER_DIR/$name/out" > out; cat "$OUTER_DIR/$name/err" > err
	[ $rc = 0 ] || { say "cvm exit $rc:"; sed 's/^/      | /' out err >&2; }
	return $rc
}

t_yaml_and_json_parse() {
	py '
import glob, json, os, yaml
ex = os.environ["EX"]
ys = glob.glob(ex + "/**/*.y*ml", recursive=True)
js = glob.glob(ex + "/**/*.json", recursive=True)
for f in ys:
    docs = [d for d in yaml.safe_load_all(open(f)) if d is not None]
    assert docs, f + ": no document"
    for d in docs:
        assert "apiVersion" in d and "kind" in d, f + ": not a Kubernetes object"
for f in js:
    json.load(open(f))
assert ys, "no YAML example"
print(len(ys), "YAML,", len(js), "JSON")
' > out || return 1
	say "$(cat out)"
}

# The parser must be able to fail: a broken copy is refused.
t_yaml_check_rejects_broken() {
	sed 's/^  name: cvm-workspace$/  name: [cvm/' "$EX/kubernetes/pod.yaml" > bad.yaml
	! py 'import yaml, sys; list(yaml.safe_load_all(open(sys.argv[1])))' bad.yaml 2>/dev/null
}

t_docker_run_sh_is_valid_shell() {
	sh -n "$EX/docker-run.sh" && bash -n "$EX/docker-run.sh" && [ -x "$EX/docker-run.sh" ]
}

# Terraform's own formatter parses the file when terraform is installed (it
# needs no providers); otherwise braces, brackets and parentheses must
# balance outside strings, comments and heredocs.
t_coder_template_well_formed() {
	local tf=$EX/coder/main.tf
	if command -v terraform >/dev/null; then
		HOME=$PWD terraform fmt -check -diff "$tf" > fmt.out 2>&1 ||
			{ say "terraform fmt:"; sed 's/^/      | /' fmt.out >&2; return 1; }
	fi
	py '
import os, re, sys
src = open(sys.argv[1]).read()
stack, heredoc, pairs = [], None, {"}": "{", "]": "[", ")": "("}
for n, line in enumerate(src.splitlines(), 1):
    if heredoc:
        if line.strip() == heredoc: heredoc = None
        continue
    m = re.search(r"<<-?([A-Z]+)\s*$", line)
    if m: heredoc = m.group(1)
    line = re.sub(r"\"(\\.|[^\"\\])*\"", "\"\"", line)   # strings ("${...}" inside)
    line = re.sub(r"(#|//).*", "", line)
    for c in line:
        if c in "{[(": stack.append((c, n))
        elif c in pairs:
            assert stack and stack[-1][0] == pairs[c], "line %d: unbalanced %s" % (n, c)
            stack.pop()
assert not heredoc, "heredoc %s not closed" % heredoc
assert not stack, "unclosed %s from line %d" % stack[-1]
' "$tf"
}

# Each example file is named in README.
t_examples_in_readme() {
	local f rel rc=0
	while IFS= read -r f; do
		rel=${f#"$SRC"/}
		grep -qF "$rel" "$SRC/README.md" || { say "README does not name $rel"; rc=1; }
	done < <(find "$EX" -type f)
	return $rc
}

# The platform's stop grace (pod, Coder template, docker stop) is longer than
# cvm's, so cvm gets to end the workspace itself.
t_grace_periods_exceed_cvms() {
	py '
import os, re, yaml
ex = os.environ["EX"]
secs = lambda v: float(v[:-1]) if str(v).endswith("s") else float(v)
pod = [d for d in yaml.safe_load_all(open(ex + "/kubernetes/pod.yaml")) if d["kind"] == "Pod"][0]
env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
g, t = pod["spec"]["terminationGracePeriodSeconds"], secs(env["CVM_SUPERVISOR_STOP_TIMEOUT"])
assert g >= t + 5, "pod: grace %s, cvm %s" % (g, t)
tf = open(ex + "/coder/main.tf").read()
assert re.search(r"termination_grace_period_seconds\s*=\s*var\.stop_timeout \+ ([5-9]|[1-9][0-9])\b", tf), "coder: grace"
assert re.search(r"\"CVM_SUPERVISOR_STOP_TIMEOUT\"\s*value\s*=\s*\"\$\{var\.stop_timeout\}s\"", tf), "coder: stop_timeout"
sh = open(ex + "/docker-run.sh").read()
d = int(re.search(r"^DOCKER_STOP_TIMEOUT=(\d+)$", sh, re.M).group(1))
c = int(re.search(r"^STOP_TIMEOUT=(\d+)$", sh, re.M).group(1))
assert "--stop-timeout \"$DOCKER_STOP_TIMEOUT\"" in sh and "CVM_SUPERVISOR_STOP_TIMEOUT=\"${STOP_TIMEOUT}s\"" in sh
assert d >= c + 5, "docker: %d, cvm %d" % (d, c)
'
}

t_pod_manifest_shape() {
	py '
import os, yaml
ex = os.environ["EX"]
docs = list(yaml.safe_load_all(open(ex + "/kubernetes/pod.yaml")))
pod = [d for d in docs if d["kind"] == "Pod"][0]
c = pod["spec"]["containers"][0]
env = {e["name"]: e["value"] for e in c["env"]}
assert c["securityContext"]["privileged"] is True
assert c["resources"]["limits"]["cpu"] and c["resources"]["limits"]["memory"]
mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
assert env["CVM_WORKSPACE_STATE"] in mounts, "state dir is not a volume"
vols = {v["name"]: v for v in pod["spec"]["volumes"]}
claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
for name in mounts.values():
    pvc = vols[name].get("persistentVolumeClaim")
    assert pvc is None or pvc["claimName"] in claims, name
# every volume cvm binds in comes from a volume of the pod, not its overlay
a = c["args"]
for i, x in enumerate(a):
    if x in ("--volume", "-v"):
        assert a[i + 1].split(":")[0] in mounts, a[i + 1]
'
}

# rewrite_volumes: cvm args on stdin (one a line), each volume source moved
# under ./vol (made here) so that the test binds nothing of the host's.
rewrite_volumes() {
	local prev= a
	while IFS= read -r a; do
		if [ "$prev" = --volume ] || [ "$prev" = -v ]; then
			mkdir -p "vol${a%%:*}"
			a="$PWD/vol$a"
		fi
		printf '%s\n' "$a"; prev=$a
	done
}

# The pod's configuration (env and args) starts a workspace: the image dir
# and state dir swapped for the fixture and a tmp dir, the command for a
# check, as a platform team would first try it.
t_pod_config_starts_a_workspace() {
	local envs=() args=() l
	while IFS= read -r l; do
		# a limit whose controller this host lacks is an error (by design);
		# the VM tier tests limits
		case $l in CVM_RESOURCES_PIDS=*)
			grep -qw pids "$OUTER_CG2/cgroup.controllers" || { say "no pids controller here: $l left out"; continue; } ;;
		esac
		envs+=(--env "$l")
	done < <(py '
import os, yaml
pod = [d for d in yaml.safe_load_all(open(os.environ["EX"] + "/kubernetes/pod.yaml")) if d["kind"] == "Pod"][0]
for e in pod["spec"]["containers"][0]["env"]:
    v = {"CVM_WORKSPACE_ROOTFS": os.environ["ROOTFS"], "CVM_WORKSPACE_STATE": os.getcwd() + "/state"}.get(e["name"], e["value"])
    print("%s=%s" % (e["name"], v))
' ) || return 1
	[ ${#envs[@]} -gt 6 ] || { say "no env from the pod"; return 1; }
	mkdir state
	mapfile -t args < <(py '
import os, yaml
pod = [d for d in yaml.safe_load_all(open(os.environ["EX"] + "/kubernetes/pod.yaml")) if d["kind"] == "Pod"][0]
print("\n".join(pod["spec"]["containers"][0]["args"]))' | rewrite_volumes)
	run_cvm "${envs[@]}" -- "${args[@]}" -- sh -c 'hostname; test -c /dev/fuse && echo fuse
		grep -q " /home/coder " /proc/self/mountinfo && echo home' || return 1
	expect_eq "inside" "$(tr '\n' ' ' < out)" "cvm-workspace fuse home " || return 1
	# the JSON log format the pod asks for
	py 'import json, sys; [json.loads(l) for l in open("err") if l.strip()]' ||
		{ say "log lines are not JSON:"; sed 's/^/      | /' err >&2; return 1; }
}

# docker-run.sh with a stand-in docker that records its arguments: docker's
# flags are right, and the cvm part of them, with the Dockerfile's ENV and
# the -e variables, starts a workspace.
t_docker_run_starts_a_workspace() {
	local envs=() args=() l
	mkdir bin state
	printf '#!/bin/sh\nprintf "%%s\\n" "$@" > "%s/docker.args"\n' "$PWD" > bin/docker
	chmod +x bin/docker
	PATH=$PWD/bin:$PATH NAME=exws sh "$EX/docker-run.sh" -- sh -c 'hostname; id -u' || return 1
	py '
import os, sys
a = open("docker.args").read().split("\n")[:-1]
assert a[0] == "run" and "--privileged" in a and "--rm" in a, a
valued = {"--name", "--hostname", "--stop-timeout", "--cpus", "--memory", "-v", "-e"}
i, env, vols = 1, [], []
while a[i].startswith("-"):
    if a[i] in valued:
        (env if a[i] == "-e" else vols if a[i] == "-v" else []).append(a[i + 1]); i += 2
    else:
        i += 1
assert a[i] == "cvm", "image: " + a[i]
# volumes cvm binds in are docker volumes of the outer container
outer = {v.split(":")[1] for v in vols}
for j, x in enumerate(a):
    if x == "--volume": assert a[j + 1].split(":")[0] in outer, a[j + 1]
assert "/var/lib/cvm/state" in outer, "state is not a volume"
open("env", "w").write("\n".join(env) + "\n")
open("args", "w").write("\n".join(a[i + 1:]) + "\n")
' || return 1
	# the Dockerfile's ENV, then docker-run.sh's -e (later wins, as in docker)
	while IFS= read -r l; do
		case $l in
		CVM_WORKSPACE_ROOTFS=*|CODER_INNER_IMAGE=*) l=${l%%=*}=$ROOTFS ;;
		CVM_WORKSPACE_STATE=*) l=CVM_WORKSPACE_STATE=$PWD/state ;;
		esac
		envs+=(--env "$l")
	done < <(py '
import os, re, shlex
src = open(os.environ["SRC"] + "/Dockerfile").read().replace("\\\n", " ")
for m in re.finditer(r"^ENV (.*)$", src, re.M):
    for kv in shlex.split(m.group(1)): print(kv)'; cat env)
	mapfile -t args < <(rewrite_volumes < args)
	run_cvm "${envs[@]}" -- "${args[@]}" || return 1
	expect_eq "inside" "$(tr '\n' ' ' < out)" "exws 0 "
}

t_outer_dockerfile() {
	local f=$SRC/Dockerfile
	grep -qx 'ENTRYPOINT \["/usr/local/bin/cvm"\]' "$f" || { say "no ENTRYPOINT cvm"; return 1; }
	grep -qx 'STOPSIGNAL SIGTERM' "$f" || { say "no STOPSIGNAL SIGTERM"; return 1; }
	# the build stage runs the tested script, so the two cannot drift apart
	grep -q '^RUN scripts/build-musl ' "$f" || { say "the build stage does not run scripts/build-musl"; return 1; }
	grep -q '^FROM alpine:[0-9.]* AS build$' "$f" || { say "no Alpine build stage"; return 1; }
	py 'import json, re, os
src = open(os.environ["SRC"] + "/Dockerfile").read()
for k in ("ENTRYPOINT", "CMD"):
    json.loads(re.search("^" + k + " (.*)$", src, re.M).group(1))'
}

t_workspace_image_has_the_basics() {
	local f=$EX/workspace/Dockerfile p
	grep -q '^FROM ubuntu:' "$f" || { say "not Ubuntu"; return 1; }
	for p in sudo git docker.io systemd; do
		grep -qw -- "$p" "$f" || { say "$p not installed"; return 1; }
	done
}

run_test yaml_and_json_parse t_yaml_and_json_parse
run_test yaml_check_rejects_broken t_yaml_check_rejects_broken
run_test docker_run_sh_is_valid_shell t_docker_run_sh_is_valid_shell
run_test coder_template_well_formed t_coder_template_well_formed
run_test examples_in_readme t_examples_in_readme
run_test grace_periods_exceed_cvms t_grace_periods_exceed_cvms
run_test pod_manifest_shape t_pod_manifest_shape
run_test pod_config_starts_a_workspace t_pod_config_starts_a_workspace
run_test docker_run_starts_a_workspace t_docker_run_starts_a_workspace
run_test outer_dockerfile t_outer_dockerfile
run_test workspace_image_has_the_basics t_workspace_image_has_the_basics
finish
