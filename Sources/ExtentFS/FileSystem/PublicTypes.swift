import ExtentFSCore
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

public struct FileAttributes: Equatable, Sendable {
    public var ino: InodeNumber
    /// Type and permission bits, as st_mode.
    public var mode: UInt32
    public var nlink: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var rdev: UInt64
    public var size: UInt64
    /// 512-byte units actually allocated (st_blocks).
    public var blocks: UInt64
    /// The filesystem block size (st_blksize).
    public var blockSize: UInt32
    public var atime: Timespec
    public var mtime: Timespec
    public var ctime: Timespec
    public var generation: UInt64

    public var type: ExtentFSCore.FileType { ExtentFSCore.FileType(mode: mode) ?? .regular }
}

public struct Credentials: Sendable {
    public var uid: UInt32
    public var gid: UInt32
    /// CAP_FSETID: a change to a file's data keeps its set-user-ID and set-group-ID bits.
    /// Root's by default; the adapter sets it as the kernel decided for the request.
    public var keepsSetIDBits: Bool
    /// Whether the caller is in group `gid`, its primary group or a supplementary one. Asked
    /// only on the rare paths that need it (a set-group-ID file the group may not execute), so
    /// the adapter may answer from /proc.
    public var isMember: @Sendable (UInt32) -> Bool
    /// CAP_LINUX_IMMUTABLE: may set or clear the immutable and append-only flags.
    public var mayChangeImmutableFlags: Bool
    /// CAP_FOWNER: acts as the owner of any file (its other flags).
    public var overridesOwnership: Bool
    /// CAP_SYS_ADMIN: may change the filesystem label.
    public var administersFileSystems: Bool
    /// The caller's umask, for what it creates in a directory without a default ACL (the kernel
    /// leaves applying it to the daemon: FUSE_DONT_MASK). 0 for callers that masked the mode
    /// themselves.
    public var umask: UInt32

    /// Every capability defaults to what root has, and no one else.
    public init(uid: UInt32, gid: UInt32, keepsSetIDBits: Bool? = nil, umask: UInt32 = 0, isMember: (@Sendable (UInt32) -> Bool)? = nil,
                mayChangeImmutableFlags: Bool? = nil, overridesOwnership: Bool? = nil, administersFileSystems: Bool? = nil) {
        self.uid = uid
        self.gid = gid
        self.umask = umask
        self.keepsSetIDBits = keepsSetIDBits ?? (uid == 0)
        self.isMember = isMember ?? { $0 == gid }
        self.mayChangeImmutableFlags = mayChangeImmutableFlags ?? (uid == 0)
        self.overridesOwnership = overridesOwnership ?? (uid == 0)
        self.administersFileSystems = administersFileSystems ?? (uid == 0)
    }
    public static let root = Credentials(uid: 0, gid: 0)
}

public enum TimeChange: Sendable, Equatable {
    case now
    case set(Timespec)
}

/// What a write did: the bytes it took, and whether it cleared set-ID bits or capabilities (so
/// that whoever caches the file's mode must drop it).
public struct WriteResult: Sendable {
    public var count: Int
    public var removedPrivileges: Bool
}

/// What a setattr changes; nil fields stay as they are.
public struct AttributeChanges: Sendable {
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var size: UInt64?
    public var atime: TimeChange?
    public var mtime: TimeChange?
    public var ctime: Timespec?
    /// Who truncates or chowns, when the change must take the file's privileges as the kernel's
    /// truncate and chown would (FileSystem+Privileges.swift); nil takes none.
    public var privilegesRemovedBy: Credentials?
    public init(mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: UInt64? = nil,
                atime: TimeChange? = nil, mtime: TimeChange? = nil, ctime: Timespec? = nil,
                privilegesRemovedBy: Credentials? = nil) {
        self.privilegesRemovedBy = privilegesRemovedBy
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.atime = atime
        self.mtime = mtime
        self.ctime = ctime
    }
}

public struct DirectoryEntry: Sendable {
    public var name: [UInt8]
    public var ino: InodeNumber
    public var type: ExtentFSCore.FileType
    /// The cookie to pass back to continue after this entry (the readdir offset).
    public var nextCookie: UInt64
}

