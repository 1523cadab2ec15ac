# Test registries and test images for the image puller's tests (issue 17):
# Debian's docker-registry (distribution 2.8) on a free loopback port, with
# its own config and storage under a temp dir, and images pushed to it with
# skopeo. Nothing leaves the machine. Sourced by bash tests; needs what
# scripts/deps installs (docker-registry, skopeo, umoci, openssl,
# apache2-utils, curl, zstd, libcap2-bin, python3).
#
#   registry_start plain|tls-basic
#       Start a registry. Sets REG_HOST (127.0.0.1:PORT), REG_KIND, REG_DIR.
#       tls-basic (HTTPS with a CA made here, htpasswd Basic auth) also sets
#       REG_CA (the CA's PEM file), REG_CA_DIR (a dir holding only it: what
#       CODER_EXTRA_CERTS_PATH or [image] ca_dir takes), REG_USER, REG_PASS,
#       REG_AUTH_JSON (a docker config JSON with "auths" for REG_HOST: what
#       CODER_IMAGE_PULL_SECRET takes) and REG_AUTH_FILE (the same as a file:
#       CODER_DOCKER_CONFIG, [image] auth_file). Several may run at once; the
#       variables describe the last one started (save them before the next).
#   registry_stop
#       Stop every registry this shell started (by PID) and remove its dir
#       and the images' work dir. Safe to call twice; call it from an EXIT
#       trap of the shell (or test subshell) that started them.
#   registry_skopeo_args HOST
#       The skopeo TLS/credential options for that registry, one per line
#       (--tls-verify=false, or --cert-dir and --creds); with DEST=1, the
#       --dest-* forms. registry_inspect REF [skopeo inspect options] uses it.
#   registry_layer DIR OUT
#       A layer of DIR's contents: GNU tar, pax format, numeric owners, and
#       the security.capability xattr; OUT's suffix picks the compression
#       (.tar, .tar.gz, .tar.zst). Whiteouts are files named .wh.NAME and
#       .wh..wh..opq in DIR, as in the layer.
#   registry_push_layout LAYOUT:TAG REF [--all]
#       Copy an OCI layout's image (or, with --all, an index and every image
#       in it) to REF, a docker reference on a started registry; the blobs
#       keep their digests and compression.
#   registry_push_dir DIR REF [--arch ARCH]
#       A one-layer (gzip) image of DIR's tree, pushed to REF.
#   registry_push_busybox REF      the busybox rootfs (scripts/rootfs), one layer
#   registry_push_layered REF [C1,C2,C3]
#                                  the multi-layer image (registry_build_layered)
#   registry_push_multiarch REF    the two-architecture index (registry_build_multiarch)
#   registry_build_layered LAYOUT TAG [C1,C2,C3] / registry_build_multiarch LAYOUT TAG
#       Build those into an OCI layout (for skopeo, umoci unpack, or a test
#       that pushes a variant). What they hold is written next to them below.
#       C1,C2,C3: each layer's compression, gz, zst or tar (default
#       gz,zst,tar). umoci 0.4.7 cannot unpack zstd layers: compare with
#       umoci's unpack of the gz,gz,tar variant (the same trees).
#
# Images are OCI layouts assembled by tests/integration/oci_layout.py from
# layers GNU tar makes: umoci 0.4.7 (Debian 12) writes layers without the tar
# end-of-archive blocks, which GNU tar and Python's tarfile reject. umoci
# still serves as the independent unpacker tests compare with.

REG_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REG_OCI_LAYOUT="$REG_SRC/tests/integration/oci_layout.py"
REG_PIDS=()
REG_DIRS=()
REG_WORK=""
declare -gA REG_INFO=()      # HOST -> "plain" or "tls CA_DIR USER:PASS"

_reg_say() { printf '    registry: %s\n' "$*" >&2; }

_reg_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# _reg_tls DIR: a CA and a server certificate for 127.0.0.1 / localhost.
_reg_tls() {
	local d=$1
	mkdir -p "$d/ca" || return 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj "/CN=cvm test CA $$" -keyout "$d/ca.key" -out "$d/ca/ca.crt" 2>/dev/null &&
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-subj "/CN=127.0.0.1" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null &&
	printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'basicConstraints=CA:FALSE' \
		'extendedKeyUsage=serverAuth' > "$d/server.ext" &&
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca/ca.crt" -CAkey "$d/ca.key" \
		-CAcreateserial -days 2 -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
}

