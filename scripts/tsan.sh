#!/usr/bin/env bash
# The engine's tests under ThreadSanitizer (swift test --sanitize=thread): the rule proofs, the
# stress run and the rest of Tests/ExtentFSTests, in a build folder of their own. Fails on any test
# failure or any ThreadSanitizer report.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"
bash scripts/install-deps.sh
log "engine tests under ThreadSanitizer (build folder .build-tsan)"
log_file="$(mktemp /tmp/extentfs-tsan.XXXXXX)"
status=0
# detect_deadlocks=0: TSan's lock-order checker tracks a bounded number of mutexes held at once
# per thread, and a read or writeback legitimately holds a lock on each page of its batch (up to
# 256); past the bound it fails an internal CHECK and then hangs inside its own runtime. Race
# detection does not depend on it; the lock order is documented in Support/Locks.swift.
EXTENTFS_STRESS_SECONDS="${EXTENTFS_STRESS_SECONDS:-4}" TSAN_OPTIONS="halt_on_error=1 detect_deadlocks=0 ${TSAN_OPTIONS:-}" \
    timeout --kill-after=60 "${TSAN_TIMEOUT:-40m}" \
    swift test --sanitize=thread --scratch-path .build-tsan --filter 'ExtentFSTests\.' 2>&1 | tee "$log_file" || status=$?
if grep -q "WARNING: ThreadSanitizer" "$log_file"; then
    die "ThreadSanitizer reported a race (see $log_file)"
fi
((status == 0)) || die "swift test under ThreadSanitizer failed (exit $status, log $log_file)"
log "no ThreadSanitizer reports"
