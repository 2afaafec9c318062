#!/usr/bin/env bash
# Installs the Debian packages extentfs builds, runs and tests with, and makes sure /dev/fuse
# exists. Safe to run again: it installs only what is missing.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# fuse3/libfuse3-dev/pkg-config: the daemon; libnbd-dev: the NBD backing store; acl: getfacl and setfacl
# for the POSIX ACL tests; nbdkit: the NBD
# servers the tests and scripts/bench-nbd.sh start; fio, fuse2fs, e2fsprogs, attr, xfsprogs: tests and
# benchmark; duperemove: scripts/tools-test.sh; python3: parses fio's JSON and models XFS; kmod: modprobe; util-linux: mountpoint, mount, umount.
PACKAGES=(fuse3 libfuse3-dev pkg-config libnbd-dev acl nbdkit fio fuse2fs e2fsprogs attr xfsprogs python3 kmod duperemove
          util-linux coreutils procps)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} > 0)); then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    log "system packages already installed"
fi

command -v swift >/dev/null 2>&1 || die "swift is not on PATH: install the Swift toolchain (6.0 or newer) first"

if [[ ! -c /dev/fuse ]]; then
    log "/dev/fuse is missing: trying modprobe fuse"
    as_root modprobe fuse 2>/dev/null || true
    # In containers the module can be loaded on the host while the device node is absent.
    if [[ ! -c /dev/fuse ]] && grep -qw fuse /proc/filesystems 2>/dev/null; then
        as_root mknod -m 0666 /dev/fuse c 10 229 2>/dev/null || true
    fi
fi
[[ -c /dev/fuse ]] || die "/dev/fuse is not available: this machine (or container) cannot mount FUSE filesystems; load the fuse module on the host or run the container with --device /dev/fuse --cap-add SYS_ADMIN"

command -v fusermount3 >/dev/null 2>&1 || die "fusermount3 is missing after installing fuse3"
command -v nbdkit >/dev/null 2>&1 || die "nbdkit is missing after installing it: the NBD tests need a real server"
pkg-config --exists libnbd || die "libnbd (libnbd-dev) is missing after installing it: extentfs does not build without it"
for plugin in memory file; do
    nbdkit "$plugin" --help >/dev/null 2>&1 || die "nbdkit has no $plugin plugin: the NBD tests need it"
done
log "dependencies ready"