registry_start() {
	local kind=${1:?usage: registry_start plain|tls-basic} dir port scheme=http i code
	case $kind in plain|tls-basic) ;; *) _reg_say "unknown kind '$kind'"; return 2 ;; esac
	dir=$(mktemp -d /tmp/cvm-registry.XXXXXX) || return 1
	REG_DIRS+=("$dir")
	port=$(_reg_free_port) || return 1
	mkdir "$dir/data"
	{
		printf '%s\n' 'version: 0.1' 'log:' '  level: error' '  accesslog:' '    disabled: true' \
			'storage:' '  filesystem:' "    rootdirectory: $dir/data" '  delete:' \
			'    enabled: true' 'http:' "  addr: 127.0.0.1:$port" "  secret: cvm-test-$RANDOM"
	} > "$dir/config.yml"
	REG_CA="" REG_CA_DIR="" REG_USER="" REG_PASS="" REG_AUTH_JSON="" REG_AUTH_FILE=""
	if [ "$kind" = tls-basic ]; then
		scheme=https
		_reg_tls "$dir" || { _reg_say "openssl failed"; return 1; }
		REG_USER=cvmtest REG_PASS="pw-$RANDOM$RANDOM"
		htpasswd -Bbn "$REG_USER" "$REG_PASS" > "$dir/htpasswd" 2>/dev/null || return 1
		printf '%s\n' '  tls:' "    certificate: $dir/server.crt" "    key: $dir/server.key" \
			'auth:' '  htpasswd:' '    realm: cvm-test' "    path: $dir/htpasswd" \
			>> "$dir/config.yml"
		REG_CA=$dir/ca/ca.crt REG_CA_DIR=$dir/ca
		REG_AUTH_JSON=$(printf '{"auths":{"127.0.0.1:%s":{"username":"%s","password":"%s","auth":"%s"}}}' \
			"$port" "$REG_USER" "$REG_PASS" "$(printf '%s:%s' "$REG_USER" "$REG_PASS" | base64 -w0)")
		REG_AUTH_FILE=$dir/config.json
		printf '%s\n' "$REG_AUTH_JSON" > "$REG_AUTH_FILE"
		REG_INFO[127.0.0.1:$port]="tls $REG_CA_DIR $REG_USER:$REG_PASS"
	else
		REG_INFO[127.0.0.1:$port]=plain
	fi
	docker-registry serve "$dir/config.yml" > "$dir/log" 2>&1 &
	REG_PIDS+=($!)
	echo $! > "$dir/pid"
	REG_HOST=127.0.0.1:$port REG_KIND=$kind REG_DIR=$dir
	# Up when /v2/ answers: 200 (plain) or 401 (asks for credentials).
	for ((i = 0; i < 200; i++)); do
		code=$(curl -s -o /dev/null -w '%{http_code}' ${REG_CA:+--cacert "$REG_CA"} \
			"$scheme://$REG_HOST/v2/" 2>/dev/null)
		case $code in 200|401) return 0 ;; esac
		kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
		sleep 0.05
	done
	_reg_say "docker-registry ($kind) did not come up on $REG_HOST:"
	sed 's/^/      | /' "$dir/log" >&2
	return 1
}

registry_stop() {
	local pid i
	for pid in "${REG_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || continue
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	REG_PIDS=()
	for i in "${REG_DIRS[@]}" $REG_WORK; do
		rm -rf "$i"
	done
	REG_DIRS=() REG_WORK="" REG_INFO=()
}

# A fresh dir under REG_WORK, in REG_W (not echoed: REG_WORK must be set in
# this shell, not in a $(...) subshell, for registry_stop to remove it).
_reg_work() {
	[ -n "$REG_WORK" ] || REG_WORK=$(mktemp -d /tmp/cvm-registry-images.XXXXXX) || return 1
	REG_W=$(mktemp -d "$REG_WORK/XXXXXX")
}

