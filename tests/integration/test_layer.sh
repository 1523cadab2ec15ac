#!/bin/bash
# Image layers (image/layer.c) and the layered workspace rootfs
# (runtime/workspace.c), driven by tests/layer/layertool until `cvm run`
# takes an image's layers.
#  - An OCI image made with umoci from trees this test builds (every file
#    type, owners, setuid, security.capability and user.* xattrs, hard
#    links, long names; later layers delete files, replace dirs, turn a
#    file into a dir and back, an opaque insert): its layers applied in
#    order by cvm (APPLY mode), and stacked in OVERLAY mode under a
#    read-only kernel overlay, are compared file by file with what
#    `umoci unpack` makes of the image.
#  - A workspace started from three layer dirs sees the whiteout, the
#    opaque dir and the layer's ids shifted; the same through the copy
#    path; 100 layers (past one lowerdir option); 501 refused.
# usage: test_layer.sh BUILD_DIR
. "$(dirname "$0")/workspace.sh" "$1"
TOOL=$BUILD/tests/layer/layertool
[ -x "$TOOL" ] || { echo "no $TOOL (built only with libarchive)"; exit 1; }
command -v umoci >/dev/null || { echo "umoci missing: run scripts/deps"; exit 1; }

# treecmp A B: the trees under A and B hold the same entries: type, mode,
# owner, size, sha256, xattrs, link target, device numbers, and hard link
# groups. mtimes are not compared (umoci and cvm both keep them; a dir's
# changes with whiteouts applied). Prints the differences.
treecmp() {
	python3 - "$1" "$2" <<'EOF'
import hashlib, os, stat, sys

def scan(top):
    out, inodes = {}, {}
    for d, dirs, files in os.walk(top):
        names = dirs + files
        if d == top:
            names = names + ['.']
        for n in names:
            p = os.path.join(d, n) if n != '.' else top
            rel = os.path.relpath(p, top)
            st = os.lstat(p)
            e = {'type': stat.S_IFMT(st.st_mode), 'mode': oct(st.st_mode & 0o7777),
                 'uid': st.st_uid, 'gid': st.st_gid}
            if stat.S_ISREG(st.st_mode):
                e['size'] = st.st_size
                with open(p, 'rb') as f:
                    e['sha256'] = hashlib.sha256(f.read()).hexdigest()
                inodes.setdefault(st.st_ino, []).append(rel)
            if stat.S_ISLNK(st.st_mode):
                e['target'] = os.readlink(p)
            else:
                e['xattrs'] = {x: os.getxattr(p, x, follow_symlinks=False).hex()
                               for x in sorted(os.listxattr(p, follow_symlinks=False))
                               if not x.startswith('trusted.overlay.')}
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                e['rdev'] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            out[rel] = e
    for group in inodes.values():
        for rel in group:
            out[rel]['links'] = sorted(group)
    return out

a, b = scan(sys.argv[1]), scan(sys.argv[2])
bad = 0
for rel in sorted(set(a) | set(b)):
    if a.get(rel) != b.get(rel):
        bad += 1
        print(f"  {rel}:\n    {sys.argv[1]}: {a.get(rel)}\n    {sys.argv[2]}: {b.get(rel)}")
print(f"{len(a)} entries, {bad} differ")
sys.exit(1 if bad else 0)
EOF
}

# has LINE: ./out contains LINE exactly
has() { grep -qxF -- "$1" out || { fail "missing '$1' in output:"; sed 's/^/      | /' out >&2; return 1; }; }

# VFS_CAP_REVISION_2 | effective, cap_net_raw permitted
CAP_HEX=0100000200200000000000000000000000000000

