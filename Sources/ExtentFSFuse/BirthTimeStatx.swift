import CFuseTransport
import ExtentFS
import ExtentFSCore
import Glibc

/// FUSE_STATX, answered by the transport in place of libfuse 3.14 (which does not know it): the
/// one way the kernel gets a FUSE file's birth time for statx(2). The kernel sends it instead of
/// GETATTR when a caller asks for more than the basic stats (STATX_BTIME) and its cached
/// attributes have expired; it takes the attributes from the reply exactly as from a GETATTR
/// reply (fs/fuse/dir.c, fuse_do_statx), so they are the same ones, with the same timeout, and
/// it keeps the birth time with them. The chattr flags are not sent: the kernel ignores the
/// reply's STATX_ATTR_* bits.
func installBirthTimeStatx(_ server: Server) {
    fuse_transport_serve_statx({ context, nodeid, out in
        guard let context, let out else { return -EINVAL }
        let server = Unmanaged<Server>.fromOpaque(context).takeUnretainedValue()
        do {
            let attributes = try server.fileSystem.getattr(nodeid)
            let born = try server.fileSystem.birthTime(nodeid)
            out.pointee.attr_valid = UInt64(attributeTimeout)
            out.pointee.attr_valid_nsec = UInt32((attributeTimeout - attributeTimeout.rounded(.down)) * 1e9)
            fill(&out.pointee.stat, attributes, birthTime: born)
            return 0
        } catch {
            return -errnoValue(for: error)
        }
    }, Unmanaged.passUnretained(server).toOpaque())
}

/// STATX_BASIC_STATS (type, mode, nlink, uid, gid, atime, mtime, ctime, ino, size, blocks) and
/// STATX_BTIME when the birth time is known (an inode from before format version 6 has none).
private func fill(_ stat: inout fuse_transport_statx, _ attributes: FileAttributes, birthTime: Timespec) {
    let basicStats: UInt32 = 0x7ff, birthTimeBit: UInt32 = 0x800
    let known = birthTime.seconds != 0 || birthTime.nanoseconds != 0
    stat.mask = basicStats | (known ? birthTimeBit : 0)
    stat.blksize = attributes.blockSize
    stat.nlink = attributes.nlink
    stat.uid = attributes.uid
    stat.gid = attributes.gid
    stat.mode = UInt16(truncatingIfNeeded: attributes.mode)
    stat.ino = attributes.ino
    stat.size = attributes.size
    stat.blocks = attributes.blocks
    stat.atime = statxTime(attributes.atime)
    stat.mtime = statxTime(attributes.mtime)
    stat.ctime = statxTime(attributes.ctime)
    if known { stat.btime = statxTime(birthTime) }
    stat.rdev_major = deviceMajor(UInt64(attributes.rdev))
    stat.rdev_minor = deviceMinor(UInt64(attributes.rdev))
}

private func statxTime(_ time: Timespec) -> fuse_transport_sx_time {
    fuse_transport_sx_time(tv_sec: time.seconds, tv_nsec: UInt32(truncatingIfNeeded: time.nanoseconds), reserved: 0)
}
