#!/bin/bash
# Black-box tests of the workspace: cvm as PID 1 of an outer container
# (outer.sh) builds it from a busybox rootfs; checks run from inside, with
# busybox and the static probe, and from outside, on the disk.
# usage: test_workspace.sh BUILD_DIR
. "$(dirname "$0")/workspace.sh" "$1"
N=0

# ws [cvm run args...]: run a workspace to the end in a fresh outer
# container. Its stdout/stderr land in ./out and ./err; returns cvm's status.
# WS_OUTER_ENV=(--env K=V...): the outer container's environment (envbox's way).
# Each test runs in a subshell, so N is 1 in every one: the name's
# uniqueness is $SRANDOM's (32 bits; $RANDOM's 15 collided once in CI).
ws() {
	N=$((N + 1))
	local name=ws$N.$$.$SRANDOM rc
	outer_start "$name" ${WS_OUTER_ENV[@]+"${WS_OUTER_ENV[@]}"} -- "$CVM" run "$@" ||
		{ say "outer_start failed"; return 125; }
	outer_wait "$name" 60; rc=$?
	cat "$OUTER_DIR/$name/out" > out; cat "$OUTER_DIR/$name/err" > err
	return $rc
}

# ws_sh SCRIPT [cvm run args...]: run SCRIPT with sh inside the workspace
# (state in ./state); fails the test on a non-zero status.
ws_sh() {
	local script=$1; shift
	ws --rootfs "$ROOTFS" --state "$PWD/state" "$@" -- sh -c "$script"
	local rc=$?
	[ $rc = 0 ] || { say "workspace exit $rc"; sed 's/^/      out| /' out >&2; sed 's/^/      err| /' err >&2; }
	return $rc
}

# has LINE: ./out contains LINE exactly
has() { grep -qxF -- "$1" out || { fail "missing '$1' in output:"; sed 's/^/      | /' out >&2; return 1; }; }

t_root_inside_mapped_outside() {
	ws_sh 'id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; hostname' || return 1
	has 0 && has "         0     100000      65536" && has cvm
	[ "$(grep -c '^ *0 *100000 *65536$' out)" = 2 ] || { say "gid_map differs"; return 1; }
}

t_only_workspace_processes() {
	ws_sh 'sleep 5 & ps -o pid,comm > /tmp/ps; kill %1; tail -n +2 /tmp/ps' || return 1
	# cvm's init (1), sh, sleep (maybe still "exe" or "sh" mid-exec), ps:
	# nothing of the outer container, whose PID 1 is the outer cvm.
	local n; n=$(wc -l < out)
	[ "$n" -le 4 ] || { say "$n processes visible:"; cat out >&2; return 1; }
	grep -q '^ *1 cvm-init$' out || { say "PID 1 inside is not cvm's init:"; cat out >&2; return 1; }
	! grep -q ' cvm$' out || { say "the outer cvm is visible"; return 1; }
}

t_outer_files_mounts_invisible() {
	mkdir -p marker-dir && touch marker-dir/outer-marker
	ws_sh "test -e $PWD/marker-dir/outer-marker && echo SEEN; test -e $BUILD/cvm && echo SEEN-CVM
	       grep -F '$PWD' /proc/self/mountinfo; tr '\\0' ' ' < /proc/1/cmdline; echo" || return 1
	grep -q SEEN out && { say "outer file visible inside"; return 1; }
	# A bind shows its source's path within its filesystem (as Docker's
	# volumes do): the engine dirs' binds name STATE/engines/...; nothing
	# else may name an outer path.
	grep -F "$PWD" out | grep -vF " $PWD/state/engines/" | grep -qF "$PWD" &&
		{ say "outer paths in mountinfo:"; cat out >&2; return 1; }
	# PID 1's command line would name outer paths; cvm's init hides it.
	grep -q "^cvm-init *$" out || { say "PID 1 cmdline: $(tail -1 out)"; return 1; }
}

