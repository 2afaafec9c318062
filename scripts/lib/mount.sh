# shellcheck shell=bash
# Sourced, never run: fresh extentfs mounts for the test scripts.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"
#   efs_init tools                      # builds if needed, makes $EFS_WORK, installs the EXIT trap
#   efs_mkfs "$EFS_WORK/a.img" 4096     # fresh image (IMAGE_SIZE, default 1G, sparse)
#   efs_mount "$EFS_WORK/a.img" "$EFS_WORK/mnt"
#   ...                                 # LD_PRELOAD="$EFS_PRELOAD" some-tool "$EFS_WORK/mnt/file"
#   efs_umount "$EFS_WORK/mnt"          # waits until the image is released
#   efs_fsck "$EFS_WORK/a.img"          # fails unless fsck reports the image clean
#
# On exit (the trap is set when this file is sourced) every mount made here is unmounted
# (extentfs umount, then fusermount3 -uz if the daemon is stuck); the work directory is removed
# if the script succeeded and kept, with the daemon logs, if it failed. Scripts may define
# efs_on_exit (runs first) and efs_final STATUS (runs last, may turn success into failure).
# efs_mount and efs_umount return non-zero on failure, so that a script can carry on with the
# next image; add "|| die" where there is nothing to carry on with.
#
# Environment: EXTENTFS_BUILD=debug|release (default debug) picks the build; EXTENTFS_BIN and
# EXTENTFS_PRELOAD point at prebuilt files instead (then nothing is built); IMAGE_SIZE; WORK_DIR
# (default: a new directory under /var/tmp).

# scripts/common.sh (log, die, is_mounted, force_unmount, ...) where present; the same minimal
# helpers here otherwise, so this file also works on its own.
EFS_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -f "$EFS_LIB_DIR/../common.sh" ]]; then
    # shellcheck source=/dev/null
    source "$EFS_LIB_DIR/../common.sh"
fi
REPO_ROOT="${REPO_ROOT:-$(cd "$EFS_LIB_DIR/../.." && pwd)}"

declare -F log >/dev/null || log() { printf '==> %s\n' "$*" >&2; }
declare -F die >/dev/null || die() { printf 'error: %s\n' "$*" >&2; exit 1; }
declare -F is_mounted >/dev/null || is_mounted() {
    local dir
    dir="$(realpath -m "$1")"
    # Field 5 of mountinfo is the mount point, with spaces escaped as \040.
    awk -v d="$dir" '$5 == d { found = 1 } END { exit !found }' /proc/self/mountinfo
}
declare -F force_unmount >/dev/null || force_unmount() {
    is_mounted "$1" || return 0
    fusermount3 -uz "$1" 2>/dev/null || umount -l "$1" 2>/dev/null || true
}

EXTENTFS_BUILD="${EXTENTFS_BUILD:-debug}"
IMAGE_SIZE="${IMAGE_SIZE:-1G}"
# A daemon that stops answering must fail the run, not hang it.
EFS_UMOUNT_TIMEOUT="${EFS_UMOUNT_TIMEOUT:-120}"

EFS_MOUNTS=()
EFS_WORK=""

# Builds (incrementally) unless both prebuilt paths are given, and sets EFS_BIN and EFS_PRELOAD.
efs_build() {
    case "$EXTENTFS_BUILD" in
        debug | release) ;;
        *) die "EXTENTFS_BUILD must be debug or release, not '$EXTENTFS_BUILD'" ;;
    esac
    if [[ -z "${EXTENTFS_BIN:-}" || -z "${EXTENTFS_PRELOAD:-}" ]]; then
        command -v swift >/dev/null 2>&1 || die "swift is not on PATH (needed to build extentfs)"
        log "building extentfs ($EXTENTFS_BUILD)"
        (cd "$REPO_ROOT" && swift build -c "$EXTENTFS_BUILD" >&2) || die "swift build -c $EXTENTFS_BUILD failed"
    fi
    EFS_BIN="${EXTENTFS_BIN:-$REPO_ROOT/.build/$EXTENTFS_BUILD/extentfs}"
    EFS_PRELOAD="${EXTENTFS_PRELOAD:-$REPO_ROOT/.build/$EXTENTFS_BUILD/libExtentFSPreload.so}"
    [[ -x "$EFS_BIN" ]] || die "extentfs binary not found at $EFS_BIN"
    [[ -f "$EFS_PRELOAD" ]] || die "preload library not found at $EFS_PRELOAD"
    EFS_PRELOAD="$(realpath "$EFS_PRELOAD")" # LD_PRELOAD needs a path that works from any directory
}

