#!/usr/bin/env bash
# Installs extentfs so that mount(8) mounts it like any filesystem:
#
#   mount -t fuse.extentfs IMAGE DIR [-o OPTIONS]        mount -o remount,ro DIR
#   IMAGE DIR fuse.extentfs defaults,noatime 0 0         (an /etc/fstab line; then mount DIR)
#   umount DIR                                           (waits until the image is written and released)
#
# What goes where:
#   $PREFIX/bin/extentfs                 the release binary
#   $PREFIX/lib/libExtentFSPreload.so    the LD_PRELOAD library (FICLONE, FIDEDUPERANGE, FIEMAP ...)
#   $SBINDIR/mount.fuse.extentfs         mount(8)'s helper for type fuse.extentfs: mount.fuse3 with
#                                        extentfs found in $PREFIX/bin (mount(8) gives its helpers
#                                        no PATH)
#   $SBINDIR/umount.fuse.extentfs        umount(8)'s helper: `extentfs umount`, which returns once
#                                        the daemon has written everything and let the image go
#
# PREFIX defaults to /usr/local; SBINDIR to /sbin, the directory mount(8) looks in for helpers
# (it looks nowhere else). DESTDIR stages the whole tree elsewhere (for packaging). The release
# build is made here (swift build -c release) unless BUILD_DIR names an existing build directory
# to take the binary and library from (tests install their debug build that way).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PREFIX="${PREFIX:-/usr/local}"
SBINDIR="${SBINDIR:-/sbin}"
DESTDIR="${DESTDIR:-}"

MOUNT_FUSE3="$(PATH="/sbin:/usr/sbin:$PATH" command -v mount.fuse3 || true)"
[[ -n "$MOUNT_FUSE3" ]] || die "mount.fuse3 is missing: install fuse3 (scripts/install-deps.sh)"

if [[ -z "${BUILD_DIR:-}" ]]; then
    log "building extentfs (release)"
    (cd "$REPO_ROOT" && swift build -c release)
    BUILD_DIR="$REPO_ROOT/.build/release"
fi
for built in extentfs libExtentFSPreload.so; do
    [[ -f "$BUILD_DIR/$built" ]] || die "$BUILD_DIR/$built is missing: build first, or leave BUILD_DIR unset"
done

BINDIR="$PREFIX/bin"
LIBDIR="$PREFIX/lib"
install -d "$DESTDIR$BINDIR" "$DESTDIR$LIBDIR" "$DESTDIR$SBINDIR"
install -m 0755 "$BUILD_DIR/extentfs" "$DESTDIR$BINDIR/extentfs"
install -m 0755 "$BUILD_DIR/libExtentFSPreload.so" "$DESTDIR$LIBDIR/libExtentFSPreload.so"

# mount(8) runs `mount.fuse.extentfs IMAGE DIR [-s] [-f] [-n] [-v] [-o OPTIONS]` for type
# fuse.extentfs, with the same arguments for a remount (OPTIONS then hold "remount"). mount.fuse3
# handles what every FUSE filesystem needs (drops mount(8)'s own options such as nofail, adds
# dev and suid unless told nodev or nosuid, setuid=USER) and runs `extentfs IMAGE DIR -o OPTIONS`.
helper="$(mktemp)"
trap 'rm -f "$helper"' EXIT
cat >"$helper" <<HELPER
#!/bin/sh
# mount(8)'s helper for type fuse.extentfs, installed by extentfs's scripts/install.sh.
for argument; do
    # -f: mount(8) --fake, which must change nothing.
    [ "\$argument" = "-f" ] && exit 0
done
PATH="$BINDIR:\${PATH:-/usr/sbin:/usr/bin:/sbin:/bin}" exec "$MOUNT_FUSE3" "\$@" -t fuse.extentfs
HELPER
install -m 0755 "$helper" "$DESTDIR$SBINDIR/mount.fuse.extentfs"

# umount(8) runs `umount.fuse.extentfs DIR [-n] [-l] [-f] [-v] [-r]`. A plain unmount waits until
# the daemon has released the image, so that a mount or fsck of it right after works; a lazy or
# forced one is umount(8)'s own (-i: without this helper).
cat >"$helper" <<HELPER
#!/bin/sh
# umount(8)'s helper for type fuse.extentfs, installed by extentfs's scripts/install.sh.
target="\$1"
shift
flags=""
for argument; do
    case "\$argument" in
        -l|-f) flags="\$flags \$argument" ;;
    esac
done
if [ -n "\$flags" ]; then
    exec umount -i \$flags "\$target"
fi
exec "$BINDIR/extentfs" umount "\$target"
HELPER
install -m 0755 "$helper" "$DESTDIR$SBINDIR/umount.fuse.extentfs"

log "installed $DESTDIR$BINDIR/extentfs, $DESTDIR$LIBDIR/libExtentFSPreload.so"
log "installed $DESTDIR$SBINDIR/mount.fuse.extentfs and $DESTDIR$SBINDIR/umount.fuse.extentfs"
if [[ -z "$DESTDIR" && "$SBINDIR" != "/sbin" && "$SBINDIR" != "/usr/sbin" ]]; then
    log "note: mount(8) looks for helpers in /sbin only; with SBINDIR=$SBINDIR, call them directly"
fi
