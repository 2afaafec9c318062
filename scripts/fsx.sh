#!/usr/bin/env bash
# xfstests' fsx on a fresh extentfs mount, through the preload library.
#
#   FSX=/path/to/xfstests/ltp/fsx scripts/fsx.sh
#
# fsx is not part of extentfs: build it from xfstests yourself and name it with FSX. It runs on a
# file of a fresh image, with LD_PRELOAD=libExtentFSPreload.so so that its collapse, insert and
# unshare (fallocate) and clone and dedupe (ioctl) calls reach extentfs; afterwards the image is
# unmounted and must pass fsck. The script fails when fsx fails, when fsck does not report the
# image clean, and when fsx finds one of the space operations unsupported at startup (it would
# quietly leave it out of the run otherwise): preallocation, keep size, punch, zero, collapse,
# insert, unshare, clone, dedupe, copy range. Features extentfs does not claim (atomic writes,
# uncached I/O, XFS exchange range) are only reported.
#
# Environment: FSX (required), FSX_OPS (default 100000), FSX_SEED (default 1), FSX_ARGS (more fsx
# options, e.g. "-l 1048576 -o 131072"), BLOCK_SIZE (default 4096), IMAGE_SIZE (default 1G),
# EXTENTFS_BUILD=debug|release, EXTENTFS_BIN, EXTENTFS_PRELOAD, WORK_DIR. fsx's logs (.fsxlog,
# .fsxgood, .fsxops) are kept in the work directory when it fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

[[ -n "${FSX:-}" ]] || die "set FSX to xfstests' fsx binary (e.g. FSX=/path/to/xfstests/ltp/fsx $0)"
[[ -f "$FSX" && -x "$FSX" ]] || die "set FSX to xfstests' fsx binary: '$FSX' is not an executable file"
FSX="$(realpath "$FSX")"
FSX_OPS="${FSX_OPS:-100000}"
FSX_SEED="${FSX_SEED:-1}"
BLOCK_SIZE="${BLOCK_SIZE:-4096}"
read -r -a extra_args <<<"${FSX_ARGS:-}"

efs_init fsx
image="$EFS_WORK/fsx.img"
mnt="$EFS_WORK/mnt"
efs_mkfs "$image" "$BLOCK_SIZE"
efs_mount "$image" "$mnt" || die "cannot mount a fresh image"

log "fsx -N $FSX_OPS -S $FSX_SEED ${extra_args[*]} on extentfs (block size $BLOCK_SIZE), preload $EFS_PRELOAD"
status=0
(cd "$EFS_WORK" && LD_PRELOAD="$EFS_PRELOAD" "$FSX" -N "$FSX_OPS" -S "$FSX_SEED" -P "$EFS_WORK" \
    "${extra_args[@]}" "$mnt/fsx.file") 2>&1 | tee "$EFS_WORK/fsx.out" || status=$? # pipefail: fsx's status

failures=()
((status == 0)) || failures+=("fsx exited with status $status (logs: $EFS_WORK/fsx.file.fsxlog)")
while read -r line; do
    failures+=("fsx found an operation unsupported: $line")
done < <(grep -E 'does not support (fallocate|clone|dedupe|copy)' "$EFS_WORK/fsx.out" || true)
grep -q 'operations completed A-OK' "$EFS_WORK/fsx.out" || failures+=("fsx did not report its operations completed A-OK")

efs_umount "$mnt" || failures+=("unmounting after fsx failed (daemon log in $EFS_WORK)")
efs_fsck "$image" || failures+=("fsck of the image after fsx did not report it clean")

if ((${#failures[@]} > 0)); then
    printf 'FAILED: %s\n' "${failures[@]}" >&2
    exit 1
fi
log "fsx: $FSX_OPS operations passed with every space operation enabled; fsck clean"