registry_skopeo_args() {
	local host=$1 info pre=""
	info=${REG_INFO[$host]:-}
	[ -n "$info" ] || { _reg_say "$host is not a registry started here"; return 1; }
	[ "${DEST:-}" = 1 ] && pre=dest-
	if [ "$info" = plain ]; then
		echo "--${pre}tls-verify=false"
	else
		set -- $info
		printf '%s\n' "--${pre}cert-dir=$2" "--${pre}creds=$3"
	fi
}

registry_inspect() {
	local ref=$1 args; shift
	args=$(registry_skopeo_args "${ref%%/*}") || return 1
	# shellcheck disable=SC2046 # one option per line, no blanks in them
	skopeo --insecure-policy inspect $args "$@" "docker://$ref"
}

registry_layer() {
	local dir=$1 out=$2 tarf
	case $out in *.tar|*.tar.gz|*.tar.zst) ;; *) _reg_say "layer $out: .tar, .tar.gz or .tar.zst"; return 2 ;; esac
	tarf=${out%.gz}; tarf=${tarf%.zst}
	# Top-level names, not "./": as docker and buildkit write layers.
	(cd "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%P\0' | LC_ALL=C sort -z) |
		tar -C "$dir" --null -T - -cf "$tarf" --format=pax --numeric-owner --sort=name \
			--xattrs --xattrs-include=security.capability --mtime=@1700000000 \
			--pax-option=delete=atime,delete=ctime || return 1
	case $out in
	*.gz) gzip -n -9 -c "$tarf" > "$out" && rm -f "$tarf" ;;
	*.zst) zstd -q -19 --rm -f "$tarf" -o "$out" ;;
	esac
}

registry_push_layout() {
	local src=$1 ref=$2 all=() args
	[ "${3:-}" = --all ] && all=(--all)
	args=$(DEST=1 registry_skopeo_args "${ref%%/*}") || return 1
	# shellcheck disable=SC2046
	skopeo --insecure-policy copy -q "${all[@]}" --preserve-digests $args \
		"oci:$src" "docker://$ref" >&2
}

registry_push_dir() {
	local dir=$1 ref=$2 arch=amd64 w
	[ "${3:-}" = --arch ] && arch=$4
	_reg_work || return 1
	w=$REG_W
	registry_layer "$dir" "$w/layer.tar.gz" &&
	python3 "$REG_OCI_LAYOUT" image "$w/oci" img --arch "$arch" "$w/layer.tar.gz" > /dev/null &&
	registry_push_layout "$w/oci:img" "$ref"
}

registry_push_busybox() {
	local w
	_reg_work || return 1
	w=$REG_W
	"$REG_SRC/scripts/rootfs" "$w/rootfs" && registry_push_dir "$w/rootfs" "$1"
}

