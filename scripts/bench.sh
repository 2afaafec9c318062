#!/usr/bin/env bash
# The benchmark: the same jobs, in one run, on four filesystems whose data sits on the same disk
# (everything under WORK_DIR), printed side by side with the ratio of extentfs to passthrough_ll:
#
#   host            a plain directory on the disk: the kernel's own filesystem, no FUSE
#   passthrough_ll  libfuse's low-level passthrough example over a plain directory: what FUSE
#                   itself costs with no filesystem logic behind it. Built at run time from the
#                   source Debian's libfuse3-dev ships (/usr/share/doc/libfuse3-dev/examples),
#                   into the work directory, with gcc -O2; never committed.
#   fuse2fs         ext4 served from user space through FUSE (Debian's e2fsprogs), on a sparse image
#   extentfs        release build (EXTENTFS_BIN overrides; otherwise swift build -c release), on a
#                   sparse image
#
# Images use 4 KiB blocks and are IMAGE_SIZE (4G) sparse files. passthrough_ll runs as
# "passthrough_ll -f -o source=DIR,cache=always,timeout=1,default_permissions MNT": the same kernel
# caching extentfs asks for (pages kept across opens: keep_cache; 1 s entry and attribute
# timeouts; the kernel checks permissions; no writeback cache, which extentfs does not use either),
# so that the difference is the filesystem behind FUSE, not the caching mode. Its other options
# (xattr, flock) are left at their defaults (off); no job uses them.
#
# Jobs (fio: psync, buffered I/O (direct=0), one FILE_SIZE file, fallocate=none, since a program
# writing a file does not preallocate it and fio's default would):
#   seq-write    sequential write 1 MiB of a new file, end_fsync                       MiB/s
#   seq-read     sequential read 1 MiB, cold                                           MiB/s
#   rand-read    random read 4 KiB, cold, RUNTIME s                                    IOPS
#   rand-write   random write 4 KiB, RUNTIME s, end_fsync                              IOPS
#   rand-rw      random read+write 4 KiB (50/50), two jobs on the file, cold,
#                RUNTIME s, end_fsync; reads and writes of both jobs together          IOPS
#   cached-read  sequential re-read 1 MiB of the file already in the page cache (read
#                once after a cold mount, then RUNTIME s; fio invalidate=0)            MiB/s
#   sqlite       SQLite commits of one 100-byte row (WAL, synchronous=FULL), RUNTIME s commits/s
#   create       create SMALL_FILES files of 4 KiB in one new directory (open, write,
#                close; no fsync)                                                      files/s
#   stat         stat all of them, cold (after a remount: a fresh mount must look
#                every name up and read every inode)                                   files/s
#   unlink       unlink all of them                                                    files/s
#   readdir      list a directory of DIR_ENTRIES files, names only (os.scandir), cold  entries/s
# "Cold" means: the filesystem unmounted and mounted again (passthrough_ll and fuse2fs daemons
# restarted, the host directory needs no remount), then sync and echo 3 > /proc/sys/vm/drop_caches.
# The table gives the median of REPEAT runs of everything (each run on a fresh image or directory,
# the filesystems taking turns), the ratio extentfs/passthrough_ll and extentfs/host; the goal for
# cached re-reads is extentfs within 0.8x of the host directory. Jobs that others need still run
# when left out of JOBS (seq-write lays out the file, create makes the files stat and unlink use),
# but only the JOBS asked for are printed.
#
# Overridable: FILE_SIZE (1G), RUNTIME (20), REPEAT (3), FILESYSTEMS ("host passthrough_ll fuse2fs
# extentfs"), JOBS (all of the above), SMALL_FILES (10000), DIR_ENTRIES (50000), IMAGE_SIZE (4G),
# WORK_DIR (default: a new directory under /var/tmp), EXTENTFS_BIN.
# Prints the machine first; writes the table to WORK/results.txt and keeps fio's JSON in WORK/runs.
# Needs root (mounts, drop_caches). Never leaves a mount behind: everything is unmounted on exit.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ALL_JOBS="seq-write seq-read rand-read rand-write rand-rw cached-read sqlite create stat unlink readdir"
FILE_SIZE="${FILE_SIZE:-1G}"
IMAGE_SIZE="${IMAGE_SIZE:-4G}"
RUNTIME="${RUNTIME:-20}"
REPEAT="${REPEAT:-3}"
SMALL_FILES="${SMALL_FILES:-10000}"
DIR_ENTRIES="${DIR_ENTRIES:-50000}"
read -r -a FILESYSTEMS <<<"${FILESYSTEMS:-host passthrough_ll fuse2fs extentfs}"
read -r -a JOBS <<<"${JOBS:-$ALL_JOBS}"
BLOCK_SIZE=4096
BIN="$(extentfs_bin release)"
PY="$REPO_ROOT/scripts/lib/bench_jobs.py"
PT_SOURCE=/usr/share/doc/libfuse3-dev/examples
PT_OPTIONS="cache=always,timeout=1,default_permissions"

