#!/bin/bash
# cvm pull, black-box, against Debian's docker-registry (distribution 2.8)
# on loopback ports: plain HTTP; HTTPS with a CA made here and htpasswd
# Basic auth; a Bearer token endpoint (tests/integration/pull_server.py)
# with blobs redirected to another host. The cache (layers by digest,
# refs/, GC), the pull policies, proxies from the environment, progress
# logs, and bad input: unknown tag, tampered and truncated blobs, a tampered
# manifest, missing or wrong credentials. Credentials never show up in any
# output nor in the cache.
# usage: test_pull.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?build dir}" && pwd)
CVM=$BUILD/cvm
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
. "$HERE/registry.sh"

T=$(mktemp -d /tmp/cvm-pull.XXXXXX)
SRV_PIDS=()
cleanup() {
	local p
	for p in "${SRV_PIDS[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	registry_stop
	rm -rf "$T"
}
trap cleanup EXIT
# retries back off 20 ms, not 500 ms, in the tests (a test-hooks build)
export CVM_DEBUG_PULL_BACKOFF_MS=20
unset http_proxy https_proxy HTTPS_PROXY no_proxy NO_PROXY CODER_IMAGE_PULL_SECRET CODER_EXTRA_CERTS_PATH
# no request may leave through this: nothing listens on port 9 (discard)
DEAD_PROXY=http://127.0.0.1:9

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT
wait_port() {
	local i
	for ((i = 0; i < 200; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	fail "nothing listens on port $1"
}

# pull CACHE ARGS...: cvm pull into CACHE; stdout in ./out, stderr in ./err
pull() {
	local c=$1; shift
	"$CVM" pull --cache-dir "$c" "$@" > out 2> err
}

# digest_of REF: the manifest digest the registry has for REF (skopeo)
digest_of() {
	echo "sha256:$(registry_inspect "$1" --raw | sha256sum | cut -d' ' -f1)"
}

# layers_of REF: the layer digests of REF's manifest, one a line
layers_of() {
	registry_inspect "$1" --raw |
		python3 -c 'import json,sys; [print(l["digest"]) for l in json.load(sys.stdin)["layers"]]'
}

# blob_file DIGEST: its data file in the plain registry's storage
blob_file() {
	local h=${1#sha256:}
	echo "$PLAIN_DIR/data/docker/registry/v2/blobs/sha256/${h:0:2}/$h/data"
}

# nothing_of CACHE DIGEST: no layer dir, no temp dir, no blob left of it
nothing_of() {
	local c=$1 h=${2#sha256:}
	[ ! -e "$c/layers/sha256/$h" ] || fail "layer $h is in the cache"
	! ls "$c/layers/sha256/" | grep -q '\.tmp\.' || fail "a temp dir is left: $(ls "$c/layers/sha256/")"
	! ls "$c/layers/" | grep -q 'partial' || fail "a partial blob is left"
}

echo "# starting registries and pushing test images"
registry_start plain || exit 1
PLAIN=$REG_HOST PLAIN_DIR=$REG_DIR
registry_push_busybox "$PLAIN/test/busybox:1" || exit 1
registry_push_layered "$PLAIN/test/layered:1" || exit 1
registry_push_multiarch "$PLAIN/test/multi:1" || exit 1
registry_start tls-basic || exit 1
TLS=$REG_HOST TLS_CA_DIR=$REG_CA_DIR TLS_AUTH_JSON=$REG_AUTH_JSON TLS_AUTH_FILE=$REG_AUTH_FILE
TLS_USER=$REG_USER TLS_PASS=$REG_PASS
registry_push_busybox "$TLS/test/busybox:1" || exit 1
BUSYBOX_DIGEST=$(digest_of "$PLAIN/test/busybox:1")
BUSYBOX_LAYER=$(layers_of "$PLAIN/test/busybox:1")

t_plain_pull() {
	local h
	expect_true "pull" pull "$PWD/c" "$PLAIN/test/busybox:1" || { cat err >&2; return 1; }
	expect_eq "digest printed" "$(cat out)" "$BUSYBOX_DIGEST"
	h=${BUSYBOX_LAYER#sha256:}
	[ -x "c/layers/sha256/$h/bin/busybox" ] || fail "no bin/busybox in layer $h"
	[ -s "c/manifests/sha256/${BUSYBOX_DIGEST#sha256:}" ] || fail "manifest not cached"
	expect_grep "plain HTTP" err
	expect_grep "layer 1/1 sha256:${h:0:12} [0-9.]+ [KM]iB downloading" err
	expect_grep "layer 1/1 sha256:${h:0:12} .* done .*done=([0-9]+) total=\\1" err
	expect_grep "pulled $PLAIN/test/busybox:1 in [0-9.]+ s: 1 layer, .* downloaded .*pull_ms=[0-9]+" err
	ls c/refs | grep -q 'test%2Fbusybox%3A1' || fail "no refs/ entry: $(ls c/refs)"
}

t_second_pull_downloads_nothing() {
	local h=${BUSYBOX_LAYER#sha256:} ino
	pull "$PWD/c" "$PLAIN/test/busybox:1" || { fail "first pull"; cat err >&2; return 1; }
	ino=$(stat -c %i "c/layers/sha256/$h")
	expect_true "second pull" pull "$PWD/c" "$PLAIN/test/busybox:1"
	expect_grep "layer 1/1 .* cached" err
	expect_grep " 0 B downloaded" err
	expect_no_grep "downloading" err
	expect_eq "layer dir kept" "$(stat -c %i "c/layers/sha256/$h")" "$ino"
}

# A reference too long for a file name once escaped: refs/ holds its hash.
t_long_ref() {
	local ref="$PLAIN/test/$(printf 'a%.0s' {1..190})/b:1"
	registry_push_busybox "$ref" 2>/dev/null || { fail "push"; return 1; }
	expect_true "pull" pull "$PWD/c" "$ref" || { cat err >&2; return 1; }
	ls c/refs | grep -qE '^sha256-[0-9a-f]{64}$' || fail "refs/: $(ls c/refs)"
	expect_true "again" pull "$PWD/c" "$ref"
	expect_grep " 0 B downloaded" err
}

# A digest already cached: no request at all (a proxy that refuses every
# connection would fail any); a tag needs the registry, unless
# --offline-ok or --pull never.
t_policies_and_offline() {
	local ref="$PLAIN/test/busybox@$BUSYBOX_DIGEST"
	pull "$PWD/c" "$ref" || { fail "pull by digest"; cat err >&2; return 1; }
	pull "$PWD/c" "$PLAIN/test/busybox:1" || { fail "pull by tag"; cat err >&2; return 1; }
	expect_true "digest, cached, registry unreachable" \
		env http_proxy=$DEAD_PROXY "$CVM" pull --cache-dir "$PWD/c" "$ref" > out 2> err
	expect_eq "digest" "$(cat out)" "$BUSYBOX_DIGEST"
	expect_false "tag, registry unreachable" \
		env http_proxy=$DEAD_PROXY "$CVM" pull --cache-dir "$PWD/c" "$PLAIN/test/busybox:1" 2> err
	expect_grep "registry $PLAIN: GET /v2/: .*(connect|proxy).*\\(4 attempts\\)" err
	expect_grep "retrying in" err
	expect_true "tag, --offline-ok" \
		env http_proxy=$DEAD_PROXY "$CVM" pull --offline-ok --cache-dir "$PWD/c" "$PLAIN/test/busybox:1" > out 2> err
	expect_eq "offline digest" "$(cat out)" "$BUSYBOX_DIGEST"
	expect_grep "using the cached $PLAIN/test/busybox:1" err
	expect_true "tag, --pull never" \
		env http_proxy=$DEAD_PROXY "$CVM" pull --pull never --cache-dir "$PWD/c" "$PLAIN/test/busybox:1" > out 2> err
	expect_false "--pull always, digest, unreachable" \
		env http_proxy=$DEAD_PROXY "$CVM" pull --pull always --cache-dir "$PWD/c" "$ref" 2> err
	expect_false "never, not cached" pull "$PWD/c" --pull never "$PLAIN/test/layered:1"
	expect_grep "pull .*layered:1: not in the cache .*pull = never" err
	# NO_PROXY lets loopback through the same proxy setting
	expect_true "NO_PROXY" env http_proxy=$DEAD_PROXY NO_PROXY=127.0.0.1 \
		"$CVM" pull --cache-dir "$PWD/c" "$PLAIN/test/layered:1" > out 2> err
}

# The index: the node's architecture (amd64 here) or --platform's; the
# busybox layer they share with test/busybox:1 is not fetched again.
t_index_and_shared_layers() {
	local l
	[ "$(uname -m)" = x86_64 ] || { say "skipped: not x86_64"; return 0; }
	pull "$PWD/c" "$PLAIN/test/busybox:1" || { fail "busybox"; return 1; }
	expect_true "multi" pull "$PWD/c" "$PLAIN/test/multi:1" || { cat err >&2; return 1; }
	expect_grep "layer 1/2 sha256:${BUSYBOX_LAYER:7:12} .* cached" err
	expect_grep "layer 2/2 .* done" err
	l=$(ls -d c/layers/sha256/*/etc/cvm-arch)
	expect_eq "amd64 picked" "$(cat $l)" amd64
	expect_true "arm64" pull "$PWD/c2" --platform linux/arm64 "$PLAIN/test/multi:1"
	expect_eq "arm64 picked" "$(cat c2/layers/sha256/*/etc/cvm-arch)" arm64
	expect_false "s390x" pull "$PWD/c3" --platform linux/s390x "$PLAIN/test/multi:1"
	expect_grep "no linux/s390x manifest \\(it has: linux/arm64, linux/amd64\\)" err
}

# A tag that moves: only the new layers come; the old ones go (GC).
t_moving_tag_and_gc() {
	local ref="$PLAIN/test/moving-$RANDOM:1" old new
	registry_push_busybox "$ref" 2>/dev/null || { fail "push"; return 1; }
	pull "$PWD/c" "$ref" || { fail "pull 1"; cat err >&2; return 1; }
	registry_push_layered "$ref" 2>/dev/null || { fail "push 2"; return 1; }
	expect_true "pull 2" pull "$PWD/c" "$ref" || { cat err >&2; return 1; }
	expect_grep "layer 3/3 .* done" err
	expect_grep "removed 1 unreferenced layer" err
	[ ! -e "c/layers/sha256/${BUSYBOX_LAYER#sha256:}" ] || fail "busybox's layer not collected"
	for new in $(layers_of "$ref"); do
		[ -d "c/layers/sha256/${new#sha256:}" ] || fail "layer $new missing"
	done
	expect_eq "layer dirs" "$(ls c/layers/sha256 | wc -l)" 3
	expect_eq "manifests kept" "$(ls c/manifests/sha256 | wc -l)" 1
	# the layered image's layers: gzip, zstd and plain tar
	old=$(ls -d c/layers/sha256/*/srv/readd)
	[ -n "$old" ] || fail "no srv/readd in any layer"
}

# Two pulls at once into one cache (pods sharing a node's cache): both
# work, each layer ends up whole once, nothing temporary is left.
t_concurrent_pulls() {
	local p1 p2 rc1=0 rc2=0 l
	"$CVM" pull --cache-dir "$PWD/c" "$PLAIN/test/layered:1" > out1 2> err1 & p1=$!
	"$CVM" pull --cache-dir "$PWD/c" "$PLAIN/test/layered:1" > out2 2> err2 & p2=$!
	wait $p1 || rc1=$?
	wait $p2 || rc2=$?
	expect_eq "first" "$rc1" 0
	expect_eq "second" "$rc2" 0
	expect_eq "same digest" "$(cat out1)" "$(cat out2)"
	for l in $(layers_of "$PLAIN/test/layered:1"); do
		[ -d "c/layers/sha256/${l#sha256:}" ] || fail "layer $l missing"
	done
	! ls c/layers/sha256 | grep -q '\.tmp\.' || fail "a temp dir is left: $(ls c/layers/sha256)"
	expect_eq "layer dirs" "$(ls c/layers/sha256 | wc -l)" 3
	[ -s "$(ls -d c/layers/sha256/*/usr/bin/suid)" ] || fail "suid file missing"
}

# Another ref in the same cache keeps its layers through a GC.
t_gc_keeps_other_refs() {
	local ref="$PLAIN/test/moving-$RANDOM:1"
	pull "$PWD/c" "$PLAIN/test/busybox:1" || { fail "busybox"; return 1; }
	registry_push_layered "$ref" 2>/dev/null || { fail "push"; return 1; }
	pull "$PWD/c" "$ref" || { fail "pull"; return 1; }
	registry_push_multiarch "$ref" 2>/dev/null || { fail "push 2"; return 1; }
	expect_true "pull 2" pull "$PWD/c" "$ref"
	[ -d "c/layers/sha256/${BUSYBOX_LAYER#sha256:}" ] || fail "busybox's layer collected"
	expect_grep "removed 3 unreferenced layers" err
}

t_json_logs() {
	CVM_SUPERVISOR_LOG_FORMAT=json pull "$PWD/c" "$PLAIN/test/layered:1" ||
		{ fail "pull"; cat err >&2; return 1; }
	python3 - err <<'PY' || fail "JSON logs"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
done = [l["fields"] for l in lines if l["message"].endswith(" done")]
assert len(done) == 3, done
for f in done:
    assert f["done"] == f["total"] > 0 and f["digest"].startswith("sha256:"), f
prog = [l["fields"] for l in lines if "in progress" in l["message"]]
assert prog and all(0 <= f["done"] <= f["total"] for f in prog), prog
last = lines[-1]
assert last["message"].startswith("pulled ") and last["fields"]["pull_ms"] >= 0, last
PY
}

t_terminal_progress_bar() {
	script -qec "$CVM pull --cache-dir $PWD/c $PLAIN/test/layered:1" /dev/null > tty < /dev/null ||
		{ fail "pull on a terminal"; cat tty >&2; return 1; }
	expect_grep '\[#* *\] +[0-9]+% [0-9.]+ [KM]?i?B / [0-9.]+ [KM]iB' tty
}

# Docker Hub references through a mirror (no network here: docker.io itself
# cannot answer); a mirror that does not answer is skipped with a line.
t_mirrors() {
	local dead
	registry_push_busybox "$PLAIN/library/busybox:mirrored" 2>/dev/null || { fail "push"; return 1; }
	dead=127.0.0.1:$(free_port)
	expect_true "through the mirror" pull "$PWD/c" --mirror "$dead" --mirror "$PLAIN" busybox:mirrored ||
		{ cat err >&2; return 1; }
	expect_eq "digest" "$(cat out)" "$BUSYBOX_DIGEST"
	expect_grep "mirror $dead: .*trying the next" err
	expect_grep "pulled busybox:mirrored in" err
	ls c/refs | grep -q 'docker.io%2Flibrary%2Fbusybox%3Amirrored' || fail "refs/: $(ls c/refs)"
	# a ref of another registry does not go to the mirror
	expect_false "not Hub" pull "$PWD/c2" --mirror "$PLAIN" "$dead/library/busybox:mirrored"
}

t_unknown_tag() {
	expect_false "unknown tag" pull "$PWD/c" "$PLAIN/test/busybox:nope"
	expect_grep "tag nope not found in repo test/busybox of registry $PLAIN \\(MANIFEST_UNKNOWN" err
	expect_false "unknown repo" pull "$PWD/c" "$PLAIN/test/nothing:1"
	expect_grep "not found in repo test/nothing" err
	expect_false "bad ref" pull "$PWD/c" "$PLAIN/Test/x"
	expect_grep "must be lowercase" err
}

# A unique one-layer image, its layer blob changed in the registry's
# storage (same size, then cut): an error naming the digest, nothing of it
# in the cache; once the blob is right again, the pull works.
unique_image() {
	mkdir -p tree/etc && echo "unique $RANDOM $RANDOM $$" > tree/etc/unique &&
	registry_push_dir tree "$1" 2>/dev/null
}

t_tampered_blob() {
	local ref="$PLAIN/test/tamper-$RANDOM:1" layer f size
	unique_image "$ref" || { fail "push"; return 1; }
	layer=$(layers_of "$ref")
	f=$(blob_file "$layer")
	cp "$f" blob.orig
	size=$(stat -c %s "$f")
	printf 'X' | dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc status=none
	expect_false "tampered" pull "$PWD/c" "$ref"
	expect_grep "blob $layer from registry $PLAIN, repo test/tamper-[0-9]+ hashes to sha256:[0-9a-f]{64} .*not used" err
	nothing_of c "$layer"
	ls c/refs | grep -q tamper && fail "a refs/ entry for the failed pull"
	head -c $((size / 2)) blob.orig > "$f"
	expect_false "truncated" pull "$PWD/c" "$ref"
	expect_grep "blob $layer .*: $((size / 2)) bytes, the manifest says $size \\(truncated or changed\\): not used" err
	nothing_of c "$layer"
	cp blob.orig "$f"
	expect_true "repaired" pull "$PWD/c" "$ref"
	[ -s "c/layers/sha256/${layer#sha256:}/etc/unique" ] || fail "not unpacked after the repair"
}

# The registry sends the manifest a tag points to with its digest: bytes
# that do not hash to it are refused.
t_tampered_manifest() {
	local ref="$PLAIN/test/tamperm-$RANDOM:1" d f
	unique_image "$ref" || { fail "push"; return 1; }
	pull "$PWD/c0" "$ref" || { fail "first pull"; return 1; }
	d=$(digest_of "$ref")
	f=$(blob_file "$d")
	sed -i 's/"schemaVersion": *2/"schemaVersion":2 /' "$f"
	expect_false "tampered manifest" pull "$PWD/c" "$ref"
	expect_grep "manifest 1 from registry $PLAIN, repo test/tamperm-[0-9]+ hashes to sha256:[0-9a-f]{64}, not to the Docker-Content-Digest $d" err
	[ ! -e "c/manifests/sha256/${d#sha256:}" ] || fail "the manifest was cached"
	# a cache that has the tag's digest asks only for the digest (HEAD),
	# never for the (now bad) bytes: no GET of the manifest on a restart
	expect_true "cached tag, HEAD only" pull "$PWD/c0" "$ref"
	expect_eq "digest" "$(cat out)" "$d"
}

# The cache's filesystem fills up while the blob downloads, then while it
# unpacks: an error that says so, nothing half-done left, and a pull once
# there is room again works.
t_disk_full() {
	local layer=${BUSYBOX_LAYER#sha256:} size
	mkdir c && mount -t tmpfs -o size=512k tmpfs c || { fail "mount tmpfs"; return 1; }
	# shellcheck disable=SC2064
	trap "umount '$PWD/c'" RETURN
	expect_false "blob does not fit" pull "$PWD/c" "$PLAIN/test/busybox:1"
	expect_grep "layer 1/1: blob sha256:${layer:0:12}: writing what came: No space left on device" err
	nothing_of c "$BUSYBOX_LAYER"
	mount -o remount,size=1600k c || { fail "remount"; return 1; }
	expect_false "layer does not unpack" pull "$PWD/c" "$PLAIN/test/busybox:1"
	expect_grep "layer 1/1 \\(sha256:${layer:0:12}\\).*(No space left|space)" err
	nothing_of c "$BUSYBOX_LAYER"
	ls c/refs | grep -q . && fail "a refs/ entry for a failed pull"
	mount -o remount,size=64m c || { fail "remount"; return 1; }
	expect_true "room again" pull "$PWD/c" "$PLAIN/test/busybox:1"
	[ -x "c/layers/sha256/$layer/bin/busybox" ] || fail "not unpacked"
}

t_tls_basic_auth() {
	local ref="$TLS/test/busybox:1"
	expect_false "no CA" pull "$PWD/c" "$ref"
	expect_grep "certificate|SSL" err
	expect_false "no credentials" pull "$PWD/c" --ca-dir "$TLS_CA_DIR" "$ref"
	expect_grep "401 Unauthorized from registry $TLS for repo test/busybox: set CODER_IMAGE_PULL_SECRET" err
	expect_false "wrong password" env CODER_IMAGE_PULL_SECRET="{\"auths\":{\"$TLS\":{\"username\":\"$TLS_USER\",\"password\":\"nope\"}}}" \
		"$CVM" pull --cache-dir "$PWD/c" --ca-dir "$TLS_CA_DIR" "$ref" > out 2> err
	expect_grep "401 Unauthorized from registry $TLS .*credentials were refused" err
	expect_no_grep "nope" err
	expect_true "secret + CODER_EXTRA_CERTS_PATH" env CODER_IMAGE_PULL_SECRET="$TLS_AUTH_JSON" \
		CODER_EXTRA_CERTS_PATH="$TLS_CA_DIR" "$CVM" pull --cache-dir "$PWD/c" "$ref" > out 2> err ||
		{ cat err >&2; return 1; }
	expect_eq "digest" "$(cat out)" "$BUSYBOX_DIGEST"
	expect_true "--auth-file + --ca-dir" env CVM_SUPERVISOR_LOG_LEVEL=debug \
		"$CVM" pull --cache-dir "$PWD/c2" --auth-file "$TLS_AUTH_FILE" --ca-dir "$TLS_CA_DIR" "$ref" > out 2> err
	expect_grep "layer 1/1 .* done" err
	# the password, and its base64 form, nowhere: not in logs, not in the caches
	for f in err out; do
		expect_no_grep "$TLS_PASS" "$f"
	done
	! grep -rqF -e "$TLS_PASS" -e "$(printf '%s:%s' "$TLS_USER" "$TLS_PASS" | base64 -w0)" c c2 ||
		fail "the password is in the cache"
}

# docker-registry with `auth: token:` on the plain registry's storage, the
# token endpoint, and a front that redirects blobs to "blob storage" on
# another host:port: the registry's Bearer token must not follow.
t_token_auth_and_redirects() {
	local tport rport fport bport d=$PWD user=tok pass="tp-$RANDOM" auth
	tport=$(free_port) rport=$(free_port) fport=$(free_port) bport=$(free_port)
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=cvm-token \
		-keyout token.key -out token.crt 2>/dev/null || { fail "openssl"; return 1; }
	printf '%s\n' 'version: 0.1' 'log:' '  level: error' '  accesslog:' '    disabled: true' \
		'storage:' '  filesystem:' "    rootdirectory: $PLAIN_DIR/data" 'http:' \
		"  addr: 127.0.0.1:$rport" '  secret: cvm-token-test' 'auth:' '  token:' \
		"    realm: http://127.0.0.1:$tport/token" '    service: cvm-test' \
		'    issuer: cvm-test-issuer' "    rootcertbundle: $d/token.crt" > reg.yml
	python3 "$HERE/pull_server.py" token "$tport" token.key token.crt cvm-test-issuer cvm-test \
		"$user" "$pass" "$d/token.log" 2> token.err &
	local p1=$!
	docker-registry serve reg.yml > reg.log 2>&1 &
	local p2=$!
	python3 "$HERE/pull_server.py" front "$fport" "$bport" "127.0.0.1:$rport" "$PLAIN_DIR/data" \
		"$d/blob.log" 2 1 2> front.err &
	local p3=$!
	# shellcheck disable=SC2064
	trap "kill $p1 $p2 $p3 2>/dev/null; wait $p1 $p2 $p3 2>/dev/null" RETURN
	wait_port "$tport" && wait_port "$rport" && wait_port "$fport" && wait_port "$bport" || return 1
	auth=$(printf '%s:%s' "$user" "$pass" | base64 -w0)

	expect_false "anonymous" pull "$PWD/c" "127.0.0.1:$rport/test/busybox:1"
	expect_grep "401 from the token endpoint http://127.0.0.1:$tport/token for registry 127.0.0.1:$rport, repo test/busybox: set CODER_IMAGE_PULL_SECRET" err
	expect_grep "^token none repository:test/busybox:pull" token.log
	expect_true "token" env CODER_IMAGE_PULL_SECRET="{\"auths\":{\"127.0.0.1:$rport\":{\"auth\":\"$auth\"}}}" \
		"$CVM" pull --cache-dir "$PWD/c" "127.0.0.1:$rport/test/busybox:1" > out 2> err ||
		{ cat err reg.log >&2; return 1; }
	expect_eq "digest" "$(cat out)" "$BUSYBOX_DIGEST"
	expect_grep "^token basic-ok repository:test/busybox:pull" token.log
	expect_no_grep "$pass|$auth" err

	expect_true "through the redirecting front" \
		env CODER_IMAGE_PULL_SECRET="{\"auths\":{\"127.0.0.1:$fport\":{\"auth\":\"$auth\"}}}" \
		"$CVM" pull --cache-dir "$PWD/c2" "127.0.0.1:$fport/test/busybox:1" > out 2> err ||
		{ cat err front.err >&2; return 1; }
	expect_grep "^blob $BUSYBOX_LAYER auth=no" blob.log
	# the front's first two manifest answers were 503s: retried
	expect_eq "503s served" "$(grep -c 'manifest 503' blob.log)" 2
	expect_grep "HTTP 503; retrying in [0-9]+ ms" err
	# and the first blob it served stopped halfway: fetched again, whole
	expect_eq "cut blobs" "$(grep -c ' cut$' blob.log)" 1
	expect_grep "blob sha256:[0-9a-f]{12}: .*(closed|partial|transfer).*retrying in" err
	expect_no_grep "auth=yes" blob.log
	[ -x "c2/layers/sha256/${BUSYBOX_LAYER#sha256:}/bin/busybox" ] || fail "not unpacked"
}

# ONLY="a b": run just those tests
pick() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
for t in plain_pull second_pull_downloads_nothing policies_and_offline index_and_shared_layers \
	long_ref moving_tag_and_gc gc_keeps_other_refs concurrent_pulls json_logs terminal_progress_bar mirrors unknown_tag \
	tampered_blob tampered_manifest disk_full tls_basic_auth token_auth_and_redirects; do
	pick "$t" && run_test "$t" "t_$t"
done
finish
