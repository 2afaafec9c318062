#!/usr/bin/env bash
# Installs what is missing, builds extentfs (release), makes the default image unless it exists,
# and mounts it. Override with IMAGE, MOUNTPOINT, SIZE (mkfs size of a new image, e.g. 8G).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

IMAGE="${IMAGE:-/var/tmp/extentfs.img}"
MOUNTPOINT="${MOUNTPOINT:-/mnt/extentfs}"
SIZE="${SIZE:-8G}"

bash "$REPO_ROOT/scripts/install-deps.sh"

log "building extentfs (release)"
(cd "$REPO_ROOT" && swift build -c release)
BIN="$(extentfs_bin release)"
[[ -x "$BIN" ]] || die "build did not produce $BIN"

if is_mounted "$MOUNTPOINT"; then
    if [[ "$(mount_source "$MOUNTPOINT")" == "$(realpath -m "$IMAGE")" ]]; then
        log "$IMAGE is already mounted on $MOUNTPOINT"
        printf '\nTo unmount:  %s umount %s\n   or:       fusermount3 -u %s\n' "$BIN" "$MOUNTPOINT" "$MOUNTPOINT"
        exit 0
    fi
    die "$MOUNTPOINT is already mounted (from $(mount_source "$MOUNTPOINT")); unmount it first"
fi

if [[ -e "$IMAGE" ]]; then
    log "reusing existing image $IMAGE"
else
    log "creating image $IMAGE ($SIZE, sparse)"
    mkdir -p "$(dirname "$IMAGE")"
    "$BIN" mkfs "$IMAGE" --size "$SIZE"
fi

mkdir -p "$MOUNTPOINT"
log "mounting $IMAGE on $MOUNTPOINT"
"$BIN" mount "$IMAGE" "$MOUNTPOINT"

cat <<MSG

extentfs is mounted on $MOUNTPOINT (image: $IMAGE).
To unmount:  $BIN umount $MOUNTPOINT
   or:       fusermount3 -u $MOUNTPOINT
MSG
