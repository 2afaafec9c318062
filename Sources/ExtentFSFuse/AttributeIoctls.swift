import CFuse
import ExtentFS
import ExtentFSCore
import SystemPackage

/// The standard ioctls of chattr flags and the filesystem label, as the kernel passes them to a
/// FUSE daemon.
///
/// Flags: the kernel answers FS_IOC_GETFLAGS/SETFLAGS and FS_IOC_FSGETXATTR/FSSETXATTR (and
/// the file_getattr/file_setattr calls) through its fileattr operations, which for FUSE
/// (fs/fuse/ioctl.c, fuse_fileattr_get/set) open the file read-only and send us an ioctl of
/// the same number with a fixed-size argument: an unsigned int of flags (4 bytes, whatever
/// _IOC_SIZE of the number says) or a struct fsxattr (28 bytes). It checks CAP_LINUX_IMMUTABLE
/// and ownership against the flags it gets from us first; the engine checks again, with the
/// caller's capabilities read from /proc.
///
/// Label: FS_IOC_GETFSLABEL/SETFSLABEL are not the VFS's; the kernel passes them on like any
/// ioctl it does not know, with their _IOC_SIZE (256 bytes, FSLABEL_MAX), on a file or on a
/// directory (the mount point, as `xfs_io -c label` uses it).
enum AttributeIoctl {
    static let getFlags = command(read: true, type: 0x66, number: 1, size: 8)     // FS_IOC_GETFLAGS: _IOR('f', 1, long)
    static let setFlags = command(read: false, type: 0x66, number: 2, size: 8)    // FS_IOC_SETFLAGS: _IOW('f', 2, long)
    static let getExtendedAttributes = command(read: true, type: 0x58, number: 31, size: fsxattrSize)   // FS_IOC_FSGETXATTR
    static let setExtendedAttributes = command(read: false, type: 0x58, number: 32, size: fsxattrSize)  // FS_IOC_FSSETXATTR
    static let getLabel = command(read: true, type: 0x94, number: 49, size: labelBufferSize)   // FS_IOC_GETFSLABEL
    static let setLabel = command(read: false, type: 0x94, number: 50, size: labelBufferSize)  // FS_IOC_SETFSLABEL

    static let all = [getFlags, setFlags, getExtendedAttributes, setExtendedAttributes, getLabel, setLabel]

    /// struct fsxattr: u32 xflags, extsize, nextents, projid, cowextsize, 8 bytes of padding.
    static let fsxattrSize: UInt32 = 28
    /// FSLABEL_MAX: the label and its NUL.
    static let labelBufferSize: UInt32 = 256
    /// The flags travel as an int (the kernel's fileattr code, chattr and xfstests use one),
    /// though the number says long.
    static let flagsSize = 4

    private static func command(read: Bool, type: UInt32, number: UInt32, size: UInt32) -> UInt32 {
        (read ? 2 : 1) << 30 | size << 16 | type << 8 | number
    }

    /// Answers one of `all`.
    static func answer(_ command: UInt32, req: fuse_req_t?, ino: InodeNumber, input: [UInt8], outputSize: Int) {
        ExtentFSFuse.handle(req) { fs in
            switch command {
            case getFlags:
                guard outputSize >= flagsSize else { throw Errno.invalidArgument }
                reply(req, bytes(of: try fs.flags(ino).rawValue))
            case setFlags:
                guard input.count >= flagsSize else { throw Errno.invalidArgument }
                let flags = InodeFlags(rawValue: u32(input, at: 0))
                try fs.setFlags(ino, flags, by: callerWithCapabilities(req))
                Server.of(req).invalidateKernelAttributes(ino)  // its ctime
                reply(req, [])
            case getExtendedAttributes:
                guard outputSize >= Int(fsxattrSize) else { throw Errno.invalidArgument }
                let flags = try fs.flags(ino)
                // nextents: what XFS reports, the file's extents (0 for a directory here).
                let extents = (try? fs.extentMap(ino, offset: 0, length: UInt64(Int64.max)).count) ?? 0
                var argument = bytes(of: flags.extendedFlags) + bytes(of: UInt32(0)) + bytes(of: UInt32(clamping: extents))
                argument += [UInt8](repeating: 0, count: Int(fsxattrSize) - argument.count)
                reply(req, argument)
            case setExtendedAttributes:
                guard input.count >= Int(fsxattrSize) else { throw Errno.invalidArgument }
                // An extent size hint, project id or CoW extent size is not something extentfs
                // has: refused unless 0, as XFS refuses what it does not support.
                guard let flags = InodeFlags(extendedFlags: u32(input, at: 0)),
                      u32(input, at: 4) == 0, u32(input, at: 12) == 0, u32(input, at: 16) == 0 else {
                    throw Errno.notSupported
                }
                try fs.setFlags(ino, flags, by: callerWithCapabilities(req))
                Server.of(req).invalidateKernelAttributes(ino)
                reply(req, [])
            case getLabel:
                guard outputSize >= Int(labelBufferSize) else { throw Errno.invalidArgument }
                let label = fs.label
                reply(req, label + [UInt8](repeating: 0, count: Int(labelBufferSize) - label.count))
            case setLabel:
                guard input.count >= Int(labelBufferSize) else { throw Errno.invalidArgument }
                // Up to the NUL; a buffer without one is too long (ext4 and btrfs: EINVAL).
                guard let end = input.prefix(Int(labelBufferSize)).firstIndex(of: 0) else { throw Errno.invalidArgument }
                try fs.setLabel(Array(input[..<end]), by: callerWithCapabilities(req))
                reply(req, [])
            default:
                throw Errno.inappropriateIOCTLForDevice
            }
        }
    }

    private static func reply(_ req: fuse_req_t?, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = fuse_reply_ioctl(req, 0, $0.baseAddress, $0.count) }
    }

    private static func bytes(of value: UInt32) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    private static func u32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }
}
