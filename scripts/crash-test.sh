#!/usr/bin/env bash
# The durability proof at length: the crash-replay tests (every flush point of each workload, with
# none, all and random subsets, some torn, of the writes in flight) and fault injection (EIO and
# ENOSPC at every write and flush), with more random workloads, longer ones, more subsets per crash
# point and no sampling of faults, on a release build. `swift test` runs the same tests with small
# budgets; this is the long run. Fails on any failure.
#
#   scripts/crash-test.sh            # defaults below
#   EXTENTFS_CRASH_SEEDS=50 EXTENTFS_CRASH_OPS=200 scripts/crash-test.sh
#
# Budgets (see Tests/ExtentFSTests/CrashTestSettings.swift): EXTENTFS_CRASH_SEEDS (default here
# 12), EXTENTFS_CRASH_OPS (120), EXTENTFS_CRASH_SUBSETS (6), EXTENTFS_FAULT_LIMIT (0 = every
# write and flush), EXTENTFS_CRASH_BLOCK_SIZES, EXTENTFS_CRASH_WORKLOAD, EXTENTFS_CRASH_TRACE=1.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

export EXTENTFS_CRASH_SEEDS="${EXTENTFS_CRASH_SEEDS:-12}"
export EXTENTFS_CRASH_OPS="${EXTENTFS_CRASH_OPS:-120}"
export EXTENTFS_CRASH_SUBSETS="${EXTENTFS_CRASH_SUBSETS:-6}"
export EXTENTFS_FAULT_LIMIT="${EXTENTFS_FAULT_LIMIT:-0}"

log "crash replay and fault injection, release build (seeds $EXTENTFS_CRASH_SEEDS, steps $EXTENTFS_CRASH_OPS, subsets $EXTENTFS_CRASH_SUBSETS, fault limit $EXTENTFS_FAULT_LIMIT)"
# swift test builds the tests with testable imports in release too (the tests use @testable).
swift test -c release --filter 'ExtentFSTests\.(CrashReplayTests|FaultInjectionTests|CrashCheckerSelfTests)' \
    || die "crash replay or fault injection failed (the failure messages above say block size, workload, seed, crash point or fault)"
log "crash replay and fault injection passed"
