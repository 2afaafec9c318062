import ExtentFSFuse
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// MS_REMOUNT (<sys/mount.h>).
private let remountFlag: UInt = 32

/// `mount -o remount,ro DIR` (or rw, nosuid, noatime ...): mount(8) runs the helper again,
/// `extentfs IMAGE DIR -o remount,<the mount's options merged with the new ones>`. FUSE takes the
/// VFS flags of a remount (read-only, nosuid, nodev, noexec, sync, dirsync, the atime flags) and
/// ignores every other option; the daemon is not told. It learns of ro -> rw when the kernel
/// lets a change through to a read-only engine (ExtentFSFuse/Remount.swift). Needs root, as any
/// remount does (fusermount3 cannot remount).
func remount(mountpoint: String, flags: UInt) throws {
    let path = absolutePathNotFollowingLast(mountpoint)
    guard let entry = try MountEntry.current(at: path), entry.isExtentFS else {
        throw CommandFailure("\(path) is not an extentfs mount")
    }
    guard mount(entry.source, path, nil, flags | remountFlag, nil) == 0 else {
        throw CommandFailure("remount of \(path): \(Errno(rawValue: errno))")
    }
}
