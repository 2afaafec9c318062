#!/usr/bin/env bash
# xfstests (fstests) on fresh extentfs images, mounted through the installed mount path
# (mount -t fuse.extentfs), as a user would mount them.
#
#   XFSTESTS=/path/to/xfstests sudo -E bash scripts/xfstests.sh                 # the quick group
#   XFSTESTS=... GROUP=auto TIMEOUT=14400 sudo -E bash scripts/xfstests.sh
#   XFSTESTS=... TESTS="generic/001 generic/013" sudo -E bash scripts/xfstests.sh
#
# xfstests is not part of extentfs: clone https://git.kernel.org/pub/scm/fs/xfs/xfstests-dev.git
# (or its mirror github.com/kdave/xfstests), install what its README lists (Debian: xfsprogs,
# xfslibs-dev, libacl1-dev, libaio-dev, uuid-dev, libattr1-dev, libgdbm-dev, autoconf, automake,
# libtool, fio, bc, attr, acl, psmisc, ...), run `make` there, and name the checkout with XFSTESTS.
# The project never builds or commits it. xfstests also wants the users fsgqa, fsgqa2 and
# 123456-fsgqa (useradd; its README): tests that need them are not run without them.
#
# What it does: installs extentfs with scripts/install.sh when mount(8)'s helper
# /sbin/mount.fuse.extentfs is missing (or when INSTALL=1; BUILD_DIR=.build/debug installs an
# existing build instead of making the slow release build), makes two fresh images (TEST_DEV and
# SCRATCH_DEV), writes a local.config into the work directory (FSTYP=fuse, FUSE_SUBTYP=.extentfs:
# xfstests mounts with `mount -t fuse.extentfs IMAGE DIR -o allow_other`; TEST_DEV and SCRATCH_DEV
# are image paths, TEST_DIR and SCRATCH_MNT mount points in the work directory), runs xfstests'
# ./check with it (HOST_OPTIONS) and RESULT_BASE in the work directory (so the checkout is not
# written to), then unmounts both images and checks them with extentfs fsck. At the end it prints
# how many tests passed, failed and were not run (parsed from check's output, so a run stopped by
# TIMEOUT is counted too), and names the failures. Exit status 0 only when no test failed, the
# run finished, and both images are clean.
#
# For FSTYP=fuse xfstests cannot format the images (its _scratch_mkfs removes the scratch files
# instead), and "fuse" must be the type df reports for the mount, where the kernel reports
# "fuse.extentfs": local.config points xfstests' DF_PROG at a wrapper that reports the type as
# "fuse" (the only change; everything else is df's own output).
#
# The kernel answers FICLONE, FICLONERANGE, FIDEDUPERANGE and FIEMAP itself on a FUSE mount and
# passes no collapse, insert or unshare fallocate: ./check runs with LD_PRELOAD of the installed
# preload library ($PREFIX/lib/libExtentFSPreload.so, README "Space operations and standard
# tools"), so that xfs_io, cp and xfstests' own programs reach extentfs's clone, dedupe, extent
# map and range operations as a user's tools would. PRELOAD=0 runs without it (those tests are
# then "not run": the operation is missing).
#
# Environment: XFSTESTS (required); GROUP (default quick; a comma list is allowed); TESTS (tests
# to run instead of a group, e.g. "generic/001 generic/013"); EXCLUDE_GROUPS and EXCLUDE_TESTS
# (more to leave out, space separated); NO_EXCLUDE=1 (run the listed exclusions too); TIMEOUT
# (seconds for the whole of ./check, default 0: none; on expiry check is stopped, what ran is
# counted, and the script fails); CHECK_ARGS (more ./check options); IMAGE_SIZE (each image,
# default 16G, sparse); BLOCK_SIZE (4096); MOUNT_OPTIONS (more -o options for both mounts);
# PRELOAD (1|0); INSTALL (auto|1|0), BUILD_DIR, PREFIX (where install.sh put extentfs: /usr/local); WORK_DIR
# (kept; by default a new directory under /var/tmp, removed when everything passed). check's
# output is kept in WORK_DIR/check.out, each test's output under WORK_DIR/results/.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Groups left out, each with the reason: what they need a FUSE image cannot give, or what they
# may do to the machine.
EXCLUDED_GROUPS=(
    "dangerous"          # may crash or hang the kernel (xfstests' own warning); never on a shared machine
    "broken"             # marked broken by xfstests itself
    "dax"                # direct access to persistent memory: needs a pmem block device and -o dax
    "shutdown"           # FS_IOC_SHUTDOWN (godown) to simulate a crash: extentfs has no shutdown ioctl
    "recoveryloop"       # crash-recovery loops built on shutdown or dm-flakey/dm-error
    "replay"             # dm-log-writes replays: need a block device under the filesystem
    "quota"              # user/group/project quotas: extentfs has none (README "Limits")
    "freeze"             # FIFREEZE/FITHAW freeze a block device's superblock; FUSE has no freeze
)
# Single tests left out, each with the reason (in ./check -E format: "test # reason").
# The other tests that need a block device, device-mapper targets, mkfs of a given size or a swap
# file find out for themselves and are reported "not run" with xfstests' reason.
EXCLUDED_TESTS=(
    # Fills SCRATCH_DEV with 300 MiB of 0x58 to expose stale data, expecting _scratch_mkfs_sized
    # to format it afterwards; FSTYP=fuse cannot format, so the test is not run, and the scratch
    # image is left overwritten: every later test on the scratch image fails to mount it.
    "generic/515 # overwrites the scratch image, which FSTYP=fuse cannot format again"
)