[[ $(id -u) -eq 0 ]] || die "run as root: mounts and dropping caches need it"
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || die "REPEAT must be a positive whole number, not '$REPEAT'"
[[ "$SMALL_FILES" =~ ^[1-9][0-9]*$ ]] || die "SMALL_FILES must be a positive whole number, not '$SMALL_FILES'"
[[ "$DIR_ENTRIES" =~ ^[1-9][0-9]*$ ]] || die "DIR_ENTRIES must be a positive whole number, not '$DIR_ENTRIES'"
[[ "$RUNTIME" =~ ^[1-9][0-9]*$ ]] || die "RUNTIME must be a positive whole number of seconds, not '$RUNTIME'"
((${#FILESYSTEMS[@]} > 0)) || die "FILESYSTEMS is empty"
((${#JOBS[@]} > 0)) || die "JOBS is empty"
for fs in "${FILESYSTEMS[@]}"; do
    case "$fs" in host | passthrough_ll | fuse2fs | extentfs) ;; *) die "unknown filesystem '$fs' (host, passthrough_ll, fuse2fs, extentfs)" ;; esac
done
for job in "${JOBS[@]}"; do
    [[ " $ALL_JOBS " == *" $job "* ]] || die "unknown job '$job' (one of: $ALL_JOBS)"
done

wants() { # true when one of the named jobs is in JOBS
    local job
    for job in "$@"; do [[ " ${JOBS[*]} " == *" $job "* ]] && return 0; done
    return 1
}
wants_fs() { [[ " ${FILESYSTEMS[*]} " == *" $1 "* ]]; }

bash "$REPO_ROOT/scripts/install-deps.sh"
for tool in fio python3 gcc pkg-config fusermount3 mkfs.ext4 fuse2fs findmnt lsblk; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (scripts/install-deps.sh)"
done
[[ -w /proc/sys/vm/drop_caches ]] || die "cannot write /proc/sys/vm/drop_caches: cold reads would not be cold"
python3 -c 'import sqlite3' 2>/dev/null || die "python3 has no sqlite3 module"
if wants_fs extentfs; then
    if [[ -z "${EXTENTFS_BIN:-}" ]]; then
        log "building extentfs (release)"
        (cd "$REPO_ROOT" && swift build -c release >&2) || die "swift build -c release failed"
    fi
    [[ -x "$BIN" ]] || die "extentfs binary not found at $BIN"
fi

WORK="${WORK_DIR:-$(mktemp -d /var/tmp/extentfs-bench.XXXXXX)}"
mkdir -p "$WORK"
WORK="$(realpath "$WORK")"
MNT="$WORK/mnt"
DATA="$WORK/data" # the host directory, or passthrough_ll's source directory
PT_BIN="$WORK/passthrough_ll/passthrough_ll"
mkdir -p "$MNT"
is_mounted "$MNT" && die "$MNT is already a mount point"
CURRENT_FS=""  # the filesystem mounted on MNT (or being set up), for cleanup
DAEMON_PID=""  # passthrough_ll or fuse2fs running in the foreground, in our background

if wants_fs passthrough_ll; then
    [[ -f "$PT_SOURCE/passthrough_ll.c" ]] || die "$PT_SOURCE/passthrough_ll.c is missing (libfuse3-dev)"
    log "building passthrough_ll from $PT_SOURCE into $WORK/passthrough_ll"
    mkdir -p "$WORK/passthrough_ll"
    cp "$PT_SOURCE/passthrough_ll.c" "$PT_SOURCE/passthrough_helpers.h" "$WORK/passthrough_ll/"
    # shellcheck disable=SC2046 # pkg-config prints several words on purpose
    gcc -O2 -Wall -o "$PT_BIN" "$WORK/passthrough_ll/passthrough_ll.c" $(pkg-config --cflags --libs fuse3) \
        || die "building passthrough_ll failed"
fi

# Stops the daemon we started, once its mount is gone; fails if it does not exit within 60 s.
reap_daemon() {
    [[ -n "$DAEMON_PID" ]] || return 0
    local waited=0
    while kill -0 "$DAEMON_PID" 2>/dev/null; do
        if ((waited++ >= 600)); then
            kill "$DAEMON_PID" 2>/dev/null || true
            wait "$DAEMON_PID" 2>/dev/null || true
            DAEMON_PID=""
            return 1
        fi
        sleep 0.1
    done
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
}

cleanup() {
    local status=$?
    trap - EXIT
    if [[ -n "$CURRENT_FS" && "$CURRENT_FS" != host ]] && is_mounted "$MNT"; then
        log "cleanup: unmounting $CURRENT_FS from $MNT"
        case "$CURRENT_FS" in
            extentfs) timeout 120 "$BIN" umount "$MNT" >/dev/null 2>&1 || force_unmount "$MNT" ;;
            *) umount "$MNT" 2>/dev/null || force_unmount "$MNT" ;;
        esac
    fi
    is_mounted "$MNT" && force_unmount "$MNT"
    reap_daemon || log "cleanup: the $CURRENT_FS daemon did not exit after unmount and was killed"
    rm -rf "$WORK/image.img" "$DATA"
    is_mounted "$MNT" && { log "cleanup: $MNT is still mounted"; status=1; }
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts $@ (a FUSE daemon with -f) in the background and waits for the mount on MNT.
# passthrough_ll keeps a descriptor open for every inode the kernel has looked up: a directory of
# DIR_ENTRIES files needs more than the usual soft limit of 1,024.
ulimit -n "$(cat /proc/sys/fs/nr_open)" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) > DIR_ENTRIES + SMALL_FILES )) || die "passthrough_ll needs more than $((DIR_ENTRIES + SMALL_FILES)) descriptors; ulimit -n allows $(ulimit -n)"