# The first tree: a bit of everything.
make_tree1() {
	local r=$1 long
	mkdir -p "$r"/{etc,usr/bin,home/u,tmp,opt/app/sub,var/old,var/old2,becomesfile/in,run,usr/share/doc/pkg}
	echo root:x:0:0 > "$r/etc/passwd"
	echo "to be removed" > "$r/etc/removed"
	printf 'su\n' > "$r/usr/bin/su"; chmod 4755 "$r/usr/bin/su"
	printf 'wall\n' > "$r/usr/bin/wall"; chgrp 5 "$r/usr/bin/wall"; chmod 2755 "$r/usr/bin/wall"
	printf 'ping\n' > "$r/usr/bin/ping"; chmod 755 "$r/usr/bin/ping"
	python3 -c "import os,sys; os.setxattr(sys.argv[1], 'security.capability', bytes.fromhex('$CAP_HEX'))" "$r/usr/bin/ping"
	echo note > "$r/etc/noted"
	python3 -c "import os,sys; os.setxattr(sys.argv[1], 'user.origin', b'cvm-test')" "$r/etc/noted"
	echo mine > "$r/home/u/file"; chown -R 1000:1000 "$r/home/u"; chmod 700 "$r/home/u"
	chmod 1777 "$r/tmp"
	ln -s ../etc/passwd "$r/usr/bin/rel-link"
	ln -s /etc/passwd "$r/usr/bin/abs-link"
	ln "$r/usr/bin/su" "$r/usr/bin/su-hard"
	mkfifo "$r/run/fifo"
	for f in a b sub/c; do echo "$f" > "$r/opt/app/$f"; done
	echo x > "$r/var/old/x"; echo y > "$r/var/old/y"; echo z > "$r/var/old2/z"
	echo in > "$r/becomesfile/in/f"; echo file > "$r/becomesdir"
	echo doc > "$r/usr/share/doc/pkg/README"
	long=$r/usr/share/$(printf 'd%.0s' $(seq 120))/$(printf 'n%.0s' $(seq 150))
	mkdir -p "$(dirname "$long")"; echo long > "$long"
}

# The second: deletions and replacements on top of the first.
change_tree2() {
	local r=$1
	rm "$r/var/old/x"; rm -r "$r/var/old2"
	rm -r "$r/opt/app"; mkdir -p "$r/opt/app"; echo new > "$r/opt/app/new"
	rm -r "$r/becomesfile"; echo now-a-file > "$r/becomesfile"
	rm "$r/becomesdir"; mkdir "$r/becomesdir"; echo inside > "$r/becomesdir/f"
	chmod 600 "$r/etc/passwd"; chown 7:8 "$r/etc/noted"
	echo two > "$r/etc/two"; ln "$r/etc/two" "$r/etc/two-hard"
	echo "su v2" > "$r/usr/bin/su"; chmod 4750 "$r/usr/bin/su"
}

# An OCI layout ./img:t with the layers above: two repacks and a raw tar.
make_image() {
	umoci init --layout img && umoci new --image img:t &&
		umoci unpack --image img:t b1 >/dev/null && make_tree1 b1/rootfs &&
		umoci repack --image img:t b1 && rm -rf b1 &&
		umoci unpack --image img:t b2 >/dev/null && change_tree2 b2/rootfs &&
		umoci repack --image img:t b2 && rm -rf b2 &&
		make_tar4 && umoci raw add-layer --image img:t l4.tar
}

# A last layer by GNU tar (its long-name extension, no compression), added
# verbatim: an opaque dir and a whiteout. (umoci 0.4.7's `insert` writes
# these as a truncated tar, so it is not used.)
make_tar4() {
	local long
	mkdir -p t4/usr/share/doc t4/etc && echo replaced > t4/usr/share/doc/NEW &&
		touch t4/usr/share/doc/.wh..wh..opq t4/etc/.wh.removed &&
		long=t4/usr/share/doc/$(printf 'g%.0s' $(seq 130))/$(printf 'h%.0s' $(seq 140)) &&
		mkdir -p "$(dirname "$long")" && echo gnu-long > "$long" &&
		tar --format=gnu -C t4 -cf l4.tar usr etc
}

# The layer blobs of img:t, bottom first, one path a line.
image_layers() {
	python3 - <<'EOF'
import json
idx = json.load(open('img/index.json'))
m = next(x for x in idx['manifests'] if x.get('annotations', {}).get('org.opencontainers.image.ref.name') == 't')
man = json.load(open('img/blobs/' + m['digest'].replace(':', '/')))
for l in man['layers']:
    print('img/blobs/' + l['digest'].replace(':', '/'))
EOF
}

t_apply_matches_umoci() {
	make_image >/dev/null || { fail "building the image with umoci failed"; return 1; }
	mapfile -t layers < <(image_layers)
	expect_eq "layer count" "${#layers[@]}" 3
	umoci unpack --image img:t ref >/dev/null || { fail "umoci unpack"; return 1; }
	mkdir mine
	for l in "${layers[@]}"; do
		"$TOOL" unpack apply "$l" mine > stats || { fail "unpack $l: $(cat stats)"; return 1; }
	done
	treecmp ref/rootfs mine > cmp || { fail "cvm's tree differs from umoci's:"; cat cmp >&2; return 1; }
	# What the comparison rests on really is there.
	expect_eq "setuid kept" "$(stat -c %a mine/usr/bin/su)" 4750
	expect_eq "hard link kept" "$(stat -c %h mine/usr/bin/su-hard)" 2
	expect_eq "capability kept" "$(python3 -c "import os; print(os.getxattr('mine/usr/bin/ping','security.capability').hex())")" $CAP_HEX
	expect_false "whiteout applied" test -e mine/var/old/x
	expect_false "opaque applied" test -e mine/usr/share/doc/pkg
	expect_eq "the opaque dir's new content" "$(cat mine/usr/share/doc/NEW)" replaced
	expect_false "whiteout of the last layer" test -e mine/etc/removed
	expect_eq "replaced dir" "$(ls mine/opt/app)" new
	expect_eq "owner kept" "$(stat -c %u:%g mine/home/u/file)" 1000:1000
	# flatten = the same
	mkdir flat
	"$TOOL" flatten flat "${layers[@]}" >/dev/null || fail "flatten"
	treecmp ref/rootfs flat > cmp || { fail "flatten differs from umoci:"; cat cmp >&2; }
}