t_files_created_inside_have_inner_ids_on_disk() {
	ws_sh 'echo a > /root/by-root; echo b > /tmp2; mkdir -p /home/u && echo c > /home/u/f && chown -R 1000:1001 /home/u' || return 1
	expect_eq "by-root owner" "$(stat -c %u:%g state/upper/root/by-root)" 0:0 || return 1
	expect_eq "chowned owner" "$(stat -c %u:%g state/upper/home/u/f)" 1000:1001
}

t_data_survives_restart() {
	ws_sh 'echo persisted > /root/keep; rm /etc/hostname' || return 1
	ws_sh 'cat /root/keep; test -e /etc/hostname || echo gone' || return 1
	has persisted && has gone
	# The image itself is untouched.
	[ -e "$ROOTFS/etc/hostname" ] || { say "image modified"; return 1; }
}

# Nested engines' dirs live on the state dir's filesystem (ext4 here), not
# on the workspace's overlay, and persist across restarts.
t_engine_dirs_on_state_fs() {
	ws_sh 'for d in /var/lib/docker /var/lib/containerd /var/lib/buildkit; do stat -f -c "$d %T" $d; done
	       echo layer > /var/lib/docker/f; mkdir /var/lib/docker/o; chown 1000 /var/lib/docker/o
	       stat -c %U /var/lib/docker' || return 1
	local want; want=$(stat -f -c %T "$PWD")
	has "/var/lib/docker $want" && has "/var/lib/containerd $want" && has "/var/lib/buildkit $want" &&
		has root || return 1
	! grep -q -e overlay -e UNKNOWN out || { say "an engine dir is on overlay"; return 1; }
	expect_eq "on disk (inner ids)" "$(stat -c %u state/engines/var-lib-docker/o)" 1000 || return 1
	# the list grows like the other list keys; an empty value clears it
	ws_sh 'cat /var/lib/docker/f; stat -f -c %T /opt/eng' --engine-dirs /opt/eng || return 1
	has layer && has "$want" || return 1
	ws_sh 'grep -c " /var/lib/docker " /proc/self/mountinfo; cat /var/lib/docker/f 2>/dev/null; true' \
		--engine-dirs '' || return 1
	has 0 && ! grep -q layer out
}

t_volume_keeps_disk_owners() {
	mkdir -p vol && echo hi > vol/f && chown 1234:2345 vol/f && chown 0:0 vol
	ws_sh 'stat -c %u:%g /data/f; echo new > /data/g; chown 1000:1000 /data/g; ls -ln /ro >/dev/null; touch /ro/x 2>/dev/null || echo ro-ok' \
		-v "$PWD/vol:/data" -v "$PWD/vol:/ro:ro" || return 1
	has 1234:2345 && has ro-ok || return 1
	expect_eq "owner on disk" "$(stat -c %u:%g vol/g)" 1000:1000
}

t_masked_paths_hold() {
	ws_sh '
	  for f in /proc/keys /proc/timer_list /proc/sysrq-trigger; do
	    [ -e $f ] || continue
	    echo "$f $(stat -c %t:%T $f) $(wc -c < $f)"
	    umount $f 2>/dev/null && echo "UMOUNTED $f"; umount -l $f 2>/dev/null && echo "UMOUNTED $f"
	  done
	  echo "fw $(stat -f -c %T /sys/firmware) $(ls -A /sys/firmware | wc -l)"
	  touch /sys/firmware/x 2>/dev/null && echo WROTE
	  mount -o remount,rw /sys/firmware 2>/dev/null && echo REMOUNTED
	  umount /sys/firmware 2>/dev/null && echo UMOUNTED; true' || return 1
	grep -q -e UMOUNTED -e WROTE -e REMOUNTED out && { say "a mask gave way:"; cat out >&2; return 1; }
	has "/proc/keys 1:3 0" && has "fw tmpfs 0"
}

