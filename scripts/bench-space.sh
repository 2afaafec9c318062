#!/usr/bin/env bash
# Space operations cost what they touch, not the file size: on a 64 GiB sparse file with EXTENTS
# extents (one 4 KiB block written every 8 KiB), time collapse, insert and punch near the start,
# a clone and a dedupe of the whole file, SEEK_DATA far out, and a remount (which loads and checks
# every extent), and print the figures. Through a real mount, with the release build by default.
#
# Environment: EXTENTS (100000), EXTENTFS_BUILD (release), IMAGE_SIZE (2G), plus scripts/lib/mount.sh's.
set -euo pipefail
EXTENTFS_BUILD="${EXTENTFS_BUILD:-release}"
IMAGE_SIZE="${IMAGE_SIZE:-2G}"
export EXTENTFS_BUILD IMAGE_SIZE
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"
EXTENTS="${EXTENTS:-100000}"
efs_require python3 xfs_io
efs_init bench-space
efs_mkfs "$EFS_WORK/space.img" 4096
MNT="$EFS_WORK/mnt"
efs_mount "$EFS_WORK/space.img" "$MNT" || die "mount failed"

log "writing $EXTENTS separate 4 KiB extents into a 64 GiB file"
python3 - "$MNT/big" "$EXTENTS" <<'PY'
import os, sys
path, count = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
block = b"x" * 4096
for i in range(count):
    os.pwrite(fd, block, i * 8192)
os.ftruncate(fd, 64 << 30)
os.fsync(fd)
os.close(fd)
PY
extents_in() { "$EFS_BIN" map "$1" | grep -cE '^ *[0-9]+:'; }
before=$(extents_in "$MNT/big")

# Prints the wall time of a command in milliseconds; fails if the command fails.
millis() {
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}

declare -a rows
row() { rows+=("$(printf '%-48s %10s ms' "$1" "$2")"); }
row "collapse 4 KiB at offset 0" "$(millis "$EFS_BIN" collapse "$MNT/big" 0 4096)"
row "insert 4 KiB at offset 0" "$(millis "$EFS_BIN" insert "$MNT/big" 0 4096)"
row "punch 64 KiB at offset 4 KiB" "$(millis "$EFS_BIN" punch "$MNT/big" 4096 65536)"
row "clone the whole file" "$(millis "$EFS_BIN" clone "$MNT/big" "$MNT/copy")"
row "dedupe the whole written range" "$(millis "$EFS_BIN" dedupe "$MNT/big" 0 "$MNT/copy" 0 $((EXTENTS * 8192)))"
row "SEEK_DATA from 60 GiB (past the last extent)" "$(millis xfs_io -c "seek -d 60g" "$MNT/big")"
row "unmount (writeback, checkpoint)" "$(millis efs_umount "$MNT")"
row "mount (load and check every extent)" "$(millis efs_mount "$EFS_WORK/space.img" "$MNT")"
after=$(extents_in "$MNT/big")
efs_umount "$MNT"
efs_fsck "$EFS_WORK/space.img" >/dev/null || die "fsck after the benchmark is not clean"

printf '\n64 GiB file, %s extents before, %s after (extentfs %s build)\n' "$before" "$after" "$EXTENTFS_BUILD"
printf '%s\n' "${rows[@]}"
