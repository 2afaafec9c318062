#!/usr/bin/env bash
# A block device as the backing store: a loop device over a file, then mkfs, mount, write, unmount,
# fsck, remount and compare, and mkfs refusing to overwrite it without --force. Ends with
# "N passed, M failed". Fails (never skips) when no loop device can be had.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"
efs_require losetup cmp head
efs_init blockdev
passed=0
failed=0
check() { # $1 description, rest: command
    local what="$1"
    shift
    if "$@" >/dev/null 2>&1; then echo "PASS: $what"; passed=$((passed + 1)); else echo "FAIL: $what"; failed=$((failed + 1)); fi
}
LOOP=""
efs_on_exit() { [[ -z "$LOOP" ]] || losetup -d "$LOOP" 2>/dev/null || true; }
efs_final() { echo "$passed passed, $failed failed"; (($1 == 0 && failed == 0)); }

truncate -s 256M "$EFS_WORK/backing.img"
LOOP="$(losetup -f --show "$EFS_WORK/backing.img")" || die "no loop device could be set up (losetup failed)"
head -c 5M /dev/urandom >"$EFS_WORK/data"
check "mkfs on $LOOP" "$EFS_BIN" mkfs "$LOOP" --block-size 1024
check "mount $LOOP" efs_mount "$LOOP" "$EFS_WORK/mnt"
check "write 5 MiB through the mount" cp "$EFS_WORK/data" "$EFS_WORK/mnt/data"
check "unmount" efs_umount "$EFS_WORK/mnt"
check "fsck $LOOP clean" efs_fsck "$LOOP"
check "remount $LOOP" efs_mount "$LOOP" "$EFS_WORK/mnt"
check "data intact after remount" cmp "$EFS_WORK/data" "$EFS_WORK/mnt/data"
check "unmount again" efs_umount "$EFS_WORK/mnt"
check "mkfs refuses an existing extentfs device without --force" bash -c "! '$EFS_BIN' mkfs '$LOOP'"
