#!/usr/bin/env bash
# An NFS export of an extentfs mount, served by NFS-Ganesha (a user-space NFS server, FSAL VFS:
# it keeps the kernel's file handles of what it exports, name_to_handle_at, and opens them again
# with open_by_handle_at, as the kernel's nfsd does) and read and written with libnfs's nfs-ls,
# nfs-cat (NFSv4) and nfs-cp (NFSv3) on 127.0.0.1. For machines whose kernel has no NFS server
# or client (README, "File handles and NFS export"). Checks: the export lists and reads files,
# takes a new file, still reads files after the kernel dropped its inode cache (the daemon's
# LOOKUP count must grow: the kernel asked it for the inodes by handle), no longer reads a file
# deleted on the mount; then unmount and fsck. Ends with "N passed, M failed".
#
# Needs root, ports 111 and 2049 on 127.0.0.1, and the packages nfs-ganesha, nfs-ganesha-vfs,
# libnfs-utils and rpcbind (installed when missing). rpcbind and ganesha.nfsd are started here
# and stopped again on exit (an rpcbind already running is used and left alone). Where
# installing the package started its own service (systemd), stop it first (systemctl stop
# nfs-ganesha). Not part of scripts/test.sh: it needs the ports and daemons of a whole machine.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"
[[ $(id -u) -eq 0 ]] || die "run as root (ganesha.nfsd, drop_caches)"

packages=(nfs-ganesha nfs-ganesha-vfs libnfs-utils rpcbind)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
    log "installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
efs_require ganesha.nfsd nfs-ls nfs-cat nfs-cp rpcbind cmp
efs_init nfs

passed=0
failed=0
check() { # $1 description, rest: command
    local what="$1"
    shift
    if "$@" >/dev/null 2>&1; then echo "PASS: $what"; passed=$((passed + 1)); else echo "FAIL: $what"; failed=$((failed + 1)); fi
}
RPCBIND_PID=""
GANESHA_PID=""
efs_on_exit() {
    if [[ -n "$GANESHA_PID" ]]; then kill "$GANESHA_PID" 2>/dev/null && tail --pid="$GANESHA_PID" -f /dev/null || true; fi
    if [[ -n "$RPCBIND_PID" ]]; then kill "$RPCBIND_PID" 2>/dev/null || true; fi
}
efs_final() { echo "$passed passed, $failed failed"; (($1 == 0 && failed == 0)); }

MNT="$EFS_WORK/mnt"
IMAGE_SIZE=256M efs_mkfs "$EFS_WORK/image.img" 4096
efs_mount "$EFS_WORK/image.img" "$MNT" || die "mount failed"
mkdir -p "$MNT/dir/sub"
head -c 3M /dev/urandom >"$EFS_WORK/big"
cp "$EFS_WORK/big" "$MNT/dir/sub/big"
echo "read me over NFS" >"$MNT/small"
echo "to be deleted" >"$MNT/doomed"
head -c 1M /dev/urandom >"$EFS_WORK/upload"

if ! pgrep -x rpcbind >/dev/null; then
    rpcbind -f -w &
    RPCBIND_PID=$!
    sleep 1
fi
[[ -z "$(ss -ltnH 'sport = :2049')" ]] || die "port 2049 is in use: another NFS server runs here"
cat >"$EFS_WORK/ganesha.conf" <<EOF
NFS_CORE_PARAM { Protocols = 3, 4; NFS_Port = 2049; Bind_addr = 127.0.0.1; }
NFSV4 { Graceless = true; }
EXPORT {
    Export_Id = 77; Path = $MNT; Pseudo = /extentfs; Access_Type = RW; Squash = No_Root_Squash;
    Protocols = 3, 4; Transports = TCP; SecType = sys;
    FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
EOF
ganesha.nfsd -F -f "$EFS_WORK/ganesha.conf" -L "$EFS_WORK/ganesha.log" -p "$EFS_WORK/ganesha.pid" >"$EFS_WORK/ganesha.out" 2>&1 &
GANESHA_PID=$!
for _ in $(seq 1 100); do
    grep -q "NFS SERVER INITIALIZED" "$EFS_WORK/ganesha.log" 2>/dev/null && break
    kill -0 "$GANESHA_PID" 2>/dev/null || die "ganesha.nfsd exited (log: $EFS_WORK/ganesha.log)"
    sleep 0.2
done
URL="nfs://127.0.0.1/extentfs"
lookups() { "$EFS_BIN" stats "$MNT" | awk '$1 == "request" && $2 == "LOOKUP" { print $3 }'; }

check "nfs-ls lists the export" bash -c "timeout 60 nfs-ls '$URL/?version=4' | grep -q small"
check "nfs-cat reads a small file" bash -c "[[ \"\$(timeout 60 nfs-cat '$URL/small?version=4')\" == 'read me over NFS' ]]"
check "nfs-cat reads 3 MiB in a subdirectory" bash -c "timeout 60 nfs-cat '$URL/dir/sub/big?version=4' | cmp - '$EFS_WORK/big'"
# Written over NFSv3: libnfs-utils 4.0's nfs-cp over NFSv4 creates the file and then fails
# ("Failed to write to dest file") before any WRITE reaches the daemon, which sees no error.
check "nfs-cp writes a file (NFSv3)" timeout 60 nfs-cp "$EFS_WORK/upload" "nfs://127.0.0.1$MNT/uploaded?version=3"
check "the written file is on the mount" cmp "$EFS_WORK/upload" "$MNT/uploaded"

# The kernel forgets every unused inode of the mount; ganesha still holds its handles and opens
# them again by handle: the kernel must ask the daemon (LOOKUP of ".") for each.
before="$(lookups)"
echo 3 >/proc/sys/vm/drop_caches
check "nfs-cat after drop_caches" bash -c "timeout 60 nfs-cat '$URL/dir/sub/big?version=4' | cmp - '$EFS_WORK/big'"
after="$(lookups)"
check "the daemon was asked for the evicted inodes ($before -> $after LOOKUPs)" test "$after" -gt "$before"

rm "$MNT/doomed"
echo 3 >/proc/sys/vm/drop_caches
check "a file deleted on the mount is gone over NFS" bash -c "! timeout 60 nfs-cat '$URL/doomed?version=4'"

kill "$GANESHA_PID" 2>/dev/null || true
tail --pid="$GANESHA_PID" -f /dev/null || true
GANESHA_PID=""
check "unmount" efs_umount "$MNT"
check "fsck clean" efs_fsck "$EFS_WORK/image.img"
