#!/usr/bin/env bash
# Sequential throughput of extentfs on an NBD export against the same image as a local file, in
# one run, on the same disk:
#
#   file   extentfs mounted on WORK/image.img
#   nbd    extentfs mounted on nbd+unix:///?socket=WORK/nbd.sock (or nbd://127.0.0.1:PORT with
#          NBD_TRANSPORT=tcp), served by "nbdkit file WORK/image.img" (page cache and fdatasync,
#          as the local file gets)
#
# Jobs (fio, psync, buffered, one FILE_SIZE file through the mount):
#   seq-write  sequential write 1 MiB of a new file, end_fsync                   MiB/s
#   seq-read   sequential read 1 MiB, cold: unmounted, host caches dropped,
#              mounted again                                                      MiB/s
# Each run makes a fresh IMAGE_SIZE sparse image with 4 KiB blocks; the two targets take turns;
# the table gives the median of REPEAT runs, nbd/file of the medians (the goal: 0.8 or more) and
# the median of the runs' own ratios.
# Overridable: FILE_SIZE (1G), IMAGE_SIZE (4G), REPEAT (3), NBD_TRANSPORT (unix|tcp),
# WORK_DIR (default: a new directory under /var/tmp), EXTENTFS_BIN (default: a release build).
# Needs root (drop_caches) and nbdkit (scripts/install-deps.sh).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FILE_SIZE="${FILE_SIZE:-1G}"
IMAGE_SIZE="${IMAGE_SIZE:-4G}"
REPEAT="${REPEAT:-3}"
NBD_TRANSPORT="${NBD_TRANSPORT:-unix}"
BIN="$(extentfs_bin release)"

[[ $(id -u) -eq 0 ]] || die "run as root: dropping the page cache needs it"
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || die "REPEAT must be a positive whole number, not '$REPEAT'"
case "$NBD_TRANSPORT" in unix | tcp) ;; *) die "NBD_TRANSPORT must be unix or tcp, not '$NBD_TRANSPORT'" ;; esac
bash "$REPO_ROOT/scripts/install-deps.sh"
for tool in fio python3 nbdkit; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (scripts/install-deps.sh)"
done
[[ -w /proc/sys/vm/drop_caches ]] || die "cannot write /proc/sys/vm/drop_caches: cold reads would not be cold"
if [[ -z "${EXTENTFS_BIN:-}" ]]; then
    log "building extentfs (release)"
    (cd "$REPO_ROOT" && swift build -c release >&2) || die "swift build -c release failed"
fi
[[ -x "$BIN" ]] || die "extentfs binary not found at $BIN"

WORK="${WORK_DIR:-$(mktemp -d /var/tmp/extentfs-bench-nbd.XXXXXX)}"
mkdir -p "$WORK"
WORK="$(realpath "$WORK")"
MNT="$WORK/mnt"
IMAGE="$WORK/image.img"
SOCKET="$WORK/nbd.sock"
mkdir -p "$MNT"
is_mounted "$MNT" && die "$MNT is already a mount point"
NBDKIT_PID=""

stop_server() {
    [[ -n "$NBDKIT_PID" ]] || return 0
    kill "$NBDKIT_PID" 2>/dev/null || true
    wait "$NBDKIT_PID" 2>/dev/null || true
    NBDKIT_PID=""
}

cleanup() {
    local status=$?
    trap - EXIT
    if is_mounted "$MNT"; then
        timeout 120 "$BIN" umount "$MNT" >/dev/null 2>&1 || force_unmount "$MNT"
    fi
    stop_server
    rm -f "$IMAGE" "$SOCKET"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Serves IMAGE with nbdkit's file plugin; sets URI.
start_server() {
    local args
    rm -f "$SOCKET"
    if [[ "$NBD_TRANSPORT" == unix ]]; then
        args=(-U "$SOCKET")
        URI="nbd+unix:///?socket=$SOCKET"
    else
        local port
        port="$(free_port)"
        args=(-i 127.0.0.1 -p "$port")
        URI="nbd://127.0.0.1:$port/"
    fi
    nbdkit -f --exit-with-parent -P "$WORK/nbdkit.pid" "${args[@]}" file "$IMAGE" >>"$WORK/nbdkit.log" 2>&1 &
    NBDKIT_PID=$!
    local waited=0
    until [[ -s "$WORK/nbdkit.pid" ]]; do
        kill -0 "$NBDKIT_PID" 2>/dev/null || die "nbdkit exited at start (see $WORK/nbdkit.log)"
        ((waited++ < 100)) || die "nbdkit did not start within 10 s (see $WORK/nbdkit.log)"
        sleep 0.1
    done
    rm -f "$WORK/nbdkit.pid"
}

# $1 target: sets SOURCE, the name extentfs is given.
source_for() {
    if [[ "$1" == nbd ]]; then SOURCE="$URI"; else SOURCE="$IMAGE"; fi
}

mount_target() {
    "$BIN" mount "$SOURCE" "$MNT" --log "$WORK/daemon-$1.log" || die "extentfs mount of $SOURCE failed (see $WORK/daemon-$1.log)"
}

unmount_target() {
    timeout 300 "$BIN" umount "$MNT" || die "extentfs umount failed"
}

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches || die "cannot drop the page cache"
}