t_readonly_paths_hold() {
	ws_sh '
	  echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo WROTE
	  mount -o remount,rw /proc/sys 2>/dev/null && echo REMOUNTED
	  umount /proc/sys 2>/dev/null && echo UMOUNTED
	  touch /sys/x 2>/dev/null && echo WROTE-SYS
	  umount /dev 2>/dev/null && echo UMOUNTED-DEV
	  grep -q " /proc/sys ro," /proc/self/mountinfo && echo sys-ro; true' || return 1
	grep -q -e WROTE -e REMOUNTED -e UMOUNTED out && { say "a read-only path gave way:"; cat out >&2; return 1; }
	has sys-ro
}

t_new_mounts_inside_work() {
	ws_sh 'mkdir -p /mnt/t /mnt/p && mount -t tmpfs t /mnt/t && echo tmpfs-ok
	       mount -t proc proc /mnt/p && test -e /mnt/p/self/status && echo proc-ok
	       unshare -p -f -m sh -c "mount -t proc p /proc && ps -o pid | tail -n +2" ' || return 1
	has tmpfs-ok && has proc-ok && has "    1"
}

t_dev_nodes() {
	ws_sh 'for d in null zero full random urandom tty ptmx; do test -c /dev/$d -o -L /dev/$d || echo "NO $d"; done
	       head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null-ok
	       test -d /dev/pts -a -d /dev/shm -a -d /dev/mqueue && echo dirs-ok
	       stat -c %U /dev/null; test -e /dev/fuse && echo HAS-FUSE; true' || return 1
	grep -q '^NO ' out && { cat out >&2; return 1; }
	has 4 && has null-ok && has dirs-ok && has root || return 1
	grep -q HAS-FUSE out && { say "/dev/fuse without devices.fuse"; return 1; }
	return 0
}

t_dev_fuse_and_tun_when_enabled() {
	[ -c /dev/fuse ] && [ -c /dev/net/tun ] || { say "this host lacks /dev/fuse or /dev/net/tun"; return 1; }
	ws_sh 'stat -c "%U %t:%T" /dev/fuse /dev/net/tun; exec 3<>/dev/fuse && echo fuse-opened
	       exec 4<>/dev/net/tun && echo tun-opened' --fuse --tun || return 1
	has "root a:e5" && has "root a:c8" && has fuse-opened && has tun-opened
}

# The seccomp profile refuses what reaches the node. Without it (the control)
# open_by_handle_at gets as far as the kernel (EFAULT for the NULL handle):
# so it is the profile that stops it, not only the kernel's own checks.
t_seccomp_refuses_node_syscalls() {
	ws --rootfs "$ROOTFS" --state "$PWD/state" -- probe nodecalls || { cat err >&2; return 1; }
	if grep -v ' EPERM$' out; then say "not refused by the profile (above)"; return 1; fi
	[ "$(wc -l < out)" -ge 12 ] || { say "probe output: $(cat out)"; return 1; }
	ws --rootfs "$ROOTFS" --state "$PWD/state" --no-seccomp -- probe nodecalls || return 1
	has "open_by_handle_at EFAULT" || return 1
	grep -q "seccomp is off" err || { say "no warning when turned off"; return 1; }
}

# [workspace] seccomp_deny refuses more syscalls, in the workspace and in
# cvm exec alike; without it the same call works (the control).
t_seccomp_deny_from_config() {
	N=$((N + 1))
	local name=sd$N.$$ out
	local WS_ENV=(env "CVM_WORKSPACE_SECCOMP_DENY=unshare, chroot")
	ws_start "$name" "$PWD/state" -- sleep 1000 || return 1
	out=$(ws_exec "$name" -- sh -c 'unshare -m true 2>&1; echo "unshare $?"; chroot / true 2>&1; echo "chroot $?"')
	outer_signal "$name" TERM; outer_wait "$name" 20 > /dev/null
	echo "$out" | grep -q "^unshare 1$" && echo "$out" | grep -q "^chroot 1$" &&
		echo "$out" | grep -qi "Operation not permitted" || { say "$out"; return 1; }
	ws_sh 'unshare -m true && echo unshare-ok' || return 1
	has unshare-ok
}