start_daemon() {
    local name="$1" logfile="$WORK/$1.log"
    shift
    "$@" >>"$logfile" 2>&1 &
    DAEMON_PID=$!
    local waited=0
    until is_mounted "$MNT"; do
        kill -0 "$DAEMON_PID" 2>/dev/null || { DAEMON_PID=""; die "$name exited before mounting (see $logfile)"; }
        ((waited++ < 100)) || die "$name did not mount within 10 s (see $logfile)"
        sleep 0.1
    done
}

# Makes a fresh, empty filesystem for $1 and mounts it; TARGET is where the jobs work.
fresh_fs() {
    local fs="$1"
    CURRENT_FS="$fs"
    rm -rf "$WORK/image.img" "$DATA"
    case "$fs" in
        host | passthrough_ll) mkdir -p "$DATA" ;;
        fuse2fs)
            truncate -s "$IMAGE_SIZE" "$WORK/image.img"
            mkfs.ext4 -F -q -b "$BLOCK_SIZE" "$WORK/image.img" || die "mkfs.ext4 failed"
            ;;
        extentfs)
            "$BIN" mkfs "$WORK/image.img" --size "$IMAGE_SIZE" --block-size "$BLOCK_SIZE" >/dev/null \
                || die "extentfs mkfs failed"
            ;;
    esac
    mount_fs "$fs"
}

