#!/usr/bin/env bash
# Data verification with fio: for each block size, a fresh image is written sequentially and
# randomly by two jobs with crc32c verify, unmounted and checked with fsck, then remounted and
# verified again (verify_only), so the data has to survive the unmount, not just the page cache.
# Overridable: EXTENTFS_BIN, BLOCK_SIZES, IMAGE_SIZE, FIO_SIZE, WORK_DIR.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BLOCK_SIZES="${BLOCK_SIZES:-1024 4096}"
IMAGE_SIZE="${IMAGE_SIZE:-1G}"
FIO_SIZE="${FIO_SIZE:-64m}"
BIN="$(extentfs_bin debug)"

command -v fio >/dev/null 2>&1 || die "fio is not installed (run scripts/install-deps.sh)"
command -v python3 >/dev/null 2>&1 || die "python3 is not installed (run scripts/install-deps.sh)"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing: cannot mount"
if [[ ! -x "$BIN" && -z "${EXTENTFS_BIN:-}" ]]; then
    log "building extentfs (debug)"
    (cd "$REPO_ROOT" && swift build)
fi
[[ -x "$BIN" ]] || die "extentfs binary not found at $BIN"

WORK="${WORK_DIR:-$(mktemp -d /var/tmp/extentfs-fio.XXXXXX)}"
MNT="$WORK/mnt"
mkdir -p "$MNT"

cleanup() {
    local status=$?
    if is_mounted "$MNT"; then
        "$BIN" umount "$MNT" 2>/dev/null || force_unmount "$MNT"
    fi
    if ((status == 0)); then
        rm -rf "$WORK"
    else
        log "fio verification FAILED; images, fio output and daemon logs kept in $WORK"
    fi
}
trap cleanup EXIT

# $1 = job file, $2 = 1 for a verify-only pass over data an earlier pass wrote.
write_job_file() {
    cat > "$1" <<JOB
[global]
directory=$MNT
ioengine=psync
direct=0
bs=4k
size=$FIO_SIZE
numjobs=2
verify=crc32c
verify_fatal=1
do_verify=1
end_fsync=1
verify_only=$2

[seq-write]
rw=write

[rand-write]
stonewall
rw=randwrite
JOB
}

# $1 = job file, $2 = name of this pass (for output files).
run_fio() {
    local job="$1" name="$2" status=0
    log "fio: $name"
    # From $WORK: fio drops *-verify.state files into its working directory.
    (cd "$WORK" && fio --output-format=json --output="$WORK/$name.json" "$job" 2> "$WORK/$name.stderr") || status=$?
    if ((status != 0)); then
        cat "$WORK/$name.stderr" >&2
        die "fio $name exited with status $status"
    fi
    if grep -Eiq 'verify|crc32c|bad (magic|header)' "$WORK/$name.stderr"; then
        cat "$WORK/$name.stderr" >&2
        die "fio $name reported verify errors"
    fi
    python3 - "$WORK/$name.json" "$name" <<'PY'
import json, sys
path, name = sys.argv[1], sys.argv[2]
with open(path) as f:
    text = f.read()
# fio may print notices before the JSON object.
report = json.loads(text[text.index("{"):])
problems = []
for job in report["jobs"]:
    label = f'{job["jobname"]}'
    if job.get("error", 0) != 0:
        problems.append(f'{label}: error {job["error"]}')
    if job["read"]["io_bytes"] == 0:
        problems.append(f'{label}: verified nothing (read 0 bytes)')
if not report["jobs"]:
    problems.append("no jobs in fio output")
for p in problems:
    print(f"fio {name}: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}

fsck_clean() {
    local image="$1" out status=0
    out="$("$BIN" fsck "$image" 2>&1)" || status=$?
    printf '%s\n' "$out"
    ((status == 0)) || die "fsck $image exited with status $status"
    grep -Eq '(^|[^[:alpha:]])clean([^[:alpha:]]|$)' <<<"$out" || die "fsck $image did not report clean"
}

mount_image() {
    "$BIN" mount "$1" "$MNT" --log "$2" || die "mount $1 failed (daemon log: $2)"
    is_mounted "$MNT" || die "mount $1 returned 0 but $MNT is not a mount point"
}

unmount_image() {
    "$BIN" umount "$MNT" || die "umount $MNT failed"
    ! is_mounted "$MNT" || die "umount returned 0 but $MNT is still mounted"
}

for bs in $BLOCK_SIZES; do
    image="$WORK/fio-$bs.img"
    log "block size $bs: mkfs $IMAGE_SIZE image"
    rm -f "$image"
    "$BIN" mkfs "$image" --size "$IMAGE_SIZE" --block-size "$bs"

    mount_image "$image" "$WORK/daemon-$bs.log"
    write_job_file "$WORK/write-$bs.fio" 0
    run_fio "$WORK/write-$bs.fio" "write-verify-$bs"
    unmount_image
    fsck_clean "$image"

    mount_image "$image" "$WORK/daemon-$bs-remount.log"
    write_job_file "$WORK/reverify-$bs.fio" 1
    run_fio "$WORK/reverify-$bs.fio" "reverify-$bs"
    unmount_image
    fsck_clean "$image"
    rm -f "$image"
done

log "fio verification passed for block sizes: $BLOCK_SIZES"