/// Linux renameat2 flags.
public struct RenameFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let noReplace = RenameFlags(rawValue: 1)
    public static let exchange = RenameFlags(rawValue: 2)
    public static let whiteout = RenameFlags(rawValue: 4)
}

/// Linux setxattr flags.
public struct XattrFlags: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let create = XattrFlags(rawValue: 1)
    public static let replace = XattrFlags(rawValue: 2)
}

public struct FileSystemStatistics: Sendable {
    public var blockSize: UInt64
    public var totalBlocks: UInt64
    public var freeBlocks: UInt64
    public var availableBlocks: UInt64
    public var totalInodes: UInt64
    public var freeInodes: UInt64
    public var maxNameLength: UInt64
}

public enum SeekTarget: Sendable {
    case data
    case hole
}

public struct MountOptions: Sendable {
    /// Page-cache memory budget in bytes; reclaim keeps the cache under it.
    public var cacheBytes: Int = MountOptions.defaultCacheBytes
    /// A sixteenth of the machine's memory, at least 256 MiB and at most 1 GiB. Half of it may be
    /// dirty, which lets random writes over a large file go on at memory speed while writeback
    /// catches up (the kernel lets a tenth to a fifth of memory be dirty before writers wait);
    /// more costs a first sequential write more than it gains (every page of fresh memory is
    /// faulted in and zeroed once), and the kernel's own page cache holds what is read anyway.
    public static var defaultCacheBytes: Int {
        let memory = Int(sysconf(Int32(_SC_PHYS_PAGES))) &* Int(sysconf(Int32(_SC_PAGESIZE)))
        return min(max(memory / 16, 256 << 20), 1 << 30)
    }
    /// Seconds between background commits of dirty metadata and data.
    /// Memory for metadata (`--metadata-cache-size`): half for inodes held in memory, a quarter
    /// each (at least 1 MiB) for the metadata tree's nodes cached for reading and for writing
    /// checkpoints. Inodes in use or changed
    /// since the last checkpoint are held whatever it says (InodeCache.swift).
    public var metadataCacheBytes: Int = MountOptions.defaultMetadataCacheBytes
    /// 64 MiB; the environment's EXTENTFS_METADATA_CACHE_BYTES, when set, replaces it (tests run
    /// whole suites with 0: every clean inode let go as soon as it may be, and read back).
    public static let defaultMetadataCacheBytes: Int = {
        if let value = getenv("EXTENTFS_METADATA_CACHE_BYTES").flatMap({ Int(String(cString: $0)) }), value >= 0 { return value }
        return 64 << 20
    }()
    public var commitInterval: Double = 5
    public var readOnly: Bool = false
    /// `dirsync` (or `sync`): a change to a directory is in the log before the call that made it
    /// returns (FileSystem+Synchronous.swift).
    public var synchronousDirectories: Bool = false
    /// `sync`: attribute changes too (data writes are the kernel's: it sends an fsync after each).
    public var synchronousAttributes: Bool = false
    /// Where a failed unmount leaves one line saying what was lost, written before the image is
    /// let go (so `extentfs umount`, which waits for that, finds it); removed by an unmount that
    /// succeeds.
    public var unmountReportPath: String?
    /// How to reach the backing store (the NBD timeout).
    public var store = StoreOptions()
    /// Test-only: installed on the backing store before anything is read or written.
    var storeInterceptor: (any BackingStoreInterceptor)?
    public init() {}
}

public struct FormatOptions: Sendable {
    public var blockSize: Int = 4096
    /// Bytes; nil means the existing file's or device's size.
    public var size: UInt64? = nil
    /// Overwrite an image that already holds an extentfs superblock.
    public var force: Bool = false
    /// The filesystem label (at most Superblock.maxLabelBytes bytes, no NUL).
    public var label: [UInt8] = []
    /// The volume's UUID (16 bytes); nil: a random one. It keys the name index's hash, so a
    /// chosen one makes images whose trees are the same from run to run (the fuzzers' seeds).
    public var uuid: [UInt8]? = nil
    /// How to reach the backing store (the NBD timeout).
    public var store = StoreOptions()
    public init() {}
}

/// Errors that are not a single errno: a message for the user, one line.
public struct ExtentFSError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public var errno: Errno
    public init(_ description: String, errno: Errno = .ioError) {
        self.description = description
        self.errno = errno
    }
}
