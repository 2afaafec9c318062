# shellcheck shell=bash
# Shared by the scripts in this directory: sourced, never run.
# Provides REPO_ROOT, logging, binary lookup and FUSE mount helpers.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The script that sourced this, as an absolute path (scripts cd to REPO_ROOT after sourcing).
MAIN_SCRIPT="$(realpath -m "${BASH_SOURCE[-1]}")"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root, through sudo when we are not root already.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $*"
    fi
}

# The extentfs binary for a build configuration (debug or release); EXTENTFS_BIN overrides.
extentfs_bin() {
    local config="${1:-debug}"
    if [[ -n "${EXTENTFS_BIN:-}" ]]; then
        printf '%s\n' "$EXTENTFS_BIN"
    else
        printf '%s\n' "$REPO_ROOT/.build/$config/extentfs"
    fi
}

is_mounted() {
    local dir
    dir="$(realpath -m "$1")"
    # Field 5 of mountinfo is the mount point, with spaces escaped as \040.
    awk -v d="$dir" '$5 == d { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# The source (device or image) of the mount at $1, empty when it is not a mount point.
mount_source() {
    local dir
    dir="$(realpath -m "$1")"
    # After the " - " separator: filesystem type, then source.
    awk -v d="$dir" '$5 == d { for (i = 6; i <= NF; i++) if ($i == "-") { src = $(i + 2) } } END { print src }' /proc/self/mountinfo
}

# Waits up to $2 seconds (default 30) for $1 to stop being a mount point.
wait_unmounted() {
    local dir="$1" limit="${2:-30}" waited=0
    while is_mounted "$dir"; do
        (( waited >= limit * 10 )) && return 1
        sleep 0.1
        waited=$((waited + 1))
    done
}

# Last-resort cleanup for a FUSE mount whose daemon may be stuck or gone.
force_unmount() {
    local dir="$1"
    is_mounted "$dir" || return 0
    fusermount3 -uz "$dir" 2>/dev/null || umount -l "$dir" 2>/dev/null || true
}

# Re-runs the calling script (with "$@") as a child subreaper (scripts/lib/subreaper.py), once:
# the daemons `extentfs mount` leaves and nbdkit servers that fork are orphans, and under a
# container's PID 1 that reaps late or never they would stay zombies (`kill -0` takes a zombie
# for a live server); below a subreaper they are reparented to this script's bash, which reaps
# them as they end. Without python3 it says so and goes on: where orphans go is not a test.
become_subreaper() {
    [[ "${EXTENTFS_SUBREAPER_PID:-}" == "$$" ]] && return 0
    if ! command -v python3 >/dev/null 2>&1; then
        log "python3 is missing: orphaned daemons and servers are left to PID 1 to reap"
        return 0
    fi
    # exec keeps the pid: the re-run script finds its own pid here and does not re-run again.
    export EXTENTFS_SUBREAPER_PID=$$
    exec python3 "$REPO_ROOT/scripts/lib/subreaper.py" bash "$MAIN_SCRIPT" "$@"
}