# reboot(2) inside (poweroff -f) halts the workspace's pid namespace: a
# clean power-off, exit 0, not "killed by SIGINT" (130).
t_poweroff_inside_is_a_clean_exit() {
	ws --rootfs "$ROOTFS" --state "$PWD/state" -- sh -c 'poweroff -f; sleep 10'
	expect_eq "exit" "$?" 0 || { cat err >&2; return 1; }
	grep -q "the workspace powered off" err || { cat err >&2; return 1; }
}

# Root inside has every capability, in the workspace's user namespace only.
t_capabilities_only_inside() {
	ws_sh 'grep CapEff /proc/self/status; grep CapBnd /proc/self/status; hostname renamed && hostname
	       mknod /tmp/null c 1 3 2>/dev/null && echo MKNOD
	       echo 1 > /proc/sys/vm/drop_caches 2>/dev/null && echo DROPPED
	       cat /proc/1/environ >/dev/null 2>&1 && echo ENVIRON; true' || return 1
	# every capability but the ones dropped from the bounding set for good:
	# sys_module, sys_rawio, sys_pacct, sys_time, audit_control, mac_*,
	# syslog, wake_alarm, block_suspend, audit_read (bits 16 17 20 25 30 32-37)
	grep -q 'CapEff:.*1c0bdecffff$' out || { say "$(grep CapEff out)"; return 1; }
	grep -q 'CapBnd:.*1c0bdecffff$' out || { say "$(grep CapBnd out)"; return 1; }
	has renamed || return 1
	! grep -q -e MKNOD -e DROPPED -e ENVIRON out || { say "outer privilege inside:"; cat out >&2; return 1; }
}

t_user_workdir_env_hostname() {
	FOO_A=1 FOO_B=2 BAR=3 ws_sh 'id -u; pwd; echo "$GREETING $FOO_A$FOO_B${BAR:-unset}"; hostname' \
		--user nobody --workdir /tmp --env GREETING=hello --env-pass 'FOO_*' --hostname box || return 1
	has 65534 && has /tmp && has "hello 12unset" && has box
}

t_exit_status_propagates() {
	ws --rootfs "$ROOTFS" --state "$PWD/state" -- sh -c 'exit 7'; expect_eq "exit" "$?" 7 || return 1
	ws --rootfs "$ROOTFS" --state "$PWD/state" -- /no/such; expect_eq "not found" "$?" 127
}

t_image_init_runs_as_pid1() {
	cp -a "$ROOTFS" img && mkdir -p img/sbin
	printf '#!/bin/sh\necho "init pid $$"\nexit 3\n' > img/sbin/init && chmod 755 img/sbin/init
	ws --rootfs "$PWD/img" --state "$PWD/state"; expect_eq "exit" "$?" 3 || return 1
	has "init pid 1"
}

t_init_command_is_pid1() {
	# Split on blanks, no shell: cat's own stat line starts with its pid.
	ws --rootfs "$ROOTFS" --state "$PWD/state" --init "/bin/cat /proc/self/stat"
	expect_eq "exit" "$?" 0 || return 1
	grep -q '^1 (cat) ' out || { say "$(cat out)"; return 1; }
	expect_fail 2 "init: /nonexistent is not an executable file" --rootfs "$ROOTFS" --state "$PWD/state" --init /nonexistent
}

