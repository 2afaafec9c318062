#!/usr/bin/env bash
# extentfs on NBD exports served by nbdkit (file plugin), through real mounts: fio with
# verify=crc32c (scripts/fio-verify.sh: write, unmount, fsck, remount, verify again) and the
# exerciser through a mount (extentfs exercise --mount-binary), over a Unix socket and over TCP on
# 127.0.0.1. Both scripts are run with scripts/lib/extentfs-on-nbd as their extentfs binary: it
# serves each image file with its own nbdkit and gives extentfs the URI. Ends with
# "N passed, M failed"; fails (never skips) when nbdkit or fio is missing.
#
# The defaults are a short run (the test command runs it); for a longer one, e.g.:
#   NBD_FIO_SIZE=512m NBD_IMAGE_SIZE=4G NBD_EXERCISE_OPS=20000 NBD_BLOCK_SIZES="512 1024 4096 65536" \
#       bash scripts/nbd-test.sh
# fio writes four files of NBD_FIO_SIZE (two jobs, sequential and random): the image must hold
# them. Overridable: NBD_TRANSPORTS ("unix tcp"), NBD_BLOCK_SIZES ("1024 4096"), NBD_FIO_SIZE
# (32m), NBD_IMAGE_SIZE (1G), NBD_EXERCISE_OPS (1000), EXTENTFS_BIN (default: the debug build),
# WORK_DIR.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

TRANSPORTS="${NBD_TRANSPORTS:-unix tcp}"
BLOCK_SIZES="${NBD_BLOCK_SIZES:-1024 4096}"
FIO_SIZE="${NBD_FIO_SIZE:-32m}"
IMAGE_SIZE="${NBD_IMAGE_SIZE:-1G}"
EXERCISE_OPS="${NBD_EXERCISE_OPS:-1000}"
BIN="$(extentfs_bin debug)"
WRAPPER="$REPO_ROOT/scripts/lib/extentfs-on-nbd"

for tool in nbdkit fio python3 sha1sum; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (run scripts/install-deps.sh)"
done
[[ -c /dev/fuse ]] || die "/dev/fuse is missing: cannot mount"
# The servers extentfs-on-nbd starts fork into the background, and the daemons of the mounts too:
# reaped here, not left as zombies to PID 1.
become_subreaper "$@"
if [[ ! -x "$BIN" && -z "${EXTENTFS_BIN:-}" ]]; then
    log "building extentfs (debug)"
    swift build
fi
[[ -x "$BIN" ]] || die "extentfs binary not found at $BIN"

WORK="${WORK_DIR:-$(mktemp -d /var/tmp/extentfs-nbd-test.XXXXXX)}"
mkdir -p "$WORK"
export EXTENTFS_REAL_BIN="$BIN"

stop_servers() {
    local pidfile
    for pidfile in "$WORK"/servers-*/*.pid; do
        [[ -s "$pidfile" ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
}

passed=0
failed=0
failures=()
cleanup() {
    local status=$?
    stop_servers
    if ((status == 0 && failed == 0)) && [[ -z "${WORK_DIR:-}" ]]; then
        rm -rf "$WORK"
    else
        log "work directory kept (server logs, exerciser replays): $WORK"
    fi
}
trap cleanup EXIT

run() { # $1 description, rest: command
    local what="$1"
    shift
    log "$what"
    if "$@"; then
        echo "PASS: $what"
        passed=$((passed + 1))
    else
        echo "FAIL: $what"
        failed=$((failed + 1))
        failures+=("$what")
    fi
}

for transport in $TRANSPORTS; do
    case "$transport" in unix | tcp) ;; *) die "NBD_TRANSPORTS: unknown transport '$transport' (unix, tcp)" ;; esac
    export EXTENTFS_NBD_TRANSPORT="$transport"
    export EXTENTFS_NBD_STATE="$WORK/servers-$transport"
    run "fio verify over NBD ($transport), block sizes $BLOCK_SIZES" \
        env EXTENTFS_BIN="$WRAPPER" BLOCK_SIZES="$BLOCK_SIZES" FIO_SIZE="$FIO_SIZE" IMAGE_SIZE="$IMAGE_SIZE" \
        WORK_DIR="$WORK/fio-$transport" bash scripts/fio-verify.sh
    for block_size in $BLOCK_SIZES; do
        seed=$((block_size + 13))
        run "exerciser through a mount on NBD ($transport), block size $block_size, seed $seed, $EXERCISE_OPS ops" \
            "$BIN" exercise --mount-binary "$WRAPPER" --block-size "$block_size" --seed "$seed" \
            --ops "$EXERCISE_OPS" --cache-size 256K --shrink-seconds 60 \
            --replay-out "$WORK/exercise-$transport-bs$block_size-seed$seed.json"
    done
    stop_servers
done

for failure in "${failures[@]}"; do echo "failed: $failure"; done
echo "$passed passed, $failed failed"
((failed == 0))