mount_fs() {
    local fs="$1"
    CURRENT_FS="$fs"
    case "$fs" in
        host) TARGET="$DATA"; return 0 ;;
        passthrough_ll) start_daemon passthrough_ll "$PT_BIN" -f -o "source=$DATA,$PT_OPTIONS" "$MNT" ;;
        # As root fuse2fs needs no -o fakeroot.
        fuse2fs) start_daemon fuse2fs fuse2fs "$WORK/image.img" "$MNT" -f ;;
        extentfs)
            "$BIN" mount "$WORK/image.img" "$MNT" --log "$WORK/extentfs-daemon.log" \
                || die "extentfs mount failed (see $WORK/extentfs-daemon.log)"
            ;;
    esac
    is_mounted "$MNT" || die "$fs: mount did not come up on $MNT"
    TARGET="$MNT"
}

# Unmounts and waits until the daemon has written everything and exited.
unmount_fs() {
    local fs="$1"
    case "$fs" in
        host) return 0 ;;
        extentfs) timeout 300 "$BIN" umount "$MNT" || die "extentfs umount failed" ;;
        *)
            umount "$MNT" || die "$fs: umount $MNT failed"
            reap_daemon || die "$fs: the daemon did not exit within 60 s of the unmount"
            ;;
    esac
    ! is_mounted "$MNT" || die "$fs: $MNT is still mounted after unmount"
}

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches || die "cannot drop the page cache"
}

# Unmount, drop every cache, mount again.
cold() {
    unmount_fs "$1"
    drop_caches
    mount_fs "$1"
}

# $1 fs, $2 job name, then fio job options. Output: RUN_DIR/<job>.fio.json.
run_fio() {
    local fs="$1" job="$2"
    shift 2
    log "run $RUN/$REPEAT, $fs: $job"
    (cd "$WORK" && fio --output-format=json --output="$RUN_DIR/$job.fio.json" --name="$job" \
        --filename="$TARGET/bench.dat" --size="$FILE_SIZE" --ioengine=psync --direct=0 \
        --fallocate=none --numjobs=1 "$@" 2>"$RUN_DIR/$job.stderr") \
        || { cat "$RUN_DIR/$job.stderr" >&2; die "fio $job on $fs failed"; }
}

# $1 fs, $2 job (a bench_jobs.py command), then its arguments. Output: RUN_DIR/<job>.json.
run_py() {
    local fs="$1" job="$2"
    shift 2
    log "run $RUN/$REPEAT, $fs: $job"
    python3 "$PY" "$job" "$@" >"$RUN_DIR/$job.json" || die "$job on $fs failed"
}

