#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs every Swift test (engine unit tests and
# the integration tests that mount real images), then the fio data-verification run.
# Anything that cannot run (no /dev/fuse, a missing tool) fails; nothing is skipped.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

# A hung daemon must fail the run, not stall it.
SWIFT_TEST_TIMEOUT="${SWIFT_TEST_TIMEOUT:-40m}"

bash scripts/install-deps.sh
# Every mount's daemon and every nbdkit that forks is an orphan: reaped by this script, not left as
# a zombie to PID 1 (install-deps.sh ran first: it installs python3, which this needs).
become_subreaper "$@"

log "building (debug) with tests"
swift build
swift build --build-tests

export EXTENTFS_BIN="${EXTENTFS_BIN:-$REPO_ROOT/.build/debug/extentfs}"
[[ -x "$EXTENTFS_BIN" ]] || die "build did not produce $EXTENTFS_BIN"

# Mounts the integration tests leave behind if they are killed; their directories carry this tag.
cleanup_test_mounts() {
    local dir
    while read -r dir; do
        log "removing leftover test mount $dir"
        force_unmount "$dir"
    done < <(awk '$5 ~ /extentfs-it-/ { print $5 }' /proc/self/mountinfo)
}
trap cleanup_test_mounts EXIT

failures=()

log "running swift test (timeout $SWIFT_TEST_TIMEOUT)"
status=0
timeout --kill-after=60 "$SWIFT_TEST_TIMEOUT" swift test || status=$?
if ((status == 124 || status == 137)); then
    failures+=("swift test did not finish within $SWIFT_TEST_TIMEOUT (a hung mount?)")
elif ((status != 0)); then
    failures+=("swift test failed (exit $status)")
fi
cleanup_test_mounts

# The coverage-guided decoder fuzzer needs a build of its own (libFuzzer); swift test ran the
# image fuzzer and replayed both corpora already.
log "running the decoder fuzzer for a fixed budget (seed 1)"
bash scripts/fuzz.sh --short || failures+=("scripts/fuzz.sh --short failed (exit $?)")

# Runs even after a swift test failure: its result tells a data-path bug from a test-harness one.
log "running fio verification"
bash scripts/fio-verify.sh || failures+=("scripts/fio-verify.sh failed (exit $?)")

log "running the block-device backing test (a loop device)"
bash scripts/blockdev-test.sh || failures+=("scripts/blockdev-test.sh failed (exit $?)")

log "running fio verify and the exerciser through mounts on NBD exports (nbdkit, Unix socket and TCP)"
bash scripts/nbd-test.sh || failures+=("scripts/nbd-test.sh failed (exit $?)")

log "running the standard tools (xfs_io, fallocate, cp --reflink, duperemove) through the preload library"
bash scripts/tools-test.sh || failures+=("scripts/tools-test.sh failed (exit $?)")

log "running the exerciser (in-process, racing readers, through a mount; block sizes 512 to 65536)"
EXTENTFS="$EXTENTFS_BIN" bash scripts/exercise.sh || failures+=("scripts/exercise.sh failed (exit $?)")

log "running the stress run through a mount"
bash scripts/stress-mount.sh || failures+=("scripts/stress-mount.sh failed (exit $?)")

# xfstests' fsx, when the user names one; the project never builds it.
if [[ -n "${FSX:-}" ]]; then
    log "running fsx ($FSX)"
    bash scripts/fsx.sh || failures+=("scripts/fsx.sh failed (exit $?)")
fi

if ((${#failures[@]} > 0)); then
    printf 'FAILED: %s\n' "${failures[@]}" >&2
    exit 1
fi
log "all tests passed"
