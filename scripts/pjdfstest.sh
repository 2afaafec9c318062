#!/usr/bin/env bash
# pjdfstest (POSIX system call conformance) on a fresh extentfs image, mounted through the
# installed mount path (mount -t fuse.extentfs), as a user would mount it.
#
#   PJDFSTEST=/path/to/pjdfstest sudo -E bash scripts/pjdfstest.sh
#
# pjdfstest is not part of extentfs: clone https://github.com/pjd/pjdfstest and build it yourself
# (its README: autoreconf -ifs && ./configure && make pjdfstest; it needs autoconf, automake, a C
# compiler, and perl's prove to run), then name the checkout with PJDFSTEST. The project never
# builds or commits it.
#
# What it does: installs extentfs with scripts/install.sh when mount(8)'s helper
# /sbin/mount.fuse.extentfs is missing (or when INSTALL=1; BUILD_DIR=.build/debug installs an
# existing build instead of making the slow release build), makes a fresh image, mounts it with
# `mount -t fuse.extentfs IMAGE DIR -o allow_other` (pjdfstest runs calls as other users, which a
# FUSE mount admits only with allow_other), runs `prove -r PJDFSTEST/tests` as root from the mount
# point (pjdfstest's README), unmounts, and checks the image with extentfs fsck. At the end it
# prints the test files and assertions that passed and failed. Exit status 0 only when every
# assertion passed, prove reported PASS, and fsck found the image clean.
#
# Environment: PJDFSTEST (required), TESTS (test directories or files under PJDFSTEST/tests, e.g.
# "chmod rename/00.t"; default all), PROVE_ARGS (more prove options, e.g. "-v" or "-j2"),
# IMAGE_SIZE (default 4G, sparse), BLOCK_SIZE (4096), MOUNT_OPTIONS (more -o options), INSTALL
# (auto|1|0), BUILD_DIR, PREFIX (where install.sh put extentfs: /usr/local), WORK_DIR (kept; by
# default a new directory under /var/tmp, removed when everything passed). prove's output is kept
# in WORK_DIR/prove.out.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ -n "${PJDFSTEST:-}" ]] ||
    die "set PJDFSTEST to a pjdfstest checkout you built (git clone https://github.com/pjd/pjdfstest; autoreconf -ifs && ./configure && make pjdfstest)"
[[ -d "$PJDFSTEST" ]] || die "PJDFSTEST=$PJDFSTEST is not a directory"
PJDFSTEST="$(realpath "$PJDFSTEST")"
[[ -d "$PJDFSTEST/tests" && -f "$PJDFSTEST/tests/conf" ]] ||
    die "PJDFSTEST=$PJDFSTEST is not a pjdfstest checkout (no tests/conf)"
[[ -x "$PJDFSTEST/pjdfstest" ]] ||
    die "pjdfstest is not built in $PJDFSTEST: run there autoreconf -ifs && ./configure && make pjdfstest"
((EUID == 0)) || die "pjdfstest must run as root (it changes owners and runs calls as other users)"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing: this machine cannot mount FUSE filesystems"
command -v prove >/dev/null 2>&1 || die "prove is missing (Debian: perl)"

PREFIX="${PREFIX:-/usr/local}"
IMAGE_SIZE="${IMAGE_SIZE:-4G}"
BLOCK_SIZE="${BLOCK_SIZE:-4096}"
INSTALL="${INSTALL:-auto}"
read -r -a prove_args <<<"${PROVE_ARGS:-}"

# The installed mount path: mount(8) runs /sbin/mount.fuse.extentfs, which runs $PREFIX/bin/extentfs.
if [[ "$INSTALL" == 1 || ("$INSTALL" == auto && ! -x /sbin/mount.fuse.extentfs) ]]; then
    log "installing extentfs (scripts/install.sh${BUILD_DIR:+, BUILD_DIR=$BUILD_DIR})"
    PREFIX="$PREFIX" bash "$REPO_ROOT/scripts/install.sh" >&2
fi
[[ -x /sbin/mount.fuse.extentfs ]] || die "/sbin/mount.fuse.extentfs is missing: run scripts/install.sh (or INSTALL=1)"
EXTENTFS="$PREFIX/bin/extentfs"
[[ -x "$EXTENTFS" ]] || die "$EXTENTFS is missing: run scripts/install.sh (or set PREFIX)"

WORK="${WORK_DIR:-$(mktemp -d /var/tmp/extentfs-pjdfstest.XXXXXX)}"
mkdir -p "$WORK/mnt"
image="$WORK/pjdfstest.img"
mnt="$(realpath "$WORK/mnt")"
mounted=0
status=0

