#!/usr/bin/env bash
# First benchmark: the same fio jobs on extentfs (release build) and on fuse2fs (ext4 served from
# user space through FUSE, Debian's e2fsprogs), one after the other, printed side by side.
# Both run on a sparse image of the same size in the same directory, with 4 KiB blocks.
#
# Anchor to add later: libfuse's passthrough_ll example over a local directory, which measures
# what FUSE itself costs with no filesystem logic behind it.
#
# Jobs, on one FILE_SIZE file: sequential 1 MiB write (end_fsync), sequential 1 MiB read,
# random 4 KiB read and random 4 KiB write (end_fsync), RUNTIME seconds each for the random ones.
# Buffered I/O (direct=0), psync. Before every read job the filesystem is unmounted and mounted
# again, and the host page cache dropped, so reads start cold.
# Overridable: FILE_SIZE (1G), IMAGE_SIZE (2G), RUNTIME (20), FILESYSTEMS ("extentfs fuse2fs"),
# EXTENTFS_BIN, WORK_DIR. Needs root (fuse2fs mounts, drop_caches).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FILE_SIZE="${FILE_SIZE:-1G}"
IMAGE_SIZE="${IMAGE_SIZE:-2G}"
RUNTIME="${RUNTIME:-20}"
read -r -a FILESYSTEMS <<<"${FILESYSTEMS:-extentfs fuse2fs}"
BLOCK_SIZE=4096
BIN="$(extentfs_bin release)"

[[ $(id -u) -eq 0 ]] || die "run as root: fuse2fs mounts and dropping caches need it"
bash "$REPO_ROOT/scripts/install-deps.sh"
if [[ " ${FILESYSTEMS[*]} " == *" extentfs "* && -z "${EXTENTFS_BIN:-}" ]]; then
    log "building extentfs (release)"
    (cd "$REPO_ROOT" && swift build -c release)
fi

WORK="${WORK_DIR:-$(mktemp -d /var/tmp/extentfs-bench.XXXXXX)}"
MNT="$WORK/mnt"
mkdir -p "$MNT"
FUSE2FS_PID=""

cleanup() {
    if is_mounted "$MNT"; then
        unmount_fs "${CURRENT_FS:-}" 2>/dev/null || force_unmount "$MNT"
    fi
    rm -f "$WORK"/*.img
}
trap cleanup EXIT

make_image() {
    local fs="$1" image="$2"
    rm -f "$image"
    case "$fs" in
        extentfs) "$BIN" mkfs "$image" --size "$IMAGE_SIZE" --block-size "$BLOCK_SIZE" >/dev/null ;;
        fuse2fs)
            truncate -s "$IMAGE_SIZE" "$image"
            mkfs.ext4 -F -q -b "$BLOCK_SIZE" "$image"
            ;;
    esac
}

mount_fs() {
    local fs="$1" image="$2"
    CURRENT_FS="$fs"
    case "$fs" in
        extentfs) "$BIN" mount "$image" "$MNT" --log "$WORK/extentfs-daemon.log" ;;
        fuse2fs)
            # Foreground in the background, so that unmount_fs can wait for it to finish writing.
            # As root no -o fakeroot is needed.
            fuse2fs "$image" "$MNT" -f >>"$WORK/fuse2fs.log" 2>&1 &
            FUSE2FS_PID=$!
            local waited=0
            until is_mounted "$MNT"; do
                kill -0 "$FUSE2FS_PID" 2>/dev/null || die "fuse2fs exited before mounting (see $WORK/fuse2fs.log)"
                ((waited++ < 100)) || die "fuse2fs did not mount within 10 s"
                sleep 0.1
            done
            ;;
    esac
    is_mounted "$MNT" || die "$fs: mount did not come up on $MNT"
}

unmount_fs() {
    local fs="$1"
    case "$fs" in
        extentfs) "$BIN" umount "$MNT" ;;
        fuse2fs)
            umount "$MNT"
            if [[ -n "$FUSE2FS_PID" ]]; then
                wait "$FUSE2FS_PID" 2>/dev/null || true
            fi
            FUSE2FS_PID=""
            ;;
    esac
}

drop_caches() {
    sync
    echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || log "cannot drop the host page cache (read-only /proc/sys?); reads of the image may be warm"
}

# $1 fs, $2 job name, then fio job options.
run_job() {
    local fs="$1" job="$2"
    shift 2
    log "$fs: $job"
    (cd "$WORK" && fio --output-format=json --output="$WORK/$fs-$job.json" --name="$job" \
        --filename="$MNT/bench.dat" --size="$FILE_SIZE" --ioengine=psync --direct=0 \
        --numjobs=1 "$@" 2>"$WORK/$fs-$job.stderr") \
        || { cat "$WORK/$fs-$job.stderr" >&2; die "fio $job on $fs failed"; }
}

for fs in "${FILESYSTEMS[@]}"; do
    case "$fs" in
        extentfs) [[ -x "$BIN" ]] || die "extentfs binary not found at $BIN" ;;
        fuse2fs) command -v fuse2fs >/dev/null || die "fuse2fs is not installed" ;;
        *) die "unknown filesystem $fs (extentfs or fuse2fs)" ;;
    esac
    image="$WORK/$fs.img"
    make_image "$fs" "$image"

    mount_fs "$fs" "$image"
    run_job "$fs" seq-write --rw=write --bs=1M --end_fsync=1
    unmount_fs "$fs"; drop_caches; mount_fs "$fs" "$image"
    run_job "$fs" seq-read --rw=read --bs=1M
    unmount_fs "$fs"; drop_caches; mount_fs "$fs" "$image"
    run_job "$fs" rand-read --rw=randread --bs=4k --time_based --runtime="$RUNTIME"
    unmount_fs "$fs"; drop_caches; mount_fs "$fs" "$image"
    run_job "$fs" rand-write --rw=randwrite --bs=4k --time_based --runtime="$RUNTIME" --end_fsync=1
    unmount_fs "$fs"
    CURRENT_FS=""
    rm -f "$image"
done

python3 - "$WORK" "${FILESYSTEMS[@]}" <<'PY' | tee "$WORK/results.txt"
import json, os, sys
work, filesystems = sys.argv[1], sys.argv[2:]
jobs = [("seq-write", "write", "sequential write 1M"), ("seq-read", "read", "sequential read 1M"),
        ("rand-read", "read", "random read 4K"), ("rand-write", "write", "random write 4K")]

def result(fs, job, direction):
    path = os.path.join(work, f"{fs}-{job}.json")
    with open(path) as f:
        text = f.read()
    stats = json.loads(text[text.index("{"):])["jobs"][0][direction]
    return stats["bw_bytes"] / (1 << 20), stats["iops"]

header = f'{"job":<22}' + "".join(f'{fs + " MiB/s":>18}{fs + " IOPS":>18}' for fs in filesystems)
print(header)
print("-" * len(header))
for job, direction, label in jobs:
    row = f"{label:<22}"
    for fs in filesystems:
        mib, iops = result(fs, job, direction)
        row += f"{mib:>18.1f}{iops:>18.0f}"
    print(row)
PY
log "fio JSON and results.txt in $WORK"
