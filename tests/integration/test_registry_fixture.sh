#!/bin/bash
# The test registry fixture (registry.sh) on its own: both kinds of registry
# come up, serve what was pushed (checked with skopeo, curl and an
# independent unpacker, umoci), refuse what they should, and leave no
# process or dir behind. The image puller's tests build on it.
# usage: test_registry_fixture.sh [BUILD_DIR] (not used: no cvm here)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"

# skopeo_copy_local REF DIR: the image at REF as an OCI layout DIR:img
skopeo_copy_local() {
	local args
	args=$(registry_skopeo_args "${1%%/*}" | sed 's/^--/--src-/') || return 1
	# shellcheck disable=SC2046
	skopeo --insecure-policy copy -q $args "docker://$1" "oci:$2:img" >&2
}

json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

t_plain_serves_a_pushed_tree() {
	trap registry_stop EXIT
	registry_start plain || return 1
	expect_eq "kind" "$REG_KIND" plain
	registry_push_busybox "$REG_HOST/test/busybox:1" || return 1
	out=$(registry_inspect "$REG_HOST/test/busybox:1") || return 1
	expect_eq "architecture" "$(json 'd["Architecture"]' <<< "$out")" amd64
	expect_eq "layers" "$(json 'len(d["Layers"])' <<< "$out")" 1
	digest=$(json 'd["Digest"]' <<< "$out")
	# plain HTTP, no credentials: the distribution API as curl sees it
	expect_eq "tags" "$(curl -sf "http://$REG_HOST/v2/test/busybox/tags/list")" \
		'{"name":"test/busybox","tags":["1"]}'
	got=$(curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$REG_HOST/v2/test/busybox/manifests/1" | tr -d '\r' |
		sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
	expect_eq "manifest digest" "$got" "$digest"
	layer=$(json 'd["Layers"][0]' <<< "$out")
	got=$(curl -sfL "http://$REG_HOST/v2/test/busybox/blobs/$layer" | sha256sum | cut -d' ' -f1)
	expect_eq "layer blob" "sha256:$got" "$layer"
	# the tree went in whole: busybox and its links
	curl -sfL "http://$REG_HOST/v2/test/busybox/blobs/$layer" | tar -tz > list || return 1
	grep -qx 'bin/busybox' list || fail "no bin/busybox in the layer"
	grep -qx 'bin/sh' list || fail "no bin/sh in the layer"
	expect_eq "unknown tag" "$(curl -s -o /dev/null -w '%{http_code}' \
		"http://$REG_HOST/v2/test/busybox/manifests/nope")" 404
}

t_tls_basic_needs_the_ca_and_the_password() {
	trap registry_stop EXIT
	registry_start tls-basic || return 1
	url=https://$REG_HOST/v2/_catalog
	registry_push_layered "$REG_HOST/test/layered:v1" || return 1
	expect_eq "catalog" "$(curl -sf -u "$REG_USER:$REG_PASS" --cacert "$REG_CA" "$url")" \
		'{"repositories":["test/layered"]}'
	expect_eq "no password" "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$REG_CA" "$url")" 401
	expect_eq "wrong password" "$(curl -s -o /dev/null -w '%{http_code}' -u "$REG_USER:nope" \
		--cacert "$REG_CA" "$url")" 401
	rc=0; curl -s -o /dev/null -u "$REG_USER:$REG_PASS" "$url" || rc=$?
	expect_eq "without the CA (curl's peer-verification exit)" "$rc" 60
	expect_eq "CA dir" "$(ls "$REG_CA_DIR")" ca.crt
	# the layers keep their compression: gzip, zstd, none
	raw=$(registry_inspect "$REG_HOST/test/layered:v1" --raw) || return 1
	expect_eq "media types" "$(json '" ".join(l["mediaType"].rsplit(".", 1)[1] for l in d["layers"])' <<< "$raw")" \
		"tar+gzip tar+zstd tar"
	# the credentials as CODER_IMAGE_PULL_SECRET / CODER_DOCKER_CONFIG carry them
	expect_eq "auth" "$(json "__import__('base64').b64decode(d['auths']['$REG_HOST']['auth']).decode()" \
		<<< "$REG_AUTH_JSON")" "$REG_USER:$REG_PASS"
	expect_eq "auth file" "$(cat "$REG_AUTH_FILE")" "$REG_AUTH_JSON"
	skopeo --insecure-policy inspect --cert-dir "$REG_CA_DIR" --authfile "$REG_AUTH_FILE" \
		"docker://$REG_HOST/test/layered:v1" > /dev/null || fail "skopeo with the auth file"
	expect_false "skopeo without credentials" skopeo --insecure-policy inspect \
		--cert-dir "$REG_CA_DIR" --no-creds "docker://$REG_HOST/test/layered:v1" 2>/dev/null
}