t_stop_signal_ends_workspace() {
	local name=stop.$$.$SRANDOM
	outer_start "$name" -- "$CVM" run -t 2s --rootfs "$ROOTFS" --state "$PWD/state" -- \
		sh -c 'trap "echo got-term; exit 0" TERM; echo ready; while :; do sleep 0.1; done' || return 1
	wait_for "$OUTER_DIR/$name/out" ready 20 || return 1
	outer_signal "$name" TERM || return 1
	outer_wait "$name" 20; expect_eq "exit" "$?" 0 || return 1
	expect_grep '^got-term$' "$OUTER_DIR/$name/out"
}

# A command that exits at once must not race the end of the setup (the
# builder lives in the workspace's pid namespace until it reports).
t_quick_exits_never_fail_setup() {
	local j
	# Four at once: with more runnable processes than CPUs the builder is
	# often preempted right after it hands over, which is when it raced.
	for j in 1 2 3 4; do
		# Each in a network namespace of its own: every start makes the
		# private network (cvm0, the nft table) in the namespace it runs in.
		unshare --net bash -c 'ip link set lo up; for i in $(seq 150); do
			"$0" run --log-level=error --rootfs "$1" --state "$2" -- /bin/true 2>> "$3" || echo fail
		  done > "$4"' "$CVM" "$ROOTFS" "$PWD/state$j" "err$j" "fails$j" &
	done
	wait
	expect_eq "failed starts" "$(cat fails* | wc -l)" 0 || { cat err* | sort | uniq -c | head -3 >&2; return 1; }
}

# ---- bad input: each fails before anything starts, naming problem and fix ----

expect_fail() {   # expect_fail STATUS PATTERN cvm-run-args...
	local want=$1 pat=$2; shift 2
	ws "$@"; local rc=$?
	expect_eq "exit" "$rc" "$want" || { cat err >&2; return 1; }
	grep -q -- "$pat" err || { say "stderr lacks '$pat':"; sed 's/^/      | /' err >&2; return 1; }
}

t_bad_missing_rootfs() {
	expect_fail 2 "rootfs /nonexistent: .*point --rootfs" --rootfs /nonexistent --state "$PWD/s"
}

t_bad_rootfs_without_shell() {
	mkdir -p empty/etc
	expect_fail 2 "has neither /sbin/init nor /bin/sh" --rootfs "$PWD/empty" --state "$PWD/s"
}

t_bad_uid_range() {
	expect_fail 2 "uid_count: 1000 is below 65536" --rootfs "$ROOTFS" --state "$PWD/s" --uid-count 1000
}

t_bad_relative_path() {
	expect_fail 2 "must be an absolute path" --rootfs rootfs --state "$PWD/s"
}

t_bad_mount_source_missing() {
	expect_fail 2 'mount "volume-1": source /nonexistent' --rootfs "$ROOTFS" --state "$PWD/s" \
		-v /nonexistent:/data -- true
}

t_bad_state_on_overlay() {
	mkdir -p lo up wk ov
	mount -t overlay overlay -o lowerdir=lo,upperdir=up,workdir=wk ov || return 1
	expect_fail 125 "state dir .*is on overlay, which the kernel cannot idmap; .*use a volume on ext4" --rootfs "$ROOTFS" \
		--state "$PWD/ov/state" -- true; local rc=$?
	umount ov; return $rc
}

# ---- a malicious image cannot aim a mount outside itself ----

t_malicious_symlinked_proc() {
	cp -a "$ROOTFS" img && rm -rf img/proc && ln -s / img/proc
	expect_fail 125 "/proc is a symlink (-> /) in the image" --rootfs "$PWD/img" --state "$PWD/s" -- true
}

t_malicious_symlinked_dev() {
	cp -a "$ROOTFS" img && rm -rf img/dev && ln -s ../../../../dev img/dev
	expect_fail 125 "/dev is a symlink" --rootfs "$PWD/img" --state "$PWD/s" -- true
}