[[ -n "${XFSTESTS:-}" ]] ||
    die "set XFSTESTS to an xfstests checkout you built (git clone https://github.com/kdave/xfstests; make)"
[[ -d "$XFSTESTS" ]] || die "XFSTESTS=$XFSTESTS is not a directory"
XFSTESTS="$(realpath "$XFSTESTS")"
[[ -x "$XFSTESTS/check" && -f "$XFSTESTS/common/rc" ]] ||
    die "XFSTESTS=$XFSTESTS is not an xfstests checkout (no ./check and common/rc)"
[[ -x "$XFSTESTS/ltp/fsstress" && -x "$XFSTESTS/src/xfsctl" ]] ||
    die "xfstests is not built in $XFSTESTS (no ltp/fsstress or src/xfsctl): run make there"
[[ -f "$XFSTESTS/tests/generic/group.list" ]] ||
    die "xfstests is not built in $XFSTESTS (no tests/generic/group.list): run make there"
((EUID == 0)) || die "xfstests must run as root"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing: this machine cannot mount FUSE filesystems"
command -v xfs_io >/dev/null 2>&1 || die "xfs_io is missing (Debian: xfsprogs), xfstests needs it"

PREFIX="${PREFIX:-/usr/local}"
IMAGE_SIZE="${IMAGE_SIZE:-16G}"
BLOCK_SIZE="${BLOCK_SIZE:-4096}"
INSTALL="${INSTALL:-auto}"
GROUP="${GROUP:-quick}"
TIMEOUT="${TIMEOUT:-0}"
PRELOAD="${PRELOAD:-1}"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "TIMEOUT must be a number of seconds, not '$TIMEOUT'"
read -r -a check_args <<<"${CHECK_ARGS:-}"

if [[ "$INSTALL" == 1 || ("$INSTALL" == auto && ! -x /sbin/mount.fuse.extentfs) ]]; then
    log "installing extentfs (scripts/install.sh${BUILD_DIR:+, BUILD_DIR=$BUILD_DIR})"
    PREFIX="$PREFIX" bash "$REPO_ROOT/scripts/install.sh" >&2
fi
[[ -x /sbin/mount.fuse.extentfs ]] || die "/sbin/mount.fuse.extentfs is missing: run scripts/install.sh (or INSTALL=1)"
EXTENTFS="$PREFIX/bin/extentfs"
[[ -x "$EXTENTFS" ]] || die "$EXTENTFS is missing: run scripts/install.sh (or set PREFIX)"
EFS_PRELOAD_LIB="$PREFIX/lib/libExtentFSPreload.so"
[[ "$PRELOAD" == 0 || -f "$EFS_PRELOAD_LIB" ]] || die "$EFS_PRELOAD_LIB is missing: run scripts/install.sh (or PRELOAD=0)"
for user in fsgqa fsgqa2 123456-fsgqa; do
    id "$user" >/dev/null 2>&1 || log "note: no user $user: xfstests' tests that need it will not run (useradd $user)"
done

