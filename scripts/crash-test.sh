#!/usr/bin/env bash
# The durability proof at length: the crash-replay tests (every flush point of each workload, with
# none, all and random subsets, some torn, of the writes in flight) and fault injection (EIO and
# ENOSPC at every write and flush), with more random workloads, longer ones, more subsets per crash
# point and no sampling of faults, on a release build; the crash replay also with the image on an
# NBD export (nbdkit, whose durable image is checked at every flush point too). `swift test` runs
# the same tests with small budgets; this is the long run. Fails on any failure.
#
#   scripts/crash-test.sh            # defaults below
#   EXTENTFS_CRASH_SEEDS=50 EXTENTFS_CRASH_OPS=200 scripts/crash-test.sh
#
# Budgets (see Tests/ExtentFSTests/CrashTestSettings.swift): EXTENTFS_CRASH_SEEDS (default here
# 12), EXTENTFS_CRASH_OPS (120), EXTENTFS_CRASH_SUBSETS (6), EXTENTFS_FAULT_LIMIT (0 = every
# write and flush), EXTENTFS_CRASH_BLOCK_SIZES, EXTENTFS_CRASH_WORKLOAD, EXTENTFS_CRASH_TRACE=1.
# Each random seed runs in a process of its own: the engine does not free the memory of pages
# still cached at unmount, and thousands of mounts in one process add up.
set -uo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

seeds="${EXTENTFS_CRASH_SEEDS:-12}"
export EXTENTFS_CRASH_OPS="${EXTENTFS_CRASH_OPS:-120}"
export EXTENTFS_CRASH_SUBSETS="${EXTENTFS_CRASH_SUBSETS:-6}"
export EXTENTFS_FAULT_LIMIT="${EXTENTFS_FAULT_LIMIT:-0}"
tests='ExtentFSTests\.(CrashReplayTests|CrashReplayOnNBDTests|FaultInjectionTests)'

log "crash replay and fault injection, release build (seeds $seeds, steps $EXTENTFS_CRASH_OPS, subsets $EXTENTFS_CRASH_SUBSETS, fault limit $EXTENTFS_FAULT_LIMIT)"
# swift test (not swift build) builds the tests with testable imports in release (they use @testable).
log "building, and the checker's self-test"
swift test -c release --filter 'ExtentFSTests\.CrashCheckerSelfTests' || die "the release build or the checker's self-test failed"
failed=0
log "the scripted workloads"
swift test -c release --skip-build --filter "$tests" --skip testRandomWorkloads || failed=1
for ((seed = 1; seed <= seeds; seed++)); do
    log "random workload, seed $seed"
    EXTENTFS_CRASH_FIRST_SEED=$seed EXTENTFS_CRASH_SEEDS=1 swift test -c release --skip-build --filter "$tests/testRandomWorkloads" || failed=1
done
((failed == 0)) || die "crash replay or fault injection failed (the failure messages above say block size, workload, seed, crash point or fault)"
log "crash replay and fault injection passed"