cleanup() {
    local rc=$?
    trap - EXIT
    if ((mounted)) && is_mounted "$mnt"; then
        timeout 120 "$EXTENTFS" umount "$mnt" >/dev/null 2>&1 || force_unmount "$mnt"
    fi
    if ((rc == 0)) && [[ -z "${WORK_DIR:-}" ]]; then
        rm -rf "$WORK"
    else
        log "work directory kept (image, prove output): $WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT

rm -f "$image"
"$EXTENTFS" mkfs "$image" --size "$IMAGE_SIZE" --block-size "$BLOCK_SIZE" >/dev/null ||
    die "extentfs mkfs $image failed"
options="allow_other${MOUNT_OPTIONS:+,$MOUNT_OPTIONS}"
mount -t fuse.extentfs "$image" "$mnt" -o "$options" || die "mount -t fuse.extentfs $image $mnt -o $options failed"
mounted=1

targets=()
if [[ -n "${TESTS:-}" ]]; then
    read -r -a names <<<"$TESTS"
    for name in "${names[@]}"; do
        [[ -e "$PJDFSTEST/tests/$name" ]] || die "no test $name under $PJDFSTEST/tests"
        targets+=("$PJDFSTEST/tests/$name")
    done
else
    targets=("$PJDFSTEST/tests")
fi

log "prove -r ${prove_args[*]} ${targets[*]} (in $mnt, $(uname -r))"
start=$SECONDS
(cd "$mnt" && prove -r "${prove_args[@]}" "${targets[@]}") 2>&1 | tee "$WORK/prove.out" || status=$?
elapsed=$((SECONDS - start))

failures=()
((status == 0)) || failures+=("prove exited with status $status")
if timeout 300 "$EXTENTFS" umount "$mnt" >&2; then
    mounted=0
else
    failures+=("extentfs umount $mnt failed")
fi
if "$EXTENTFS" fsck "$image" >"$WORK/fsck.out" 2>&1; then
    fsck_result="clean"
else
    fsck_result="NOT clean (see $WORK/fsck.out)"
    failures+=("fsck of the image after pjdfstest: $(head -5 "$WORK/fsck.out" | tr '\n' ' ')")
fi

# prove's summary: "Files=237, Tests=8798, ..." and, when something failed, the "Test Summary
# Report": one line per failing file, "PATH (Wstat: W Tests: N Failed: F)", followed by
# "Failed tests: ..." and "Parse errors: ..." lines.
summary="$(grep -E '^Files=[0-9]+, Tests=[0-9]+' "$WORK/prove.out" | tail -1 || true)"
files=$(sed -nE 's/^Files=([0-9]+), Tests=([0-9]+).*/\1/p' <<<"$summary")
asserts=$(sed -nE 's/^Files=([0-9]+), Tests=([0-9]+).*/\2/p' <<<"$summary")
failed_files=$(awk '/^Test Summary Report/ { report = 1; next }
    report && /^[^ ].*\(Wstat: [0-9]+/ { n++ } END { print n + 0 }' "$WORK/prove.out")
failed_asserts=$(awk '/^Test Summary Report/ { report = 1; next }
    report && /\(Wstat: / { if (match($0, /Failed: [0-9]+/)) n += substr($0, RSTART + 8, RLENGTH - 8) }
    END { print n + 0 }' "$WORK/prove.out")
if [[ -z "$files" ]]; then
    failures+=("prove printed no summary (interrupted?)")
    files=0 asserts=0
fi
result="$(grep -E '^Result: ' "$WORK/prove.out" | tail -1 || true)"

echo
echo "pjdfstest on extentfs ($(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), ${elapsed}s, $(nproc) cores)"
printf '  test files: %d passed, %d failed, of %d\n' "$((files - failed_files))" "$failed_files" "$files"
printf '  assertions: %d passed, %d failed, of %d\n' "$((asserts - failed_asserts))" "$failed_asserts" "$asserts"
printf '  prove: %s; fsck after the run: %s\n' "${result:-no result line}" "$fsck_result"
if ((failed_files > 0)); then
    echo "  failing files (prove's Test Summary Report):"
    awk '/^Test Summary Report/ { report = 1; next } report && /^Files=/ { exit } report { print "    " $0 }' \
        "$WORK/prove.out"
fi
((failed_asserts == 0 && failed_files == 0)) || failures+=("$failed_asserts assertions failed in $failed_files files")
[[ "$result" == "Result: PASS" ]] || failures+=("prove did not report PASS")

if ((${#failures[@]} > 0)); then
    printf 'FAILED: %s\n' "${failures[@]}" >&2
    exit 1
fi
log "pjdfstest: every assertion passed; fsck clean"