WORK="${WORK_DIR:-$(mktemp -d /var/tmp/extentfs-xfstests.XXXXXX)}"
mkdir -p "$WORK/test" "$WORK/scratch" "$WORK/results"
WORK="$(realpath "$WORK")"
test_dev="$WORK/test.img"
scratch_dev="$WORK/scratch.img"
test_dir="$WORK/test"
scratch_mnt="$WORK/scratch"

unmount_all() {
    local mnt
    for mnt in "$test_dir" "$scratch_mnt"; do
        if is_mounted "$mnt"; then
            timeout 300 "$EXTENTFS" umount "$mnt" >&2 || { force_unmount "$mnt"; return 1; }
        fi
    done
}

cleanup() {
    local rc=$?
    trap - EXIT
    unmount_all || true
    if ((rc == 0)) && [[ -z "${WORK_DIR:-}" ]]; then
        rm -rf "$WORK"
    else
        log "work directory kept (images, local.config, check.out, results/): $WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT

for image in "$test_dev" "$scratch_dev"; do
    rm -f "$image"
    "$EXTENTFS" mkfs "$image" --size "$IMAGE_SIZE" --block-size "$BLOCK_SIZE" >/dev/null ||
        die "extentfs mkfs $image failed"
done

cat >"$WORK/df" <<'DF'
#!/bin/sh
# df for xfstests: the kernel lists an extentfs mount as type fuse.extentfs, xfstests expects FSTYP (fuse).
df "$@" | sed -e 's/ fuse\.extentfs / fuse /'
DF
chmod +x "$WORK/df"

options="allow_other${MOUNT_OPTIONS:+,$MOUNT_OPTIONS}"
cat >"$WORK/local.config" <<CONFIG
# Written by extentfs's scripts/xfstests.sh.
export FSTYP=fuse
export FUSE_SUBTYP=.extentfs
export TEST_DEV=$test_dev
export TEST_DIR=$test_dir
export SCRATCH_DEV=$scratch_dev
export SCRATCH_MNT=$scratch_mnt
export TEST_FS_MOUNT_OPTS="-o $options"
export MOUNT_OPTIONS="-o $options"
export RESULT_BASE=$WORK/results
export DF_PROG="$WORK/df -T -P"
CONFIG

exclude_args=()
: >"$WORK/exclude"
if [[ "${NO_EXCLUDE:-0}" != 1 ]]; then
    # shellcheck disable=SC2086 # EXCLUDE_GROUPS and EXCLUDE_TESTS are space-separated lists
    groups="$(printf '%s\n' "${EXCLUDED_GROUPS[@]}" ${EXCLUDE_GROUPS:-} | grep -v '^$' | paste -sd, -)"
    exclude_args+=(-x "$groups")
    # shellcheck disable=SC2086
    { printf '%s\n' "${EXCLUDED_TESTS[@]}"; printf '%s\n' ${EXCLUDE_TESTS:-}; } >>"$WORK/exclude"
    exclude_args+=(-E "$WORK/exclude")
fi
if [[ -n "${TESTS:-}" ]]; then
    read -r -a selection <<<"$TESTS"
    what="tests ${TESTS}"
else
    selection=(-g "$GROUP")
    what="group $GROUP"
fi

# The tests ./check would run (-n: list only), for the totals and for a run cut short.
(cd "$XFSTESTS" && HOST_OPTIONS="$WORK/local.config" ./check -n "${exclude_args[@]}" "${selection[@]}") \
    >"$WORK/planned.out" 2>&1 || true
planned=$(grep -cE '^[a-z0-9]+/[0-9]+' "$WORK/planned.out" || true)

log "xfstests $what: $planned tests (excluded groups: ${groups:-none}); preload library: $([[ "$PRELOAD" == 0 ]] && echo no || echo "$EFS_PRELOAD_LIB"); work directory $WORK"
start=$SECONDS
status=0
timeout_args=()
((TIMEOUT == 0)) || timeout_args=(timeout -k 120 "$TIMEOUT")
preload=()
[[ "$PRELOAD" == 0 ]] || preload=(env "LD_PRELOAD=$EFS_PRELOAD_LIB${LD_PRELOAD:+:$LD_PRELOAD}")
(cd "$XFSTESTS" && HOST_OPTIONS="$WORK/local.config" "${timeout_args[@]}" "${preload[@]}" ./check \
    "${check_args[@]}" "${exclude_args[@]}" "${selection[@]}") 2>&1 | tee "$WORK/check.out" || status=$?
elapsed=$((SECONDS - start))

failures=()
timed_out=0
if ((TIMEOUT > 0 && (status == 124 || status == 137))); then
    timed_out=1
    failures+=("./check stopped after TIMEOUT=${TIMEOUT}s")
fi
unmount_all || failures+=("unmounting the test or scratch image failed")
fsck_result=""
for image in "$test_dev" "$scratch_dev"; do
    name="$(basename "$image" .img)"
    if "$EXTENTFS" fsck "$image" >"$WORK/fsck-$name.out" 2>&1; then
        fsck_result+=" $name clean;"
    else
        fsck_result+=" $name NOT clean ($WORK/fsck-$name.out);"
        failures+=("fsck of the $name image: $(head -5 "$WORK/fsck-$name.out" | tr '\n' ' ')")
    fi
done

# One line per test in check's output: "generic/001 4s ...  5s" (passed), "generic/002 [not run]
# REASON", "generic/003 - output mismatch (see ...)", "[failed, exit status N]", "_check_dmesg:
# ..." (failed), "[expunged]" (excluded). check's own "Failures:" line, when it got to print
# one, is taken too. A test still running when TIMEOUT stopped check is "interrupted".
awk '
    /^[a-z0-9]+\/[0-9]+([ \t]|$)/ {
        test = $1; rest = substr($0, length($1) + 1)
        if (rest ~ /\[not run\]/) { sub(/^.*\[not run\] */, "", rest); status[test] = "notrun"; why[test] = rest }
        else if (rest ~ /\[expunged\]/) status[test] = "expunged"
        else if (rest ~ /output mismatch|\[failed|_check_|no qualified output/) status[test] = "failed"
        else if (rest ~ /[0-9]+s[ \t]*$/) status[test] = "passed"
        else status[test] = "interrupted"
        order[++n] = test
        next
    }
    /^Failures: / { for (i = 2; i <= NF; i++) { if (!($i in status)) order[++n] = $i; status[$i] = "failed" } }
    END { for (i = 1; i <= n; i++) { t = order[i]; if (!(t in seen)) { seen[t] = 1; print t "\t" status[t] "\t" why[t] } } }
' "$WORK/check.out" >"$WORK/tests.tsv"
count() { awk -F'\t' -v s="$1" '$2 == s { n++ } END { print n + 0 }' "$WORK/tests.tsv"; }
passed=$(count passed)
failed=$(count failed)
notrun=$(count notrun)
interrupted=$(count interrupted)
expunged=$(count expunged)
ran=$((passed + failed + notrun + interrupted))

echo
echo "xfstests on extentfs ($(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) cores, ${elapsed}s): $what"
printf '  %d passed, %d failed, %d not run, of %d tests checked' "$passed" "$failed" "$notrun" "$ran"
((interrupted == 0)) || printf ' (%d interrupted)' "$interrupted"
((expunged == 0)) || printf ' (%d more excluded by test)' "$expunged"
printf '; %d planned\n' "$planned"
((timed_out == 0)) || printf '  PARTIAL: stopped after %ss; %d of the %d planned tests were not reached\n' \
    "$TIMEOUT" "$((planned - ran - expunged))" "$planned"
printf '  fsck after the run:%s\n' "${fsck_result%;}"
if ((failed > 0)); then
    printf '  failed: %s\n' "$(awk -F'\t' '$2 == "failed" { printf "%s ", $1 }' "$WORK/tests.tsv")"
    echo "  (each test's output: $WORK/results/<test>.out.bad and .full)"
fi
((interrupted == 0)) || printf '  interrupted: %s\n' "$(awk -F'\t' '$2 == "interrupted" { printf "%s ", $1 }' "$WORK/tests.tsv")"
echo "  per test: $WORK/tests.tsv (test, status, reason not run)"

((failed == 0)) || failures+=("$failed tests failed")
((interrupted == 0)) || failures+=("$interrupted tests interrupted")
if ((timed_out == 0 && status != 0 && failed == 0)); then
    failures+=("./check exited with status $status")
fi
if ((${#failures[@]} > 0)); then
    printf 'FAILED: %s\n' "${failures[@]}" >&2
    exit 1
fi
log "xfstests: no failures; fsck of both images clean"