# The Bearer dance: the registry's 401 names the token server; a token got
# with the password opens the repository, one got without opens nothing.
t_tls_token_bearer_dance() {
	trap registry_stop EXIT
	registry_start tls-token || return 1
	registry_push_busybox "$REG_HOST/test/bb:1" || return 1
	registry_inspect "$REG_HOST/test/bb:1" > /dev/null || fail "skopeo inspect with a token"
	grep -q '^GET user=cvmtest scope=repository:test/bb:pull -> 200$' "$REG_TOKEN_LOG" ||
		fail "no token request for the pull:" || sed 's/^/      | /' "$REG_TOKEN_LOG" >&2
	m=https://$REG_HOST/v2/test/bb/manifests/1
	accept='Accept: application/vnd.oci.image.manifest.v1+json'
	hdr=$(curl -s -o /dev/null -D - --cacert "$REG_CA" "$m" | tr -d '\r')
	expect_eq "status" "$(head -1 <<< "$hdr" | cut -d' ' -f2)" 401
	realm=$(sed -n 's/^[Ww]ww-[Aa]uthenticate: Bearer realm="\([^"]*\)".*/\1/p' <<< "$hdr")
	grep -q 'service="cvm-test-registry",scope="repository:test/bb:pull"' <<< "$hdr" ||
		fail "challenge: $hdr"
	[ -n "$realm" ] || return 1
	q="service=cvm-test-registry&scope=repository:test/bb:pull"
	tok=$(curl -sf --cacert "$REG_CA" -u "$REG_USER:$REG_PASS" "$realm?$q" | json 'd["token"]') ||
		return 1
	expect_eq "with the token" "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$REG_CA" \
		-H "$accept" -H "Authorization: Bearer $tok" "$m")" 200
	anon=$(curl -sf --cacert "$REG_CA" "$realm?$q" | json 'd["token"]') || return 1
	expect_eq "with an anonymous token" "$(curl -s -o /dev/null -w '%{http_code}' \
		--cacert "$REG_CA" -H "$accept" -H "Authorization: Bearer $anon" "$m")" 401
	expect_eq "token, wrong password" "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$REG_CA" \
		-u "$REG_USER:nope" "$realm?$q")" 401
	expect_eq "a forged token" "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$REG_CA" \
		-H "$accept" -H "Authorization: Bearer ${tok%.*}.AAAA" "$m")" 401
	pids=("${REG_PIDS[@]}")
	expect_eq "processes (registry, token server)" "${#pids[@]}" 2
	registry_stop
	for pid in "${pids[@]}"; do
		expect_false "$pid still runs" kill -0 "$pid" 2>/dev/null
	done
}