# OVERLAY mode: each layer its own dir, stacked by the kernel, reads the
# same as umoci's flattened tree.
t_overlay_stack_matches_umoci() {
	make_image >/dev/null || { fail "building the image with umoci failed"; return 1; }
	mapfile -t layers < <(image_layers)
	umoci unpack --image img:t ref >/dev/null || { fail "umoci unpack"; return 1; }
	local lower="" i=0
	for l in "${layers[@]}"; do
		mkdir "L$i"
		"$TOOL" unpack overlay "$l" "L$i" > stats || { fail "unpack $l: $(cat stats)"; return 1; }
		lower="$PWD/L$i${lower:+:$lower}"; i=$((i + 1))
	done
	expect_true "a whiteout is a 0/0 char device" test "$(stat -c %F:%t:%T L1/var/old/x)" = "character special file:0:0"
	expect_eq "the opaque dir is marked" \
		"$(python3 -c "import os; print(os.getxattr('L2/usr/share/doc','trusted.overlay.opaque'))")" "b'y'"
	mkdir merged
	unshare -m sh -c "mount -t overlay -o ro,lowerdir=$lower cvm-test merged &&
		cd '$PWD' && $(declare -f treecmp); treecmp ref/rootfs merged" > cmp ||
		{ fail "the stacked layers differ from umoci's tree:"; cat cmp >&2; return 1; }
}

t_escape_refused_named() {
	mkdir -p t/a root
	ln -s / t/evil
	tar -C t -cf l1.tar evil
	# a second layer writing through the first's absolute symlink
	mkdir -p t2/evil/tmp && echo x > "t2/evil/tmp/cvm-layer-escape-$$"
	tar -C t2 -cf l2.tar evil/tmp/cvm-layer-escape-$$
	"$TOOL" unpack apply l1.tar root >/dev/null || fail "the symlink alone is fine"
	expect_false "escape refused" "$TOOL" unpack apply l2.tar root 2> err
	grep -q "layer entry evil/tmp/cvm-layer-escape-$$: .*leads out of the layer's root" err ||
		fail "the error does not name the entry: $(cat err)"
	expect_false "nothing written outside" test -e "/tmp/cvm-layer-escape-$$"
}

# UTF-8 names in pax headers, read in the C locale (cvm's), land as the
# same bytes (libarchive would convert them to the locale's charset).
t_utf8_names_c_locale() {
	python3 -c "
import io, tarfile
with tarfile.open('p.tar', 'w', format=tarfile.PAX_FORMAT) as t:
    i = tarfile.TarInfo('caf\u00e9/na\u00efve.txt'); i.size = 2; t.addfile(i, io.BytesIO(b'hi'))" || return 1
	mkdir r
	LC_ALL=C "$TOOL" unpack apply p.tar r >/dev/null || { fail "unpack"; return 1; }
	expect_eq "the name's bytes" "$(cd r && LC_ALL=C ls -d */* | tr -d '\n' | od -An -tx1 | tr -d ' \n')" \
		"$(printf 'caf\303\251/na\303\257ve.txt' | od -An -tx1 | tr -d ' \n')"
}

# ---- the workspace over layer dirs -------------------------------------------

# Three layer dirs in ./L1..L3: the busybox rootfs; a layer adding files
# (one owned by 1234, one by 0) and a dir; a layer whiting out
# /etc/hostname and making /opt opaque.
make_ws_layers() {
	tar -C "$ROOTFS" -cf l1.tar . &&
	mkdir -p t2/etc t2/opt/old t2/home t2/srv &&
	echo old > t2/opt/old/f && echo mine > t2/home/u && echo root > t2/srv/r &&
	chown 1234:1234 t2/home/u && chown 0:0 t2/srv/r &&
	tar -C t2 -cf l2.tar . &&
	mkdir -p t3/opt t3/etc && touch t3/opt/.wh..wh..opq t3/etc/.wh.hostname &&
	echo new > t3/opt/new && tar -C t3 -cf l3.tar . || return 1
	for i in 1 2 3; do
		mkdir "L$i" && "$TOOL" unpack overlay "l$i.tar" "L$i" >/dev/null || return 1
	done
	test -e "$ROOTFS/etc/hostname"      # what the whiteout hides is there below
}