# Fails, naming the package, unless every tool given is on PATH. Nothing is ever skipped.
efs_require() {
    local tool missing=()
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    ((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (run scripts/install-deps.sh)"
}

# $1: a short name for the work directory. Builds, checks /dev/fuse, creates EFS_WORK, sets the trap.
efs_init() {
    local name="${1:-test}"
    [[ -c /dev/fuse ]] || die "/dev/fuse is missing: this machine cannot mount FUSE filesystems"
    efs_require fusermount3
    efs_build
    EFS_WORK="${WORK_DIR:-$(mktemp -d "/var/tmp/extentfs-$name.XXXXXX")}"
    mkdir -p "$EFS_WORK"
}

efs_cleanup() {
    local status=$? mnt
    trap - EXIT
    if declare -F efs_on_exit >/dev/null; then efs_on_exit || true; fi
    for mnt in "${EFS_MOUNTS[@]}"; do
        if is_mounted "$mnt"; then
            timeout "$EFS_UMOUNT_TIMEOUT" "$EFS_BIN" umount "$mnt" >/dev/null 2>&1 || force_unmount "$mnt"
        fi
    done
    if [[ -n "$EFS_WORK" && -d "$EFS_WORK" ]]; then
        if ((status == 0)) && [[ -z "${WORK_DIR:-}" ]]; then
            rm -rf "$EFS_WORK"
        else
            log "work directory kept (images, daemon logs): $EFS_WORK"
        fi
    fi
    if declare -F efs_final >/dev/null; then efs_final "$status" || status=1; fi
    exit "$status"
}
trap efs_cleanup EXIT

# $1 image, $2 block size.
efs_mkfs() {
    rm -f "$1"
    "$EFS_BIN" mkfs "$1" --size "$IMAGE_SIZE" --block-size "$2" >/dev/null ||
        die "extentfs mkfs $1 (block size $2) failed"
}

# $1 image, $2 mount point (created). The daemon's log goes to $EFS_WORK/daemon-<n>.log.
efs_mount() {
    local image="$1" mnt="$2" logfile
    mkdir -p "$mnt"
    logfile="$EFS_WORK/daemon-${#EFS_MOUNTS[@]}.log"
    EFS_MOUNTS+=("$mnt")
    "$EFS_BIN" mount "$image" "$mnt" --log "$logfile" ||
        { log "extentfs mount $image $mnt failed (daemon log: $logfile)"; return 1; }
    is_mounted "$mnt" || { log "extentfs mount returned 0 but $mnt is not a mount point"; return 1; }
}

# Unmounts and waits until the image is written and released. On failure (or a daemon that does
# not answer within EFS_UMOUNT_TIMEOUT) the mount is torn down by force and 1 returned.
efs_umount() {
    local status=0
    timeout "$EFS_UMOUNT_TIMEOUT" "$EFS_BIN" umount "$1" || status=$?
    if ((status != 0)); then
        log "extentfs umount $1 failed (exit $status)"
        force_unmount "$1"
        return 1
    fi
    ! is_mounted "$1" || { log "extentfs umount returned 0 but $1 is still mounted"; force_unmount "$1"; return 1; }
}

# Prints fsck's report; fails unless it exits 0 and says the image is clean.
efs_fsck() {
    local out status=0
    out="$("$EFS_BIN" fsck "$1" 2>&1)" || status=$?
    printf '%s\n' "$out"
    ((status == 0)) || { log "fsck $1 exited with status $status"; return 1; }
    grep -q clean <<<"$out" || { log "fsck $1 did not report the image clean"; return 1; }
}