machine() {
    local source fstype disk parent model size rota
    source="$(findmnt -no SOURCE -T "$WORK")"
    fstype="$(findmnt -no FSTYPE -T "$WORK")"
    disk="$source"
    parent="$(lsblk -no PKNAME "$source" 2>/dev/null | head -n1 || true)"
    [[ -n "$parent" ]] && disk="/dev/$parent"
    model="$(lsblk -dno MODEL "$disk" 2>/dev/null | sed 's/ *$//' || true)"
    size="$(lsblk -dno SIZE "$disk" 2>/dev/null | tr -d ' ' || true)"
    rota="$(lsblk -dno ROTA "$disk" 2>/dev/null | tr -d ' ' || true)"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(free -g | awk '/^Mem:/ { print $2 }') GiB memory"
    echo "kernel:  $(uname -r)"
    echo "disk:    $WORK on $source ($fstype); device $disk${model:+, $model}${size:+, $size}${rota:+, rotational=$rota}"
    echo "tools:   $(fio --version), libfuse $(pkg-config --modversion fuse3), $(fuse2fs -V 2>&1 | head -n1)"
    echo "extentfs: $( (cd "$REPO_ROOT" && git rev-parse --short HEAD 2>/dev/null) || echo unknown), binary $BIN"
    echo "settings: FILE_SIZE=$FILE_SIZE RUNTIME=$RUNTIME REPEAT=$REPEAT SMALL_FILES=$SMALL_FILES DIR_ENTRIES=$DIR_ENTRIES IMAGE_SIZE=$IMAGE_SIZE, $BLOCK_SIZE-byte blocks, psync, direct=0"
    echo "passthrough_ll: -o $PT_OPTIONS"
}
machine | tee "$WORK/machine.txt"

FILE_JOBS=(seq-write seq-read rand-read rand-write rand-rw cached-read)
for ((RUN = 1; RUN <= REPEAT; RUN++)); do
    for fs in "${FILESYSTEMS[@]}"; do
        RUN_DIR="$WORK/runs/r$RUN/$fs"
        mkdir -p "$RUN_DIR"
        fresh_fs "$fs"
        if wants "${FILE_JOBS[@]}"; then
            run_fio "$fs" seq-write --rw=write --bs=1M --end_fsync=1
        fi
        if wants seq-read; then
            cold "$fs"
            run_fio "$fs" seq-read --rw=read --bs=1M
        fi
        if wants rand-read; then
            cold "$fs"
            run_fio "$fs" rand-read --rw=randread --bs=4k --time_based --runtime="$RUNTIME"
        fi
        if wants rand-write; then
            cold "$fs"
            run_fio "$fs" rand-write --rw=randwrite --bs=4k --time_based --runtime="$RUNTIME" --end_fsync=1
        fi
        if wants rand-rw; then
            cold "$fs"
            run_fio "$fs" rand-rw --rw=randrw --bs=4k --numjobs=2 --group_reporting --time_based \
                --runtime="$RUNTIME" --end_fsync=1
        fi
        if wants cached-read; then
            cold "$fs"
            cat "$TARGET/bench.dat" >/dev/null
            run_fio "$fs" cached-read --rw=read --bs=1M --invalidate=0 --time_based --runtime="$RUNTIME"
        fi
        rm -f "$TARGET/bench.dat"
        if wants sqlite; then
            run_py "$fs" sqlite "$TARGET" "$RUNTIME"
        fi
        if wants create stat unlink; then
            run_py "$fs" create "$TARGET/small" "$SMALL_FILES"
            if wants stat unlink; then
                cold "$fs"
                if wants stat; then run_py "$fs" stat "$TARGET/small" "$SMALL_FILES"; fi
                if wants unlink; then run_py "$fs" unlink "$TARGET/small" "$SMALL_FILES"; fi
            fi
        fi
        if wants readdir; then
            log "run $RUN/$REPEAT, $fs: making a directory of $DIR_ENTRIES entries"
            big="$(python3 "$PY" populate "$TARGET" "$DIR_ENTRIES")" || die "populating $TARGET failed"
            cold "$fs"
            run_py "$fs" readdir "$big" "$DIR_ENTRIES"
        fi
        unmount_fs "$fs"
        CURRENT_FS=""
        rm -rf "$WORK/image.img" "$DATA"
    done
done

{
    cat "$WORK/machine.txt"
    echo
    python3 "$PY" table "$WORK" "$REPEAT" "${JOBS[*]}" "${FILESYSTEMS[*]}"
} >"$WORK/results.txt" || die "making the table failed"
echo
sed -n '/^job /,$p' "$WORK/results.txt"
log "results.txt, fio JSON (runs/rN/FS/*.fio.json) and daemon logs in $WORK"
