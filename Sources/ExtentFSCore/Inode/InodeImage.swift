/// An inode's persisted fields, copied out under Metadata.lock so that encoding happens without
/// it (arrays and dictionaries are copy-on-write, so a copy costs no more than its fields). The
/// engine makes one from its in-memory Inode (CheckpointCodec+Inode.swift), which also holds the
/// inode's pages; this holds none.
package struct InodeImage {
    package var ino: InodeNumber
    package var mode: UInt32
    package var nlink: UInt32
    package var uid: UInt32
    package var gid: UInt32
    package var rdev: UInt64
    package var size: UInt64
    package var atime: Timespec
    package var mtime: Timespec
    package var ctime: Timespec
    package var btime: Timespec
    package var flags: InodeFlags
    package var generation: UInt64
    package var parent: InodeNumber
    package var xattrs: ExtendedAttributes
    package var extents: ExtentMap
    package var symlinkTarget: [UInt8]
    package var directory: Directory?
    /// A directory's entries changed since the last checkpoint, by cookie; nil: all of them
    /// (Inode.checkpointEntryCookies).
    package var changedEntryCookies: Set<UInt64>?
    /// A regular file's extents changed since the last checkpoint, by logical range; nil: all
    /// of them (Inode.checkpointExtentRange).
    package var changedExtentRange: Range<UInt64>?

    package init(ino: InodeNumber, mode: UInt32, nlink: UInt32, uid: UInt32, gid: UInt32, rdev: UInt64, size: UInt64,
         atime: Timespec, mtime: Timespec, ctime: Timespec, btime: Timespec, flags: InodeFlags, generation: UInt64,
         parent: InodeNumber, xattrs: ExtendedAttributes, extents: ExtentMap, symlinkTarget: [UInt8], directory: Directory?,
         changedEntryCookies: Set<UInt64>?, changedExtentRange: Range<UInt64>?) {
        self.ino = ino
        self.mode = mode
        self.nlink = nlink
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.size = size
        self.atime = atime
        self.mtime = mtime
        self.ctime = ctime
        self.btime = btime
        self.flags = flags
        self.generation = generation
        self.parent = parent
        self.xattrs = xattrs
        self.extents = extents
        self.symlinkTarget = symlinkTarget
        self.directory = directory
        self.changedEntryCookies = changedEntryCookies
        self.changedExtentRange = changedExtentRange
    }

    package var type: FileType { FileType(mode: mode) ?? .regular }
}

/// The fields an encoded inode image holds, by the format version that wrote it: a decoder
/// must know which (an image does not say). Trees carry their superblock's version, log records
/// say it by the kind of each change (LogRecord), whole checkpoints are all before version 6.
package enum InodeImageLayout: Sendable {
    /// Versions 2 to 5: no birth time, no flags.
    case beforeVersion6
    /// Version 6: btime after ctime, u32 flags after the parent.
    case version6
    /// Version 7: a directory's image also gives its entry count and their checkpoint bytes
    /// after the entries it lists, so that a directory read from the tree without its entries
    /// knows them (Directory, partial).
    case version7

    package static let current = InodeImageLayout.version7
    /// The first format version whose images carry btime and flags.
    package static let firstVersionWithFlags: UInt32 = 6
    /// The first format version with directory totals in the image and a name index in the tree.
    package static let firstVersionWithNameIndex: UInt32 = 7

    package init(version: UInt32) {
        if version >= InodeImageLayout.firstVersionWithNameIndex {
            self = .version7
        } else {
            self = version >= InodeImageLayout.firstVersionWithFlags ? .version6 : .beforeVersion6
        }
    }

    package var hasFlags: Bool { self != .beforeVersion6 }
    package var hasDirectoryTotals: Bool { self == .version7 }
}
