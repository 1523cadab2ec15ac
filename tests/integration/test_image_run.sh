#!/bin/bash
# cvm run --image: a workspace started from a registry image (issue 17), on
# Debian's docker-registry on loopback (tests/integration/registry.sh): the
# image pulled through the layer cache and its layers stacked as the
# overlay's lower dirs (the whiteouts and opaque dirs of later layers seen
# inside), a second start that downloads nothing, a start with the registry
# unreachable from what the cache holds, the image's Env, cvm check on a
# cached image, the forced copy path (CODER_DISABLE_IDMAPPED_MOUNT), and the
# env block of Coder's kubernetes-envbox template starting a workspace with
# nothing else set but the state dir, its bootstrap seeing the agent's URL
# and token.
# usage: test_image_run.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?build dir}" && pwd)
CVM=$BUILD/cvm
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
. "$HERE/registry.sh"

T=$(mktemp -d /tmp/cvm-imgrun.XXXXXX)
cleanup() {
	registry_stop
	rm -rf "$T"
}
trap cleanup EXIT
unset http_proxy https_proxy HTTPS_PROXY no_proxy NO_PROXY CODER_IMAGE_PULL_SECRET \
	CODER_EXTRA_CERTS_PATH CVM_WORKSPACE_ROOTFS CVM_IMAGE_REF CODER_INNER_IMAGE
# no request may leave through this: nothing listens on port 9 (discard)
DEAD_PROXY=http://127.0.0.1:9

echo "# starting a registry and pushing test images"
registry_start plain || exit 1
REG=$REG_HOST
registry_push_busybox "$REG/test/busybox:1" || exit 1
registry_push_layered "$REG/test/layered:1" || exit 1

# run ARGS...: cvm run with a private control socket, host network (the
# tests here are about the rootfs); stdout in ./out, stderr in ./err
run() {
	CVM_SUPERVISOR_CONTROL_SOCKET=$PWD/ctl.sock "$CVM" run --network host "$@" > out 2> err
}

