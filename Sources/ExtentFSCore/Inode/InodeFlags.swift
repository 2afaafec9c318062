/// The per-inode flags of chattr(1) that mean something here, with the bit values of
/// FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (linux/fs.h), which is also how they are stored
/// (docs/FORMAT.md, "Inode"). The engine enforces immutable and append-only (as the VFS does
/// for ext4 and XFS: FUSE leaves it to the daemon); nodump is only stored, for dump(8);
/// noatime is stored and reported, and holds trivially: extentfs never changes atime on read
/// (FUSE marks its inodes S_NOATIME, so the kernel does not either).
public struct InodeFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// FS_IMMUTABLE_FL: no change to the file at all (data, attributes, xattrs, names of it;
    /// a directory: no entry added, removed or renamed).
    public static let immutable = InodeFlags(rawValue: 0x10)
    /// FS_APPEND_FL: data may only be added at the end; the file cannot be removed or renamed
    /// (a directory: entries may be added, not removed).
    public static let appendOnly = InodeFlags(rawValue: 0x20)
    /// FS_NODUMP_FL: dump(8) skips the file. Stored only.
    public static let noDump = InodeFlags(rawValue: 0x40)
    /// FS_NOATIME_FL: reading does not update atime.
    public static let noAccessTime = InodeFlags(rawValue: 0x80)

    /// Every flag extentfs knows. Any other bit is refused from a caller (EOPNOTSUPP, as ext4
    /// and XFS refuse flags they do not support) and from disk (the image is damaged).
    public static let known: InodeFlags = [.immutable, .appendOnly, .noDump, .noAccessTime]
    /// The flags only CAP_LINUX_IMMUTABLE may set or clear.
    public static let needingImmutableCapability: InodeFlags = [.immutable, .appendOnly]

    /// The same flags as FS_IOC_FSGETXATTR's fsx_xflags (FS_XFLAG_*), which xfs_io speaks.
    public var extendedFlags: UInt32 {
        var result: UInt32 = 0
        for (flag, xflag) in InodeFlags.extendedFlagPairs where contains(flag) { result |= xflag }
        return result
    }

    /// Flags from FS_XFLAG_* bits; nil when a bit is set that has no flag here.
    public init?(extendedFlags: UInt32) {
        var flags: InodeFlags = []
        var rest = extendedFlags
        for (flag, xflag) in InodeFlags.extendedFlagPairs where extendedFlags & xflag != 0 {
            flags.insert(flag)
            rest &= ~xflag
        }
        guard rest == 0 else { return nil }
        self = flags
    }

    /// FS_XFLAG_IMMUTABLE, FS_XFLAG_APPEND, FS_XFLAG_NODUMP, FS_XFLAG_NOATIME.
    private static let extendedFlagPairs: [(InodeFlags, UInt32)] = [
        (.immutable, 0x8), (.appendOnly, 0x10), (.noDump, 0x80), (.noAccessTime, 0x40),
    ]
}
