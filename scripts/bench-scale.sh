#!/usr/bin/env bash
# Metadata at scale (issue 9, requirement 6), in one run, through a real FUSE mount of a release
# build on a sparse image on the host disk (WORK_DIR, default a new directory under /var/tmp).
#
# Part 1: one image grown step by step to each of FILE_STEPS files (10,000, 300,000, 1,000,000),
# files of 100 bytes, 1,000 a directory (pop/d00000/f0000 ...). At each step:
#   populate      create the files up to the step's count (os.open, os.write, os.close), sync;
#                 printed for information only (files/s)
#   mount         wall time of `extentfs mount` returning (it returns once the mount is live),
#                 each mount after an unmount, sync and echo 3 > /proc/sys/vm/drop_caches (so the
#                 daemon reads the image from disk, as after a reboot). Every mount of the step is
#                 timed: the first after growing, then the one before each rate run below
#   RSS after mount      VmRSS of the daemon process (/proc/PID/status) right after the first
#                        mount of the step returns; and its VmHWM then (the peak RSS of the mount)
#   full walk / RSS      os.scandir recursion over pop/ with an lstat of every file (a cold
#                        READDIRPLUS of each directory, and a LOOKUP, maybe a GETATTR, a file);
#                        then VmRSS of the daemon again, and VmHWM (the peak over the mount and
#                        the walk). The kernel keeps the inodes it walked, so the daemon keeps
#                        their lookup counts
# Then REPEAT times each of these, every one right after its own unmount, drop_caches and mount,
# so the kernel has no dentry or inode of the volume and every operation reaches the daemon:
#   stat          os.stat of SAMPLE random existing files (distinct; anywhere on the volume):
#                 a LOOKUP of each file (and of its directory, the first time) that reads the inode
#   stat2         the same, the files split between two processes running at once (no goal:
#                 whether one request waiting for the disk holds up the other's)
#   lookup        os.stat of SAMPLE names that do not exist, in random existing directories:
#                 a LOOKUP answered ENOENT (the directory's entry index, no inode read)
#   create        SAMPLE new 100-byte files spread over min(10, directories) random existing
#                 directories of 1,000 entries (a LOOKUP of the new name, CREATE, WRITE, FLUSH,
#                 RELEASE; no fsync)
#   unlink        unlink of the SAMPLE files create made (a LOOKUP and an UNLINK each), which
#                 brings the volume back to the step's count
# Each figure is operations per second over the whole loop; the table gives the median of the
# REPEAT runs (and the runs). Under each, "daemon CPU per op": the CPU time the daemon process
# used during the loop (user + system, all threads, /proc/PID/stat in 10 ms ticks) divided by the
# operations; on a busy machine it tells the daemon's own work apart from waiting for a core.
# "daemon CPU in mount": the daemon's CPU time when `extentfs mount` returns.
#
# Part 2: a fresh image with one directory of BIG_DIRECTORY (1,000,000) empty files, and
# SAMPLE/100 directories of 100 empty files each (the same number of entries as one sample):
#   lookup        os.stat of SAMPLE random existing names of the big directory, cold; next to
#                 os.stat of every name of the small directories in random order, cold
#                 (one more LOOKUP, of the small directory itself, per 100 names)
#   readdir       os.scandir of the whole big directory, names only, cold (the kernel asks for
#                 READDIRPLUS: every entry's inode is read); next to os.scandir of each small
#                 directory in turn (one more LOOKUP, OPENDIR and RELEASEDIR per 100 entries)
# Per-entry rates, median of REPEAT runs, each after an unmount, drop_caches and mount; the
# daemon's VmRSS after each run (median), and after mount and its VmHWM in mount (highest).
#
# Part 3, the anchor (ANCHOR=xfs, the default; none leaves it out): the kernel's XFS on a sparse
# image of IMAGE_SIZE on the same disk, loop-mounted, populated as part 1 to its first and last
# steps, and as part 2 (the big directory and the small ones); at each, REPEAT runs of the cold
# stat and cold lookup of part 1, and of part 2's cold lookups, each after an unmount,
# drop_caches and mount. Printed beside the goals they anchor: what the same cold requests cost
# a filesystem with no FUSE and no daemon on this disk as the volume grows (no goal of its own).
#
# Goals, printed as PASS/FAIL next to the figures (the script fails only when a step fails):
#   RSS after the walk of the largest step <= CACHE_SIZE + METADATA_CACHE_SIZE + 64 MiB (the
#   budgets are passed to every mount as --cache-size and --metadata-cache-size, and printed);
#   the median mount time of each step < 0.3 s; every rate at the largest step >= 0.8x the rate
#   at the smallest; big directory per-entry rates >= 0.8x the small directories' ("as fast per
#   entry", requirement 1).
#
# Overridable: FILE_STEPS ("10000 300000 1000000", increasing), BIG_DIRECTORY (1000000; 0 leaves
# part 2 out), ANCHOR (xfs; none leaves part 3 out), SAMPLE (10000), REPEAT (3), CACHE_SIZE (256M), METADATA_CACHE_SIZE (64M),
# IMAGE_SIZE (16G: 2,097,152 inodes), WORK_DIR, EXTENTFS_BIN (otherwise swift build -c release).
# Needs root (mounts, drop_caches). Never leaves a mount or an image behind, on success or failure;
# the daemon's log is WORK/daemon.log (shown when a step fails). Figures go to stdout, progress to stderr.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
become_subreaper "$@"