t_malicious_volume_target() {
	cp -a "$ROOTFS" img && ln -s / img/escape && ln -s /etc img/etc-link
	mkdir -p vol && echo vol > vol/f
	# A symlink as the target itself is refused...
	expect_fail 125 "/escape is a symlink (-> /)" --rootfs "$PWD/img" --state "$PWD/s" \
		-v "$PWD/vol:/escape" -- true || return 1
	# ...and one in the middle resolves inside the image: /escape/victim is
	# the image's /victim, never the outer container's.
	ws_sh 'cat /victim/f' -v "$PWD/vol:/escape/victim" --rootfs "$PWD/img" || return 1
	has vol && [ ! -e /victim ]
}

# ---- an image on a filesystem that cannot be idmapped: copied once ----

t_fallback_copy_for_overlay_image() {
	mkdir -p up wk ov
	mount -t overlay overlay -o lowerdir="$ROOTFS",upperdir=up,workdir=wk ov || return 1
	ws_sh 'echo run1' --rootfs "$PWD/ov"; local rc=$?
	grep -q "is on overlay, which cannot be idmapped: copying it once" err || { rc=1; say "no copy note"; cat err >&2; }
	[ $rc = 0 ] && ws_sh 'echo run2' --rootfs "$PWD/ov" || rc=1
	grep -q "using the copy of .* made earlier" err || { rc=1; say "copy not reused"; cat err >&2; }
	umount ov; [ $rc = 0 ] && has run2
}

# envbox's CODER_DISABLE_IDMAPPED_MOUNT ([workspace] idmap = off): the
# one-time copy even where the image dir could be idmapped, as this one can.
t_disable_idmapped_mount_forces_the_copy() {
	ws_sh 'echo auto' || return 1
	! grep -q "copying" err || fail "idmap auto copied an idmappable image:" || sed 's/^/      | /' err >&2
	expect_false "state/rootfs with idmap auto" test -e state/rootfs
	WS_OUTER_ENV=(--env CODER_DISABLE_IDMAPPED_MOUNT=true)
	ws_sh 'stat -c "%u %U" /bin/busybox; echo copied' --state "$PWD/state2" || return 1
	grep -q "idmap = off: copying $ROOTFS once into $PWD/state2/rootfs" err ||
		fail "no copy note:" || sed 's/^/      | /' err >&2
	has "0 root" && has copied
	expect_eq "rootfs.source" "$(cat state2/rootfs.source)" "$ROOTFS"
	expect_true "the copy" cmp "$ROOTFS/bin/busybox" state2/rootfs/bin/busybox
	ws_sh 'echo again' --state "$PWD/state2" || return 1
	grep -q "using the copy of $ROOTFS made earlier" err || fail "copy not reused" ||
		sed 's/^/      | /' err >&2
	# CVM_WORKSPACE_IDMAP=auto (cvm's own name) wins over the envbox alias
	WS_OUTER_ENV=(--env CODER_DISABLE_IDMAPPED_MOUNT=true --env CVM_WORKSPACE_IDMAP=auto)
	ws_sh 'echo auto2' --state "$PWD/state3" || return 1
	expect_false "state3/rootfs with CVM_WORKSPACE_IDMAP=auto" test -e state3/rootfs
}

# A registry reference is pulled before anything starts; with no registry
# to reach (no network here) the start fails with the pull's reason, and
# nothing of a workspace started.
t_image_ref_unreachable_registry() {
	expect_fail 125 "cvm\[image\] error: pull docker.io/codercom/enterprise-base:ubuntu: registry docker.io: .*registry-1.docker.io" \
		--image codercom/enterprise-base:ubuntu --state "$PWD/s" -- true || return 1
	expect_no_grep "workspace started" err
	WS_OUTER_ENV=(--env CODER_INNER_IMAGE=ubuntu:24.04 --env CVM_WORKSPACE_STATE="$PWD/s")
	expect_fail 125 "error: pull docker.io/library/ubuntu:24.04: " -- true
}

for t in $(declare -F | awk '$3 ~ /^t_/ {print $3}'); do
	run_test "${t#t_}" "$t"
done
finish