WS_SCRIPT='test -e /etc/hostname && echo HOSTNAME-VISIBLE; ls /opt; ls /opt/old 2>&1 | head -1
	stat -c "home %u:%g" /home/u; stat -c "srv %u:%g" /srv/r; id -u
	echo made > /made; cat /proc/self/uid_map'

check_ws_out() {
	has new && has "home 1234:1234" && has "srv 0:0" && has 0 &&
		grep -q '^ *0 *100000 *65536$' out || { fail "inside:"; cat out err >&2; return 1; }
	! grep -q HOSTNAME-VISIBLE out || fail "the whiteout did not hide /etc/hostname"
	! grep -qx old out || fail "/opt/old shows through the opaque /opt"
	# From outside, the ids as stored: unshifted.
	expect_eq "layer file owner outside" "$(stat -c %u:%g L2/home/u)" 1234:1234
	expect_eq "root file owner outside" "$(stat -c %u:%g L2/srv/r)" 0:0
	expect_eq "new file in the upper layer, as stored" "$(stat -c %u:%g state/upper/made)" 0:0
}

ws_layers() { "$TOOL" ws "$PWD/state" "$PWD/L1" "$PWD/L2" "$PWD/L3" -- sh -c "$WS_SCRIPT" > out 2> err; }

t_ws_three_layers() {
	make_ws_layers || { fail "making the layers failed"; return 1; }
	ws_layers || { fail "workspace exit $?:"; cat out err >&2; return 1; }
	check_ws_out
	expect_false "no copy made" test -e state/rootfs
}

t_ws_layers_copy_path() {
	make_ws_layers || { fail "making the layers failed"; return 1; }
	CVM_DEBUG_LAYERS_NO_IDMAP=1 ws_layers || { fail "workspace exit $?:"; cat out err >&2; return 1; }
	check_ws_out
	grep -q "merging them once into" err || fail "no note of the merge: $(cat err)"
	expect_true "the merged copy" test -f state/rootfs/opt/new
	expect_false "whiteouts are not copied" test -e state/rootfs/etc/hostname
	expect_false "nor what the opaque dir hides" test -e state/rootfs/opt/old
	expect_false "no merge dir left" test -e state/rootfs.layers
	rm state/upper/made
	CVM_DEBUG_LAYERS_NO_IDMAP=1 ws_layers || { fail "second start exit $?"; return 1; }
	grep -q "using the copy of the image layers made earlier" err || fail "copied again: $(cat err)"
	check_ws_out
}

# 100 layers: more than one lowerdir= option holds (255 bytes: 88), so one
# lowerdir+ each (Linux 6.8; before, refused up front with that said);
# 501: past the overlay's stack limit, refused up front.
t_ws_many_layers() {
	local i args=("$PWD/L1") max
	max=$("$TOOL" max-layers)
	make_ws_layers || { fail "making the layers failed"; return 1; }
	for i in $(seq 100); do mkdir -p "M$i/many" && echo "$i" > "M$i/many/$i" && args+=("$PWD/M$i"); done
	if [ "$max" = 500 ]; then
		"$TOOL" ws "$PWD/state" "${args[@]}" -- sh -c 'ls /many | wc -l' > out 2> err ||
			{ fail "100 layers: exit $?: $(cat err)"; return 1; }
		expect_eq "files of 100 layers" "$(cat out)" 100
	else
		expect_eq "layers in one lowerdir option" "$max" 88
		expect_false "101 layers before Linux 6.8" "$TOOL" ws "$PWD/state" "${args[@]}" -- true 2> err
		grep -q "takes at most 88 in one lowerdir option" err || fail "no clear error: $(cat err)"
	fi
	for i in $(seq 101 500); do args+=("$PWD/M1"); done
	expect_false "501 layers" "$TOOL" ws "$PWD/state2" "${args[@]}" -- true 2> err
	grep -q "501 image layers, and the overlay stacks at most 500: flatten" err ||
		fail "no clear error: $(cat err)"
}

run_test apply_matches_umoci t_apply_matches_umoci
run_test overlay_stack_matches_umoci t_overlay_stack_matches_umoci
run_test escape_refused_named t_escape_refused_named
run_test utf8_names_c_locale t_utf8_names_c_locale
run_test ws_three_layers t_ws_three_layers
run_test ws_layers_copy_path t_ws_layers_copy_path
run_test ws_many_layers t_ws_many_layers
finish