# What registry.sh says the layered image holds, as umoci unpacks it.
t_layered_image_unpacks_as_documented() {
	trap registry_stop EXIT
	registry_start plain || return 1
	registry_push_layered "$REG_HOST/test/layered:zstd" || return 1
	registry_push_layered "$REG_HOST/test/layered:gz" gz,gz,tar || return 1
	# the same trees, differently compressed: the same diff_ids
	a=$(registry_inspect "$REG_HOST/test/layered:zstd" --config | json 'd["rootfs"]["diff_ids"]')
	b=$(registry_inspect "$REG_HOST/test/layered:gz" --config | json 'd["rootfs"]["diff_ids"]')
	expect_eq "diff_ids" "$a" "$b"
	skopeo_copy_local "$REG_HOST/test/layered:gz" oci || return 1
	umoci unpack --image oci:img bundle > /dev/null || return 1
	r=bundle/rootfs
	expect_true "busybox" test -x $r/bin/busybox
	expect_eq "etc/keep" "$(cat $r/etc/keep)" v3
	expect_false "etc/gone deleted" test -e $r/etc/gone
	expect_false "opt/olddir deleted" test -e $r/opt/olddir
	expect_eq "opt/data replaced (opaque)" "$(ls -A $r/opt/data)" new
	expect_eq "srv/readd back" "$(cat $r/srv/readd)" v3
	expect_eq "hard links" "$(stat -c %i $r/srv/h1)" "$(stat -c %i $r/srv/h2)"
	expect_eq "symlink" "$(readlink $r/srv/link)" h1
	expect_eq "setuid" "$(stat -c %a $r/usr/bin/suid)" 4755
	expect_eq "capability" "$(getcap $r/usr/bin/cap | sed 's/.* //')" cap_net_bind_service=ep
	expect_eq "owner, mode" "$(stat -c '%u:%g %a' $r/home/u/f)" "1000:1000 600"
	expect_eq "long name" "$(cat $r/srv/long/$(printf 'n%.0s' {1..150}))" long
	expect_eq "device" "$(stat -c '%F %t:%T' $r/dev/testnull)" "character special file 1:3"
}

t_multiarch_index_lists_both() {
	trap registry_stop EXIT
	registry_start plain || return 1
	registry_push_multiarch "$REG_HOST/test/multi:latest" || return 1
	raw=$(registry_inspect "$REG_HOST/test/multi:latest" --raw) || return 1
	expect_eq "index" "$(json 'd["mediaType"]' <<< "$raw")" application/vnd.oci.image.index.v1+json
	expect_eq "platforms" "$(json '" ".join(m["platform"]["architecture"] for m in d["manifests"])' \
		<<< "$raw")" "arm64 amd64"
	for arch in arm64 amd64; do
		got=$(registry_inspect "$REG_HOST/test/multi:latest" --override-arch $arch |
			json 'd["Architecture"]')
		expect_eq "$arch image" "$got" $arch
	done
	# each image's own layer says which it is
	amd=$(json '[m["digest"] for m in d["manifests"]][1]' <<< "$raw")
	skopeo_copy_local "$REG_HOST/test/multi@$amd" oci || return 1
	umoci unpack --image oci:img bundle > /dev/null || return 1
	expect_eq "cvm-arch" "$(cat bundle/rootfs/etc/cvm-arch)" amd64
}

t_two_at_once_and_stop_cleans_up() {
	registry_start plain || return 1
	p1=$REG_HOST
	registry_start tls-basic || return 1
	p2=$REG_HOST
	[ "$p1" != "$p2" ] || fail "both on $p1"
	pids=("${REG_PIDS[@]}") dirs=("${REG_DIRS[@]}")
	expect_eq "processes" "${#pids[@]}" 2
	registry_push_dir /etc/apt "$p1/test/apt:1" || return 1   # makes the images' work dir
	work=$REG_WORK
	expect_true "work dir" test -d "$work"
	registry_stop
	for pid in "${pids[@]}"; do
		expect_false "registry $pid still runs" kill -0 "$pid" 2>/dev/null
	done
	for d in "${dirs[@]}" "$work"; do
		expect_false "$d left behind" test -e "$d"
	done
	expect_false "plain still answers" curl -s -o /dev/null "http://$p1/v2/"
	registry_stop    # twice is fine
	expect_eq "bad kind" "$(registry_start nope 2>&1; echo $?)" \
		"$(printf '    registry: unknown kind '\''nope'\''\n2')"
}

run_test plain_serves_a_pushed_tree t_plain_serves_a_pushed_tree
run_test tls_basic_needs_the_ca_and_the_password t_tls_basic_needs_the_ca_and_the_password
run_test tls_token_bearer_dance t_tls_token_bearer_dance
run_test layered_image_unpacks_as_documented t_layered_image_unpacks_as_documented
run_test multiarch_index_lists_both t_multiarch_index_lists_both
run_test two_at_once_and_stop_cleans_up t_two_at_once_and_stop_cleans_up
finish
