#!/usr/bin/env bash
# The stress run through a real mount: the counterpart of Tests/ExtentFSTests/StressTests.swift.
#
# For each block size (BLOCK_SIZES, default "1024 4096") a fresh image (IMAGE_SIZE, default 256M)
# is made and mounted with a tiny page cache (CACHE_SIZE, default 256K, so reclaim runs all the
# time), and scripts/lib/stress_mount.py runs on it for STRESS_SECONDS (default 20) with
# STRESS_THREADS (default 4) threads and a fixed seed (STRESS_SEED, default 1): buffered and
# O_DIRECT pwrite and pread, mmap reads and writes, punch, zero range, collapse, insert, clone,
# dedupe, ftruncate and fsync on three shared files, every word of every read checked to be 0 or
# a record that was written. Then the image is unmounted (extentfs umount), fsck must report it
# clean, and it is mounted once more to read every word of every file back from disk.
#
# Prints "PASS: ..." or "FAIL: ..." per block size and ends with "N passed, M failed"; exits
# non-zero if anything failed. A missing tool is an error, never a skip.
#
# Environment: EXTENTFS_BUILD=debug|release, EXTENTFS_BIN, EXTENTFS_PRELOAD (with both set nothing
# is built), BLOCK_SIZES, IMAGE_SIZE, CACHE_SIZE, STRESS_SECONDS, STRESS_THREADS, STRESS_SEED,
# WORK_DIR.
set -euo pipefail
IMAGE_SIZE="${IMAGE_SIZE:-256M}" # before mount.sh, which defaults it to 1G
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

BLOCK_SIZES="${BLOCK_SIZES:-1024 4096}"
CACHE_SIZE="${CACHE_SIZE:-256K}"
STRESS_SECONDS="${STRESS_SECONDS:-20}"
STRESS_THREADS="${STRESS_THREADS:-4}"
STRESS_SEED="${STRESS_SEED:-1}"
STRESS="$REPO_ROOT/scripts/lib/stress_mount.py"

passed=0
failed=0
pass() { printf 'PASS: %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL: %s\n' "$*"; failed=$((failed + 1)); }
# Runs last, after the mounts are gone, so that the summary is the last line even when the script
# stops early (a missing tool, a failed mkfs): that counts as a failure.
efs_final() {
    if (($1 != 0 && failed == 0)); then fail "stopped early (exit $1) before every block size ran"; fi
    echo "$passed passed, $failed failed"
    ((failed == 0))
}

efs_require python3 timeout
[[ -f "$STRESS" ]] || die "$STRESS is missing"
efs_init stress

# efs_mount with the small page cache: $1 image, $2 mount point.
stress_mount() {
    local image="$1" mnt="$2" logfile
    mkdir -p "$mnt"
    logfile="$EFS_WORK/daemon-${#EFS_MOUNTS[@]}.log"
    EFS_MOUNTS+=("$mnt")
    "$EFS_BIN" mount "$image" "$mnt" --cache-size "$CACHE_SIZE" --log "$logfile" ||
        { log "extentfs mount $image $mnt failed (daemon log: $logfile)"; return 1; }
    is_mounted "$mnt" || { log "extentfs mount returned 0 but $mnt is not a mount point"; return 1; }
}

# A hung daemon must fail the run, not stall it: the stress may overrun its budget by this much.
STRESS_TIMEOUT=$((${STRESS_SECONDS%.*} + 600))

# $1 block size. Returns non-zero, having said why, on the first problem.
stress_one() {
    local bs="$1" image="$EFS_WORK/bs$1.img" mnt="$EFS_WORK/mnt-bs$1" status=0
    efs_mkfs "$image" "$bs"
    stress_mount "$image" "$mnt" || { echo "mount failed"; return 1; }
    mkdir "$mnt/stress" || { echo "mkdir $mnt/stress failed"; return 1; }
    timeout --kill-after=30 "$STRESS_TIMEOUT" python3 "$STRESS" "$mnt/stress" --seconds "$STRESS_SECONDS" \
        --block-size "$bs" --threads "$STRESS_THREADS" --seed "$STRESS_SEED" || status=$?
    if ((status != 0)); then
        efs_umount "$mnt" || true
        if ((status == 124 || status == 137)); then echo "the stress run timed out"; else echo "the stress run failed (exit $status)"; fi
        return 1
    fi
    efs_umount "$mnt" || { echo "umount failed"; return 1; }
    efs_fsck "$image" || { echo "fsck is not clean"; return 1; }
    stress_mount "$image" "$mnt" || { echo "mount after fsck failed"; return 1; }
    status=0
    timeout --kill-after=30 600 python3 "$STRESS" "$mnt/stress" --verify || status=$?
    efs_umount "$mnt" || { echo "umount after the read-back failed"; return 1; }
    ((status == 0)) || { echo "reading the files back after a remount found problems (exit $status)"; return 1; }
}

for bs in $BLOCK_SIZES; do
    log "block size $bs: ${STRESS_SECONDS}s, $STRESS_THREADS threads, seed $STRESS_SEED, cache $CACHE_SIZE, image $IMAGE_SIZE"
    out="$EFS_WORK/stress-bs$bs.out"
    status=0
    stress_one "$bs" > >(tee "$out") 2>&1 || status=$?
    wait $! 2>/dev/null || true # let tee finish before the verdict line
    if ((status == 0)); then
        pass "stress through a mount, block size $bs"
    else
        fail "stress through a mount, block size $bs: $(tail -n 1 "$out") (work directory kept: $EFS_WORK)"
    fi
done