# The multi-layer image, on the busybox rootfs, each layer compressed its
# own way (by default; the third argument changes it):
#   1 (gzip)  busybox; etc/keep "v1", etc/gone, opt/olddir/f, opt/data/old1,
#             opt/data/sub/old2, srv/readd "v1"
#   2 (zstd)  etc/.wh.gone (a file deleted), opt/.wh.olddir (a dir deleted),
#             opt/data/.wh..wh..opq + opt/data/new (the dir replaced: only
#             "new" is left), srv/.wh.readd; srv/h1 + srv/h2 (hard links),
#             srv/link -> h1, usr/bin/suid (mode 4755), usr/bin/cap
#             (security.capability cap_net_bind_service=ep), home/u/f owned
#             1000:1000 mode 0600, a 150-character name under srv/long/,
#             dev/testnull (char 1:3: device nodes are for the unpacker to
#             make or keep out)
#   3 (plain) srv/readd "v3" (back after its whiteout), etc/keep "v3"
registry_build_layered() {
	local layout=$1 tag=$2 comp=${3:-gz,zst,tar} w long c e=()
	for c in ${comp//,/ }; do
		case $c in
		gz|zst) e+=("tar.$c") ;;
		tar) e+=(tar) ;;
		*) _reg_say "layer compression '$c': gz, zst or tar"; return 2 ;;
		esac
	done
	[ ${#e[@]} = 3 ] || { _reg_say "three layer compressions, not '$comp'"; return 2; }
	_reg_work || return 1
	w=$REG_W
	"$REG_SRC/scripts/rootfs" "$w/l1" || return 1
	mkdir -p "$w/l1/opt/olddir" "$w/l1/opt/data/sub" "$w/l1/srv" &&
	echo v1 > "$w/l1/etc/keep" && echo gone > "$w/l1/etc/gone" &&
	echo f > "$w/l1/opt/olddir/f" && echo 1 > "$w/l1/opt/data/old1" &&
	echo 2 > "$w/l1/opt/data/sub/old2" && echo v1 > "$w/l1/srv/readd" || return 1

	mkdir -p "$w/l2/etc" "$w/l2/opt/data" "$w/l2/srv/long" "$w/l2/usr/bin" "$w/l2/home/u" \
		"$w/l2/dev" || return 1
	: > "$w/l2/etc/.wh.gone" && : > "$w/l2/opt/.wh.olddir" &&
	: > "$w/l2/opt/data/.wh..wh..opq" && echo new > "$w/l2/opt/data/new" &&
	: > "$w/l2/srv/.wh.readd" &&
	echo linked > "$w/l2/srv/h1" && ln "$w/l2/srv/h1" "$w/l2/srv/h2" &&
	ln -s h1 "$w/l2/srv/link" &&
	printf '#!/bin/sh\necho suid\n' > "$w/l2/usr/bin/suid" && chmod 4755 "$w/l2/usr/bin/suid" &&
	printf '#!/bin/sh\necho cap\n' > "$w/l2/usr/bin/cap" && chmod 755 "$w/l2/usr/bin/cap" &&
	setcap cap_net_bind_service+ep "$w/l2/usr/bin/cap" &&
	echo mine > "$w/l2/home/u/f" && chmod 600 "$w/l2/home/u/f" &&
	chown -R 1000:1000 "$w/l2/home/u" &&
	mknod "$w/l2/dev/testnull" c 1 3 || return 1
	long=$(printf 'n%.0s' {1..150})
	echo long > "$w/l2/srv/long/$long" || return 1

	mkdir -p "$w/l3/srv" "$w/l3/etc" && echo v3 > "$w/l3/srv/readd" && echo v3 > "$w/l3/etc/keep" ||
		return 1
	registry_layer "$w/l1" "$w/1.${e[0]}" && registry_layer "$w/l2" "$w/2.${e[1]}" &&
	registry_layer "$w/l3" "$w/3.${e[2]}" &&
	python3 "$REG_OCI_LAYOUT" image "$layout" "$tag" --cmd /bin/sh \
		"$w/1.${e[0]}" "$w/2.${e[1]}" "$w/3.${e[2]}" > /dev/null
}

registry_push_layered() {
	local w
	_reg_work || return 1
	w=$REG_W
	registry_build_layered "$w/oci" layered "${2:-}" && registry_push_layout "$w/oci:layered" "$1"
}

# The two-architecture index: arm64 listed first, then amd64, each the
# busybox layer (shared) and one of its own with /etc/cvm-arch holding its
# architecture's name, so a test sees which one the puller chose.
registry_build_multiarch() {
	local layout=$1 tag=$2 w arch
	_reg_work || return 1
	w=$REG_W
	"$REG_SRC/scripts/rootfs" "$w/base" && registry_layer "$w/base" "$w/base.tar.gz" || return 1
	for arch in arm64 amd64; do
		mkdir -p "$w/$arch/etc" && echo "$arch" > "$w/$arch/etc/cvm-arch" &&
		registry_layer "$w/$arch" "$w/$arch.tar.gz" &&
		python3 "$REG_OCI_LAYOUT" image "$layout" "$tag-$arch" --arch "$arch" \
			"$w/base.tar.gz" "$w/$arch.tar.gz" > /dev/null || return 1
	done
	python3 "$REG_OCI_LAYOUT" index "$layout" "$tag" "$tag-arm64" "$tag-amd64" > /dev/null
}

registry_push_multiarch() {
	local w
	_reg_work || return 1
	w=$REG_W
	registry_build_multiarch "$w/oci" multi && registry_push_layout "$w/oci:multi" "$1" --all
}