t_run_image() {
	expect_true "first start" run --image "$REG/test/busybox:1" --state "$PWD/s" -- \
		/bin/sh -c 'echo "in $(hostname) $(id -u)"; test -x /bin/busybox && echo busybox' ||
		{ cat err >&2; return 1; }
	expect_eq "inside" "$(cat out)" "in cvm 0
busybox"
	expect_grep "layer 1/1 sha256:[0-9a-f]{12} .* downloading" err
	expect_grep "workspace started: image $REG/test/busybox:1 \(1 layers\)" err
	expect_grep "workspace ready in [0-9]+ ms \(the image took [0-9]+ ms\).*pull_ms=[0-9]+" err
	[ -d s/images/layers/sha256 ] || fail "no layer cache in the state dir: $(ls s)"
	expect_true "second start" run --image "$REG/test/busybox:1" --state "$PWD/s" -- /bin/true
	expect_grep "layer 1/1 .* cached" err
	expect_grep " 0 B downloaded" err
	expect_no_grep "downloading" err
	# what the workspace wrote is in the state's upper dir, not in the cache
	expect_true "write" run --image "$REG/test/busybox:1" --state "$PWD/s" -- \
		/bin/sh -c 'echo mine > /etc/mine'
	[ -f s/upper/etc/mine ] || fail "no etc/mine in the upper dir"
	! ls s/images/layers/sha256/*/etc/mine 2>/dev/null || fail "a write reached a cached layer"
}

# Layer 2 deletes etc/gone and opt/olddir, makes opt/data opaque (only
# "new"), deletes srv/readd, which layer 3 brings back; usr/bin/suid keeps
# its mode; srv/h1 and h2 are one file.
t_layered_image() {
	expect_true "start" run --image "$REG/test/layered:1" --state "$PWD/s" -- /bin/sh -c '
		for p in /etc/gone /opt/olddir /opt/data/old1 /opt/data/sub; do
			test -e $p && echo "still there: $p"; done
		ls /opt/data; cat /srv/readd /etc/keep; stat -c %a /usr/bin/suid
		[ "$(stat -c %i /srv/h1)" = "$(stat -c %i /srv/h2)" ] && echo hardlinked
		stat -c "%u:%g %a" /home/u/f; test -c /dev/testnull || echo "no testnull"' ||
		{ cat err >&2; return 1; }
	expect_eq "inside" "$(cat out)" "new
v3
v3
4755
hardlinked
1000:1000 600
no testnull"
	expect_grep "pulled $REG/test/layered:1 in [0-9.]+ s: 3 layers" err
}

# The registry cannot be reached (every request goes to a dead proxy): the
# workspace starts from what the cache holds for the tag, and says so.
t_offline_restart() {
	run --image "$REG/test/busybox:1" --state "$PWD/s" -- /bin/true || { fail "first"; cat err >&2; return 1; }
	expect_true "start, registry unreachable" env http_proxy=$DEAD_PROXY HTTPS_PROXY=$DEAD_PROXY \
		CVM_SUPERVISOR_CONTROL_SOCKET=$PWD/ctl.sock "$CVM" run --network host \
		--image "$REG/test/busybox:1" --state "$PWD/s" -- /bin/echo up > out 2> err ||
		{ cat err >&2; return 1; }
	expect_eq "ran" "$(cat out)" "up"
	expect_grep "unreachable|cache" err
	# a tag the cache never had cannot start
	expect_false "unknown to the cache" env http_proxy=$DEAD_PROXY \
		CVM_SUPERVISOR_CONTROL_SOCKET=$PWD/ctl.sock "$CVM" run --network host \
		--image "$REG/test/layered:1" --state "$PWD/s" -- /bin/true 2> err
	expect_grep "cvm\[image\] error: pull $REG/test/layered:1" err
}

# The image config's Env is the workspace's (its PATH too); the config's
# own env wins over it.
t_image_env() {
	local lay=$PWD/lay
	registry_build_layered "$lay" 1 || { fail "build"; return 1; }
	python3 - "$lay" <<'PY' || { fail "edit the config"; return 1; }
import hashlib, json, os, sys
lay = sys.argv[1]
def blob(d): return os.path.join(lay, "blobs", *d.split(":"))
def put(b):
    d = "sha256:" + hashlib.sha256(b).hexdigest()
    open(blob(d), "wb").write(b); return d, len(b)
idx = json.load(open(os.path.join(lay, "index.json")))
m = json.load(open(blob(idx["manifests"][0]["digest"])))
cfg = json.load(open(blob(m["config"]["digest"])))
cfg.setdefault("config", {})["Env"] = ["PATH=/opt/tool/bin:/usr/bin:/bin", "FROM_IMAGE=yes", "MINE=image"]
m["config"]["digest"], m["config"]["size"] = put(json.dumps(cfg).encode())
idx["manifests"][0]["digest"], idx["manifests"][0]["size"] = put(json.dumps(m).encode())
json.dump(idx, open(os.path.join(lay, "index.json"), "w"))
PY
	registry_push_layout "$lay:1" "$REG/test/envimage:1" || { fail "push"; return 1; }
	expect_true "start" env CVM_WORKSPACE_ENV="MINE=config" CVM_SUPERVISOR_CONTROL_SOCKET=$PWD/ctl.sock \
		"$CVM" run --network host --image "$REG/test/envimage:1" --state "$PWD/s" -- \
		/bin/sh -c 'echo "$PATH $FROM_IMAGE $MINE"' > out 2> err || { cat err >&2; return 1; }
	expect_eq "env" "$(cat out)" "/opt/tool/bin:/usr/bin:/bin yes config"
}

t_check_cached_image() {
	"$CVM" check --state "$PWD/s" --json > /dev/null 2>&1
	CVM_IMAGE_REF="$REG/test/busybox:1" "$CVM" check --state "$PWD/s" > out 2> err
	expect_grep "image .*not in the cache .* yet" out
	run --image "$REG/test/busybox:1" --state "$PWD/s" -- /bin/true || { fail "pull"; cat err >&2; return 1; }
	CVM_IMAGE_REF="$REG/test/busybox:1" "$CVM" check --state "$PWD/s" > out 2> err
	expect_grep "image .*is cached in $PWD/s/images: sha256:[0-9a-f]{64}, 1 layers" out
	expect_grep "idmap_image .*can be idmapped" out
	expect_grep "^ *ok +overlay|overlay .*mounted over the idmapped image" out
}

# idmap = off (CODER_DISABLE_IDMAPPED_MOUNT): the layers merged once into
# STATE/rootfs, whiteouts honoured; the next start reuses the copy.
t_forced_copy_of_layers() {
	expect_true "start" env CODER_DISABLE_IDMAPPED_MOUNT=true CVM_SUPERVISOR_CONTROL_SOCKET=$PWD/ctl.sock \
		"$CVM" run --network host --image "$REG/test/layered:1" --state "$PWD/s" -- \
		/bin/sh -c 'ls /opt/data; test -e /etc/gone || echo gone' > out 2> err || { cat err >&2; return 1; }
	expect_eq "inside" "$(cat out)" "new
gone"
	expect_grep "idmap = off: the image layers are merged into one copy" err
	[ -f s/rootfs/etc/keep ] || fail "no merged copy in s/rootfs"
	[ ! -e s/rootfs/etc/gone ] || fail "the whiteout is not honoured in the copy"
	expect_true "again" env CODER_DISABLE_IDMAPPED_MOUNT=true CVM_SUPERVISOR_CONTROL_SOCKET=$PWD/ctl.sock \
		"$CVM" run --network host --image "$REG/test/layered:1" --state "$PWD/s" -- /bin/true 2> err
	expect_grep "using the copy of the image layers made earlier" err
}

# Coder's kubernetes-envbox template's env block (CODER_CPUS and
# CODER_MEMORY as resource_field_ref gives them: a whole CPU count and
# bytes), CODER_INNER_IMAGE a registry reference, and nothing else but the
# state dir the cvm image sets: the workspace starts, the bootstrap (the
# agent's init script) sees the URL and the token.
t_envbox_template() {
	local pid i
	mkdir -p vol && chmod 777 vol
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin CVM_WORKSPACE_STATE="$PWD/s" \
		CVM_SUPERVISOR_CONTROL_SOCKET="$PWD/ctl.sock" \
		CODER_AGENT_TOKEN=tok-4711-secret CODER_AGENT_URL=https://coder.example.com/ \
		CODER_INNER_IMAGE="$REG/test/busybox:1" CODER_INNER_USERNAME=nobody \
		CODER_BOOTSTRAP_SCRIPT='echo "url=$CODER_AGENT_URL token=$CODER_AGENT_TOKEN user=$(id -u)" > /data/agent' \
		CODER_MOUNTS="$PWD/vol:/data" CODER_ADD_FUSE=true CODER_INNER_HOSTNAME=ws-1 \
		CODER_CPUS=1 CODER_MEMORY=2147483648 \
		"$CVM" run -- /bin/sh -c 'hostname > /data/host; test -c /dev/fuse && echo fuse >> /data/host; sleep 1000' \
		> out 2> err &
	pid=$!
	for ((i = 0; i < 200; i++)); do
		[ -s vol/agent ] && [ -s vol/host ] && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM $pid 2>/dev/null
	wait $pid
	expect_eq "the agent's view" "$(cat vol/agent 2>/dev/null)" \
		"url=https://coder.example.com/ token=tok-4711-secret user=65534" || cat err >&2
	expect_eq "hostname, fuse" "$(cat vol/host 2>/dev/null)" "ws-1
fuse"
	expect_grep "workspace ready in" err
	expect_no_grep "tok-4711-secret" err
}

pick() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
for t in run_image layered_image offline_restart image_env check_cached_image \
	forced_copy_of_layers envbox_template; do
	pick "$t" && run_test "$t" "t_$t"
done
finish