read -r -a FILE_STEPS <<<"${FILE_STEPS:-10000 300000 1000000}"
BIG_DIRECTORY="${BIG_DIRECTORY:-1000000}"
ANCHOR="${ANCHOR:-xfs}"
SAMPLE="${SAMPLE:-10000}"
REPEAT="${REPEAT:-3}"
CACHE_SIZE="${CACHE_SIZE:-256M}"
METADATA_CACHE_SIZE="${METADATA_CACHE_SIZE:-64M}"
IMAGE_SIZE="${IMAGE_SIZE:-16G}"
BIN="$(extentfs_bin release)"
PY="$REPO_ROOT/scripts/lib/scale_bench.py"

[[ $(id -u) -eq 0 ]] || die "run as root: mounts and dropping caches need it"
((${#FILE_STEPS[@]} > 0)) || die "FILE_STEPS is empty"
previous=0
for count in "${FILE_STEPS[@]}"; do
    [[ "$count" =~ ^[1-9][0-9]*$ ]] || die "FILE_STEPS must be positive whole numbers, not '$count'"
    ((count > previous)) || die "FILE_STEPS must increase: $count after $previous"
    previous=$count
done
[[ "$BIG_DIRECTORY" =~ ^[0-9]+$ ]] || die "BIG_DIRECTORY must be a whole number, not '$BIG_DIRECTORY'"
[[ "$ANCHOR" == xfs || "$ANCHOR" == none ]] || die "ANCHOR must be xfs or none, not '$ANCHOR'"
[[ "$SAMPLE" =~ ^[1-9][0-9]*$ ]] || die "SAMPLE must be a positive whole number, not '$SAMPLE'"
((SAMPLE <= FILE_STEPS[0])) || die "SAMPLE ($SAMPLE) must not exceed the first step (${FILE_STEPS[0]}): stat takes distinct files"
((BIG_DIRECTORY == 0 || SAMPLE <= BIG_DIRECTORY)) || die "SAMPLE ($SAMPLE) must not exceed BIG_DIRECTORY ($BIG_DIRECTORY)"
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || die "REPEAT must be a positive whole number, not '$REPEAT'"
to_bytes() { # 256M -> 268435456 (K, M, G, T: powers of 1024, as extentfs reads them)
    local value="$1" number suffix
    [[ "$value" =~ ^([0-9]+)([KMGT]?)$ ]] || die "not a size: '$value' (a number with K, M, G or T)"
    number="${BASH_REMATCH[1]}"
    suffix="${BASH_REMATCH[2]}"
    case "$suffix" in
        "") printf '%s\n' "$number" ;;
        K) printf '%s\n' $((number << 10)) ;;
        M) printf '%s\n' $((number << 20)) ;;
        G) printf '%s\n' $((number << 30)) ;;
        T) printf '%s\n' $((number << 40)) ;;
    esac
}
SMALL_DIRECTORIES=$(((SAMPLE + 99) / 100))
CACHE_BYTES="$(to_bytes "$CACHE_SIZE")"
METADATA_BYTES="$(to_bytes "$METADATA_CACHE_SIZE")"
IMAGE_BYTES="$(to_bytes "$IMAGE_SIZE")"
# mkfs fixes the inode count at max(1024, image bytes / 8192).
needed=$((FILE_STEPS[${#FILE_STEPS[@]} - 1] + SAMPLE + FILE_STEPS[${#FILE_STEPS[@]} - 1] / 1000 + 100))
((BIG_DIRECTORY + SAMPLE + SAMPLE / 100 + 100 > needed)) && needed=$((BIG_DIRECTORY + SAMPLE + SAMPLE / 100 + 100))
((IMAGE_BYTES / 8192 >= needed)) || die "IMAGE_SIZE $IMAGE_SIZE holds $((IMAGE_BYTES / 8192)) inodes, the run needs $needed"

bash "$REPO_ROOT/scripts/install-deps.sh"
[[ -w /proc/sys/vm/drop_caches ]] || die "cannot write /proc/sys/vm/drop_caches: cold runs would not be cold"
BUILD="release"
if [[ -z "${EXTENTFS_BIN:-}" ]]; then
    log "building extentfs (release)"
    (cd "$REPO_ROOT" && swift build -c release >&2) || die "swift build -c release failed"
else
    BUILD="EXTENTFS_BIN=$EXTENTFS_BIN"
fi
[[ -x "$BIN" ]] || die "extentfs binary not found at $BIN"

if [[ -n "${WORK_DIR:-}" ]]; then
    mkdir -p "$WORK_DIR"
    WORK="$(realpath "$WORK_DIR")"
    OWN_WORK=0
else
    WORK="$(mktemp -d /var/tmp/extentfs-bench-scale.XXXXXX)"
    OWN_WORK=1
fi
MNT="$WORK/mnt"
IMAGE="$WORK/scale.img"
ANCHOR_MNT="$WORK/anchor"
ANCHOR_IMAGE="$WORK/anchor.img"
RESULTS="$WORK/results.jsonl"
DAEMON_LOG="$WORK/daemon.log"
mkdir -p "$MNT"
is_mounted "$MNT" && die "$MNT is already a mount point"
[[ -e "$IMAGE" ]] && die "$IMAGE exists: another run may be using $WORK"
: >"$RESULTS"

cleanup() {
    local status=$?
    trap - EXIT
    if is_mounted "$MNT"; then
        log "unmounting $MNT"
        timeout 600 "$BIN" umount "$MNT" || force_unmount "$MNT"
    fi
    rm -f "$IMAGE"
    if is_mounted "$ANCHOR_MNT"; then
        log "unmounting $ANCHOR_MNT"
        umount "$ANCHOR_MNT" || umount -l "$ANCHOR_MNT" || true
    fi
    rm -f "$ANCHOR_IMAGE"
    if ((status != 0)); then
        printf '\nerror: bench-scale failed (exit status %s); no table printed.\n' "$status" >&2
        if [[ -s "$DAEMON_LOG" ]]; then
            printf 'last lines of the daemon log (%s):\n' "$DAEMON_LOG" >&2
            tail -n 20 "$DAEMON_LOG" >&2 || true
        fi
    fi
    if ((status == 0 && OWN_WORK)); then
        rm -rf "$WORK"
    elif ((status != 0)); then
        printf 'the figures measured so far (JSON lines) and the daemon log are kept in %s\n' "$WORK" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One JSON object a line in RESULTS: $1 holds the leading fields ("kind": ...), $2 a driver's object.
record() {
    local fields="$1" json="${2:-}"
    [[ -z "$json" || "$json" == \{* ]] || die "not a JSON object from the driver: '$json'"
    if [[ -z "$json" || "$json" == "{}" ]]; then
        printf '{%s}\n' "$fields" >>"$RESULTS"
    else
        printf '{%s, %s\n' "$fields" "${json#\{}" >>"$RESULTS"
    fi
}

# Unmount if mounted, drop the host's caches, mount and time it; records the mount (and the
# daemon's RSS right after it) under $1 (a file count, or "big"), $2 true for the first of a step.
DAEMON_PID=""
remount() {
    local files="$1" first="$2" start end seconds rss hwm cpu
    if is_mounted "$MNT"; then
        # A file the driver just closed may still be held by the kernel for a moment (its
        # release is asynchronous): EBUSY then; a few tries before giving up.
        local tries=0
        until "$BIN" umount "$MNT"; do
            tries=$((tries + 1))
            [[ $tries -lt 10 ]] || die "cannot unmount $MNT"
            sleep 1
        done
    fi
    sync
    echo 3 >/proc/sys/vm/drop_caches
    start=$EPOCHREALTIME
    "$BIN" mount "$IMAGE" "$MNT" --cache-size "$CACHE_BYTES" --metadata-cache-size "$METADATA_BYTES" --log "$DAEMON_LOG"
    end=$EPOCHREALTIME
    is_mounted "$MNT" || die "extentfs mount returned but $MNT is not a mount point"
    DAEMON_PID="$(python3 "$PY" daemon-pid "$MNT")"
    rss="$(python3 "$PY" rss "$DAEMON_PID")"
    hwm="$(python3 "$PY" hwm "$DAEMON_PID")"
    cpu="$(python3 "$PY" cpu "$DAEMON_PID")"
    seconds="$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f", b - a }')"
    [[ "$files" == big ]] && files='"big"'
    record "\"kind\": \"mount\", \"files\": $files, \"first\": $first, \"seconds\": $seconds, \"rss\": $rss, \"hwm\": $hwm, \"cpu\": $cpu"
    log "  mounted in $seconds s (daemon CPU $cpu s), daemon $DAEMON_PID RSS $((rss >> 20)) MiB"
}

# Runs the driver ($@) and sets MEASURED to its JSON and USED to the CPU seconds the daemon
# spent meanwhile (all its threads, user and system).
MEASURED=""
USED=""
measure() {
    local before after
    before="$(python3 "$PY" cpu "$DAEMON_PID")"
    MEASURED="$(python3 "$PY" "$@")"
    after="$(python3 "$PY" cpu "$DAEMON_PID")"
    USED="$(awk -v a="$before" -v b="$after" 'BEGIN { printf "%.2f", b - a }')"
}

record "\"kind\": \"config\", \"steps\": [$(IFS=,; echo "${FILE_STEPS[*]}")], \"repeat\": $REPEAT, \"sample\": $SAMPLE, \
\"cache_size\": \"$CACHE_SIZE\", \"cache_bytes\": $CACHE_BYTES, \"metadata_size\": \"$METADATA_CACHE_SIZE\", \
\"metadata_bytes\": $METADATA_BYTES, \"big_directory\": $BIG_DIRECTORY, \"small_directories\": $SMALL_DIRECTORIES, \
\"build\": \"$BUILD\", \"cores\": $(nproc), \"date\": \"$(date -u '+%Y-%m-%d %H:%M UTC')\""
log "work directory $WORK; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Part 1: one image, grown step by step.
"$BIN" mkfs "$IMAGE" --size "$IMAGE_SIZE" >/dev/null
"$BIN" mount "$IMAGE" "$MNT" --cache-size "$CACHE_BYTES" --metadata-cache-size "$METADATA_BYTES" --log "$DAEMON_LOG"
have=0
for count in "${FILE_STEPS[@]}"; do
    log "growing the volume from $have to $count files"
    json="$(python3 "$PY" populate "$MNT" "$have" "$count")"
    record "\"kind\": \"populate\", \"files\": $count" "$json"
    have=$count
    log "$count files: mount, walk"
    remount "$count" true
    measure walk "$MNT" "$count"
    rss="$(python3 "$PY" rss "$DAEMON_PID")"
    hwm="$(python3 "$PY" hwm "$DAEMON_PID")"
    record "\"kind\": \"walk\", \"files\": $count, \"rss\": $rss, \"hwm\": $hwm, \"cpu\": $USED" "$MEASURED"
    log "  walked: $MEASURED, daemon CPU $USED s, RSS $((rss >> 20)) MiB"
    for ((run = 1; run <= REPEAT; run++)); do
        for rate in stat stat2 lookup create unlink; do
            log "$count files, run $run: $rate"
            remount "$count" false
            measure "$rate" "$MNT" "$count" "$SAMPLE" "$run"
            record "\"kind\": \"rate\", \"files\": $count, \"rate\": \"$rate\", \"run\": $run, \"cpu\": $USED" "$MEASURED"
            log "  $MEASURED, daemon CPU $USED s"
        done
    done
done
"$BIN" umount "$MNT"
rm -f "$IMAGE"

# Part 2: one directory of BIG_DIRECTORY entries next to directories of 100.
if ((BIG_DIRECTORY > 0)); then
    log "a directory of $BIG_DIRECTORY entries and $SMALL_DIRECTORIES of 100"
    "$BIN" mkfs "$IMAGE" --size "$IMAGE_SIZE" >/dev/null
    "$BIN" mount "$IMAGE" "$MNT" --cache-size "$CACHE_BYTES" --metadata-cache-size "$METADATA_BYTES" --log "$DAEMON_LOG"
    json="$(python3 "$PY" big-populate "$MNT/big" "$BIG_DIRECTORY")"
    log "  big directory populated: $json"
    json="$(python3 "$PY" small-populate "$MNT/small" "$SMALL_DIRECTORIES")"
    log "  small directories populated: $json"
    for ((run = 1; run <= REPEAT; run++)); do
        for rate in lookup readdir; do
            for where in big small; do
                log "directories, run $run: $rate, $where"
                remount big false
                case "$rate.$where" in
                    lookup.big) measure big-lookup "$MNT/big" "$BIG_DIRECTORY" "$SAMPLE" "$run" ;;
                    lookup.small) measure small-lookup "$MNT/small" "$SMALL_DIRECTORIES" "$run" ;;
                    readdir.big) measure big-readdir "$MNT/big" "$BIG_DIRECTORY" ;;
                    readdir.small) measure small-readdir "$MNT/small" "$SMALL_DIRECTORIES" ;;
                esac
                rss="$(python3 "$PY" rss "$DAEMON_PID")"
                record "\"kind\": \"big\", \"rate\": \"$rate\", \"where\": \"$where\", \"run\": $run, \"cpu\": $USED, \"rss\": $rss" "$MEASURED"
                log "  $MEASURED, daemon CPU $USED s"
            done
        done
    done
    "$BIN" umount "$MNT"
    rm -f "$IMAGE"
fi

# Part 3: the same cold requests on XFS, loop-mounted from an image on the same disk.
anchor_remount() {
    is_mounted "$ANCHOR_MNT" && { umount "$ANCHOR_MNT" || die "cannot unmount $ANCHOR_MNT"; }
    sync
    echo 3 >/proc/sys/vm/drop_caches
    mount -o loop "$ANCHOR_IMAGE" "$ANCHOR_MNT" || die "cannot loop-mount the XFS image $ANCHOR_IMAGE"
}
if [[ "$ANCHOR" == xfs ]]; then
    command -v mkfs.xfs >/dev/null || die "mkfs.xfs not found (xfsprogs): needed for the XFS anchor (ANCHOR=none leaves it out)"
    mkdir -p "$ANCHOR_MNT"
    is_mounted "$ANCHOR_MNT" && die "$ANCHOR_MNT is already a mount point"
    truncate -s "$IMAGE_BYTES" "$ANCHOR_IMAGE"
    mkfs.xfs -q "$ANCHOR_IMAGE" || die "mkfs.xfs failed on $ANCHOR_IMAGE"
    have=0
    for count in "${FILE_STEPS[0]}" "${FILE_STEPS[${#FILE_STEPS[@]} - 1]}"; do
        ((count > have)) || continue
        log "XFS: growing from $have to $count files"
        anchor_remount
        python3 "$PY" populate "$ANCHOR_MNT" "$have" "$count" >/dev/null
        have=$count
        for ((run = 1; run <= REPEAT; run++)); do
            for rate in stat lookup; do
                anchor_remount
                json="$(python3 "$PY" "$rate" "$ANCHOR_MNT" "$count" "$SAMPLE" "$run")"
                record "\"kind\": \"anchor\", \"files\": $count, \"rate\": \"$rate\", \"run\": $run" "$json"
                log "  XFS, $count files, run $run, $rate: $json"
            done
        done
    done
    if ((BIG_DIRECTORY > 0)); then
        log "XFS: a directory of $BIG_DIRECTORY entries and $SMALL_DIRECTORIES of 100"
        umount "$ANCHOR_MNT"
        mkfs.xfs -q -f "$ANCHOR_IMAGE" || die "mkfs.xfs failed on $ANCHOR_IMAGE"
        anchor_remount
        python3 "$PY" big-populate "$ANCHOR_MNT/big" "$BIG_DIRECTORY" >/dev/null
        python3 "$PY" small-populate "$ANCHOR_MNT/small" "$SMALL_DIRECTORIES" >/dev/null
        for ((run = 1; run <= REPEAT; run++)); do
            anchor_remount
            json="$(python3 "$PY" big-lookup "$ANCHOR_MNT/big" "$BIG_DIRECTORY" "$SAMPLE" "$run")"
            record "\"kind\": \"anchor-big\", \"where\": \"big\", \"run\": $run" "$json"
            anchor_remount
            json="$(python3 "$PY" small-lookup "$ANCHOR_MNT/small" "$SMALL_DIRECTORIES" "$run")"
            record "\"kind\": \"anchor-big\", \"where\": \"small\", \"run\": $run" "$json"
            log "  XFS, directories, run $run: lookups done"
        done
    fi
    umount "$ANCHOR_MNT"
    rm -f "$ANCHOR_IMAGE"
fi

python3 "$PY" table "$RESULTS"
