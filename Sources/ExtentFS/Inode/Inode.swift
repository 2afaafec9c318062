/// An inode in memory. The whole metadata set lives in memory while mounted (checkpoints write
/// it out), so an Inode exists for every file from mount to deletion.
///
/// Locks (order in Support/Locks.swift):
/// - `lock` is i_rwsem: exclusive for write, truncate and space operations; shared is unused by
///   reads, which rely on the invalidate_lock alone.
/// - `invalidateLock` (DESIGN.md rule 1): shared by every path that adds pages to the cache or maps
///   blocks to read them (read fill, readahead, writeback, the FUSE read reply); exclusive by every
///   path that removes pages because their blocks move or vanish (truncate down, punch, ...).
/// - Everything below "Guarded by Metadata.lock" is metadata.
public final class Inode: @unchecked Sendable {
    public let ino: InodeNumber
    let lock = ReadWriteLock()
    let invalidateLock = ReadWriteLock()
    /// The page cache of a regular file; nil for other types.
    let pages: AddressSpace?

    // Guarded by Metadata.lock.
    var mode: UInt32
    var nlink: UInt32
    var uid: UInt32
    var gid: UInt32
    var rdev: UInt64 = 0
    var size: UInt64 = 0
    var atime: Timespec
    var mtime: Timespec
    var ctime: Timespec
    var generation: UInt64 = 0
    /// A directory's parent (its ".."); the root is its own parent.
    var parent: InodeNumber = 0
    var extents = ExtentMap()
    var xattrs: [[UInt8]: [UInt8]] = [:]
    var symlinkTarget: [UInt8] = []
    var directory: Directory?
    /// Logical blocks whose next writeback must copy a shared block (copy on write) and that hold
    /// a reservation for the copy, taken when they were dirtied (rule 4).
    var cowReserved = Set<UInt64>()
    /// Kernel lookup references (FUSE nlookup) and open handles: an unlinked inode is freed only
    /// when both reach zero.
    var lookupCount: UInt64 = 0
    var openCount: UInt64 = 0

    init(ino: InodeNumber, mode: UInt32, uid: UInt32, gid: UInt32, time: Timespec, cache: PageCache?) {
        self.ino = ino
        self.mode = mode
        self.uid = uid
        self.gid = gid
        atime = time
        mtime = time
        ctime = time
        let type = FileType(mode: mode)
        nlink = type == .directory ? 2 : 1
        if type == .directory { directory = Directory() }
        pages = (type == .regular && cache != nil) ? AddressSpace(ino: ino, cache: cache!) : nil
    }

    var type: FileType { FileType(mode: mode) ?? .regular }
    var isInUse: Bool { lookupCount > 0 || openCount > 0 }

    func attributes(blockSize: Int) -> FileAttributes {
        let size: UInt64
        let blocks: UInt64
        switch type {
        case .regular:
            size = self.size
            blocks = extents.mappedBlocks * UInt64(blockSize / 512)
        case .symlink:
            size = UInt64(symlinkTarget.count)
            blocks = 0
        case .directory:
            size = UInt64(max(1, ((directory?.count ?? 0) * 32 + blockSize - 1) / blockSize) * blockSize)
            blocks = 0
        default:
            size = 0
            blocks = 0
        }
        return FileAttributes(ino: ino, mode: mode, nlink: nlink, uid: uid, gid: gid, rdev: rdev, size: size,
                              blocks: blocks, blockSize: UInt32(blockSize), atime: atime, mtime: mtime,
                              ctime: ctime, generation: generation)
    }
}