# $1 target, $2 job, then fio options. Output: RUN_DIR/<job>.json.
run_fio() {
    local target="$1" job="$2"
    shift 2
    log "run $RUN/$REPEAT, $target: $job"
    (cd "$WORK" && fio --output-format=json --output="$RUN_DIR/$job.json" --name="$job" \
        --filename="$MNT/bench.dat" --size="$FILE_SIZE" --ioengine=psync --direct=0 \
        --fallocate=none --numjobs=1 --bs=1M "$@" 2>"$RUN_DIR/$job.stderr") \
        || { cat "$RUN_DIR/$job.stderr" >&2; die "fio $job on $target failed"; }
}

{
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(free -g | awk '/^Mem:/ { print $2 }') GiB memory"
    echo "kernel:  $(uname -r); disk under $WORK: $(findmnt -no SOURCE,FSTYPE -T "$WORK" | tr -s ' ')"
    echo "tools:   $(fio --version), $(nbdkit --version), libnbd $(pkg-config --modversion libnbd 2>/dev/null || echo '?')"
    echo "extentfs: $( (cd "$REPO_ROOT" && git rev-parse --short HEAD 2>/dev/null) || echo unknown), binary $BIN"
    echo "settings: FILE_SIZE=$FILE_SIZE IMAGE_SIZE=$IMAGE_SIZE REPEAT=$REPEAT NBD_TRANSPORT=$NBD_TRANSPORT, 4096-byte blocks"
} | tee "$WORK/machine.txt"

for ((RUN = 1; RUN <= REPEAT; RUN++)); do
    for target in file nbd; do
        RUN_DIR="$WORK/runs/r$RUN/$target"
        mkdir -p "$RUN_DIR"
        rm -f "$IMAGE"
        truncate -s "$IMAGE_SIZE" "$IMAGE"
        [[ "$target" == nbd ]] && start_server
        source_for "$target"
        "$BIN" mkfs "$SOURCE" --block-size 4096 >/dev/null || die "extentfs mkfs $SOURCE failed"
        mount_target "$target"
        run_fio "$target" seq-write --rw=write --end_fsync=1
        unmount_target
        drop_caches
        mount_target "$target"
        run_fio "$target" seq-read --rw=read
        unmount_target
        stop_server
        rm -f "$IMAGE"
    done
done

python3 - "$WORK" "$REPEAT" <<'PY' | tee "$WORK/results.txt"
import json, statistics, sys
work, repeat = sys.argv[1], int(sys.argv[2])
def mib_per_s(target, job, direction):
    values = []
    for run in range(1, repeat + 1):
        with open(f"{work}/runs/r{run}/{target}/{job}.json") as f:
            text = f.read()
        report = json.loads(text[text.index("{"):])
        values.append(report["jobs"][0][direction]["bw_bytes"] / 2**20)
    return statistics.median(values), values
print()
# Both ratios: of the medians, and the median of each run's own ratio (the two targets of a run
# take turns under the same load; when the load changes between runs, the two differ).
print(f"{'job':<10} {'file MiB/s':>11} {'nbd MiB/s':>10} {'nbd/file':>9} {'per run':>8}   runs (file | nbd)")
for job, direction in (("seq-write", "write"), ("seq-read", "read")):
    file_median, file_runs = mib_per_s("file", job, direction)
    nbd_median, nbd_runs = mib_per_s("nbd", job, direction)
    per_run = statistics.median(n / f for f, n in zip(file_runs, nbd_runs))
    runs = " ".join(f"{v:.0f}" for v in file_runs) + " | " + " ".join(f"{v:.0f}" for v in nbd_runs)
    print(f"{job:<10} {file_median:>11.0f} {nbd_median:>10.0f} {nbd_median / file_median:>9.2f} {per_run:>8.2f}   {runs}")
PY
log "results.txt, fio JSON and daemon logs in $WORK"
