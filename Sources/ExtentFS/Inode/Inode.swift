import ExtentFSCore

/// An inode in memory: held by the inode table (Metadata.inodes) while in use or changed since
/// the newest durable checkpoint, read again from the checkpoint's tree when let go
/// (InodeCache.swift).
///
/// Locks (order in Support/Locks.swift):
/// - `lock` is i_rwsem: exclusive for write, truncate and space operations; shared is unused by
///   reads, which rely on the invalidate_lock alone.
/// - `invalidateLock` (DESIGN.md rule 1): shared by every path that adds pages to the cache or maps
///   blocks to read them (read fill, readahead, writeback, the FUSE read reply); exclusive by every
///   path that removes pages because their blocks move or vanish (truncate down, punch, ...).
/// - `fieldLock` (XFS's ILOCK) and Metadata.lock guard the persisted fields; every other field
///   is Metadata.lock's alone (held exclusively; a shared transaction on this inode, under
///   `transactionLock`, may change its bookkeeping: `cowReserved`, `lastChange`, and a
///   directory's entry changes, `unloggedEntryChanges` and `checkpointEntryCookies`).
public final class Inode: @unchecked Sendable {
    public let ino: InodeNumber
    let lock = ReadWriteLock()
    let invalidateLock = ReadWriteLock()
    /// The page cache of a regular file; nil for other types.
    let pages: AddressSpace?

    /// For the persisted fields below (issue 9, requirement 4): each is changed in a transaction
    /// (Metadata.lock held exclusively, or a shared transaction on this inode, which holds
    /// `transactionLock`) and, for the change itself, under this lock (taken by the field's
    /// `_modify`). So they may be read under this lock, with Metadata.lock held exclusively, or
    /// in a shared transaction on this inode. A request reading one inode (getattr, a read's size and block map,
    /// SEEK_DATA, readlink, xattrs, a lookup answered in memory) takes this one alone and waits
    /// for no transaction. A leaf: nothing else is taken while it is held, and no field of the inode is
    /// changed while it is (a nested change of a field would wait for itself: checked in debug
    /// builds). Observers run after it is let go.
    let fieldLock = Mutex(checkingOwner: true)
    /// Held across a shared transaction on this inode (Metadata.sharedTransaction(on:)), so that
    /// two of them on one inode (a write's and writeback's) run one after the other; those on
    /// other inodes run alongside. Exclusive transactions need not take it (no shared one runs
    /// then). Taken after Metadata.lock, before the leaves.
    let transactionLock = Mutex(checkingOwner: true)

    // Persisted fields: every change notes the inode in the running transaction (`changes`), so
    // the next log commit writes its image.
    var mode: UInt32 {
        get { storedMode }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteChange() }; yield &storedMode }
    }
    var nlink: UInt32 {
        get { storedNlink }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteChange() }; yield &storedNlink }
    }
    var uid: UInt32 {
        get { storedUid }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteChange() }; yield &storedUid }
    }
    var gid: UInt32 {
        get { storedGid }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteChange() }; yield &storedGid }
    }
    var rdev: UInt64 {
        get { storedRdev }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteChange() }; yield &storedRdev }
    }
    /// The size the file has now.
    var size: UInt64 {
        get { storedSize }
        _modify {
            fieldLock.lock()
            defer {
                fieldLock.unlock()
                if pages?.hasDirtyPages != true || durableSize > size {
                    if durableSize != size { durableSize = size }
                }
                noteChange()
            }
            yield &storedSize
        }
    }
    /// The size the log records (XFS's di_size): it covers only data that is on disk, so a crash
    /// never brings a file back with zeros where its unwritten data was (data=ordered).
    /// Invariant: equal to `size` whenever the file has no dirty page (then all its data is on
    /// disk); otherwise at most `size`, raised by writeback as it writes the data below.
    private(set) var durableSize: UInt64 {
        get { storedDurableSize }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteDataChange() }; yield &storedDurableSize }
    }
    var atime: Timespec {
        get { storedAtime }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteChange() }; yield &storedAtime }
    }
    var mtime: Timespec {
        get { storedMtime }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteChange() }; yield &storedMtime }
    }
    var ctime: Timespec {
        get { storedCtime }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteChange() }; yield &storedCtime }
    }
    /// When the inode was created (statx's btime): set once, never changed. The epoch for an
    /// inode made before format version 6, which did not record it.
    var btime: Timespec {
        get { storedBtime }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteChange() }; yield &storedBtime }
    }
    /// chattr flags (InodeFlags): only known ones, whatever the source.
    var flags: InodeFlags {
        get { storedFlags }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteChange() }; yield &storedFlags }
    }
    var generation: UInt64 {
        get { storedGeneration }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteChange() }; yield &storedGeneration }
    }
    /// A directory's parent (its ".."); the root is its own parent.
    var parent: InodeNumber {
        get { storedParent }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteChange() }; yield &storedParent }
    }
    // The fields whose size varies also recount what the inode takes in a checkpoint. Changed in
    // place (`_modify`), so that a change to one extent or entry does not copy the whole.
    var extents: ExtentMap {
        _read { yield storedExtents }
        _modify {
            fieldLock.lock()
            defer {
                fieldLock.unlock()
                followExtentChange()
                noteDataChange()
                recount()
            }
            yield &storedExtents
        }
    }
    var xattrs: ExtendedAttributes {
        _read { yield storedXattrs }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteChange(); recount() }; yield &storedXattrs }
    }
    var symlinkTarget: [UInt8] {
        _read { yield storedSymlinkTarget }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteChange(); recount() }; yield &storedSymlinkTarget }
    }
    var directory: Directory? {
        _read { yield storedDirectory }
        _modify { fieldLock.lock(); defer { fieldLock.unlock(); noteChange(); recount() }; yield &storedDirectory }
    }
    // The fields' storage: reached only through the accessors above (and `init`).
    private var storedMode: UInt32
    private var storedNlink: UInt32
    private var storedUid: UInt32
    private var storedGid: UInt32
    private var storedRdev: UInt64 = 0
    private var storedSize: UInt64 = 0
    private var storedDurableSize: UInt64 = 0
    private var storedAtime: Timespec
    private var storedMtime: Timespec
    private var storedCtime: Timespec
    private var storedBtime: Timespec
    private var storedFlags: InodeFlags = []
    private var storedGeneration: UInt64 = 0
    private var storedParent: InodeNumber = 0
    private var storedExtents = ExtentMap()
    private var storedXattrs = ExtendedAttributes()
    private var storedSymlinkTarget: [UInt8] = []
    private var storedDirectory: Directory?

    /// A clean directory lets go of the entries it holds: the newest durable checkpoint's tree
    /// holds them all (format version 7), and a lookup reads them there. Not a change: nothing
    /// persisted differs. Caller holds Metadata.lock and has checked the inode is clean.
    func forgetHeldEntries() {
        // Partial directories must be logged and checkpointed by their changes, never whole.
        guard let held = storedDirectory, held.heldBytes > 0, checkpointEntryCookies != nil, unloggedEntryChanges != nil else { return }
        fieldLock.withLock { storedDirectory = held.strippedOfEntries }
        recount()
    }
    /// A directory's entry changes since its image was last logged, in order, for the next log
    /// record to carry instead of every entry (LogRecord); nil when they are not all known (a new
    /// directory, or too many to be worth it), and the next record logs the whole directory.
    /// Not persisted, not observed: it follows the changes the observers note.
    var unloggedEntryChanges: [Directory.Change]? = []
    /// A directory's entry cookies that changed since its last checkpoint (added, removed or
    /// retargeted), for the next checkpoint to rewrite only those entries in the metadata tree;
    /// nil when the tree's entries of it are not known to match (a directory loaded from an
    /// older image or replayed from the log, or too many changes), and the next checkpoint
    /// rewrites them all. Not persisted, not observed, like `unloggedEntryChanges`.
    var checkpointEntryCookies: Set<UInt64>?
    /// A regular file's logical range whose extents changed since its last checkpoint (empty:
    /// none), for the next checkpoint to rewrite only the tree's extent items there; nil when
    /// the tree's extents of it are not known to match (a new file, one loaded from an older
    /// image or replayed from the log, a map replaced whole). Kept by `extents`' observer
    /// (Inode+ExtentChanges.swift, which states the invariant); not persisted, not observed.
    var checkpointExtentRange: Range<UInt64>?
    /// The same since the file's image was last logged (format version 8): the next log record
    /// carries the extents in this range instead of the whole map (LogRecord); nil when not
    /// known (a new file, one replayed from the log, a map replaced whole), and the next record
    /// carries the whole map. Not persisted, not observed; LogRecord.close resets it.
    var unloggedExtentRange: Range<UInt64>?
    /// The stamp of the map `checkpointExtentRange` accounts for (ExtentMap.stamp): always
    /// `extents.stamp`, once the observer has run. 0 (no map's) until the first change.
    var followedExtentStamp: UInt64 = 0
    /// The running transaction's change set, once the inode belongs to a mounted volume's table.
    var changes: ChangeSet?
    /// The log sequence of the last transaction that changed this inode: fsync forces the log
    /// up to it and no further.
    var lastChange: LogSequence = 0
    /// The same for what reaching the data needs (its logged size and block map): fdatasync
    /// forces the log up to this one, so an overwrite in place costs one device flush.
    var lastDataChange: LogSequence = 0

    @inline(__always)
    private func noteChange() {
        guard let changes, lastChange != changes.running else { return }
        lastChange = changes.note(ino)
    }

    @inline(__always)
    private func noteDataChange() {
        noteChange()
        guard let changes, lastDataChange != changes.running else { return }
        lastDataChange = changes.running
        changes.noteDataChange()
    }

    /// The bytes this inode takes in a checkpoint, in O(1): exact, except that a delayed extent
    /// counts as the one extent it will at least become (docs/FORMAT.md, "Inode").
    var encodedSizeEstimate: Int {
        // ino, mode, nlink, uid, gid, rdev, size, four times, generation, parent, flags, xattr
        // count.
        var bytes = 116 + xattrs.encodedBytes
        switch type {
        case .regular: bytes += 8 + FileExtent.encodedBytes * extents.extents.count
        case .symlink: bytes += 2 + symlinkTarget.count
        case .directory: bytes += 32 + (directory?.encodedEntryBytes ?? 0)  // next cookie, count, and the totals (format 7)
        default: break
        }
        return bytes
    }

    /// What the inode table charges for this inode's memory: its checkpoint size, except that a
    /// directory is charged for the entries it holds, not for those only the tree holds.
    var memoryChargeEstimate: Int {
        let base = InodeCacheState.inodeOverheadBytes + encodedSizeEstimate
        guard let directory else { return base }
        return base - directory.encodedEntryBytes + directory.heldBytes
    }

    /// Tells the volume's MetadataSpace how this inode's size changed. O(1), so property
    /// observers can call it on every change.
    @inline(__always)
    private func recount() {
        guard metadataSpace != nil || cacheAccount != nil else { return }
        let now = encodedSizeEstimate
        if let metadataSpace {
            metadataSpace.addInodeBytes(now - countedBytes)
            countedBytes = now
        }
        if let cacheAccount {
            let charge = memoryChargeEstimate
            cacheAccount.add(charge - cacheCharge)
            cacheCharge = charge
        }
    }

    /// The inode joins (or, with nil, leaves) a mounted volume's metadata: its size is counted
    /// there from now on (or no longer). Caller holds Metadata.lock.
    func count(in space: MetadataSpace?) {
        metadataSpace?.addInodeBytes(-countedBytes)
        countedBytes = 0
        metadataSpace = space
        recount()
    }

    /// Writeback wrote the file's dirty data below `end` (and cleaned those pages).
    func noteWrittenBack(upTo end: UInt64) {
        if pages?.hasDirtyPages != true {
            if durableSize != size { durableSize = size }
        } else {
            let covered = min(size, end)
            if covered > durableSize { durableSize = covered }
        }
    }

    /// Logical blocks whose next writeback must copy a shared block (copy on write) and that hold
    /// a reservation for the copy, taken when they were dirtied (rule 4).
    var cowReserved = Set<UInt64>()
    /// Kernel lookup references (FUSE nlookup) and open handles: an unlinked inode is freed only
    /// when both reach zero. Both are `fieldLock`'s alone (read and changed under it, which the
    /// accessors take): lookups answered from memory, opens, releases and forgets of inodes the
    /// table holds change them with no Metadata.lock.
    var lookupCount: UInt64 {
        get { fieldLock.withLock { storedLookupCount } }
        _modify { fieldLock.lock(); defer { fieldLock.unlock() }; yield &storedLookupCount }
    }
    private var storedLookupCount: UInt64 = 0
    var openCount: UInt64 {
        get { fieldLock.withLock { storedOpenCount } }
        _modify { fieldLock.lock(); defer { fieldLock.unlock() }; yield &storedOpenCount }
    }
    private var storedOpenCount: UInt64 = 0

    /// One more open handle once `check` (which may read the persisted fields: the lock is held)
    /// lets it be.
    func takeOpenReference(_ check: () throws -> Void) rethrows {
        try fieldLock.withLock {
            try check()
            storedOpenCount += 1
        }
    }

    /// `opens` handles closed, `lookups` lookups forgotten (never below zero). Returns whether
    /// the inode has no name left: only then may it now be freed (FileSystem.reapIfDead).
    func dropReferences(opens: UInt64 = 0, lookups: UInt64 = 0) -> Bool {
        fieldLock.withLock {
            storedOpenCount -= min(opens, storedOpenCount)
            storedLookupCount -= min(lookups, storedLookupCount)
            return storedNlink == 0
        }
    }

    /// No name, no lookup reference, no open handle, read in one hold of `fieldLock`: whoever
    /// changes any of them to make it so calls FileSystem.reapIfDead after, which checks this
    /// with no Metadata.lock and again under it.
    var looksDead: Bool { fieldLock.withLock { storedNlink == 0 && storedLookupCount == 0 && storedOpenCount == 0 } }

    /// For a lookup with no Metadata.lock: one more lookup reference and the attributes, unless
    /// the inode has no name left (nil). Checked and taken in one hold of `fieldLock`, so an
    /// unlink's link count change comes either before (nil: the caller looks again under
    /// Metadata.lock) or after, and then the inode is in use and not freed.
    func takeLookupReference(blockSize: Int) -> FileAttributes? {
        fieldLock.withLock {
            guard storedNlink > 0 else { return nil }
            storedLookupCount += 1
            return attributes(blockSize: blockSize)
        }
    }
    /// What the mounted volume's metadata takes, which this inode's size is part of (nil until
    /// the inode joins a mounted volume's table, and after it leaves).
    private(set) var metadataSpace: MetadataSpace?
    /// This inode's part of it: its encoded size when last counted.
    private(set) var countedBytes = 0
    /// A writeback of this file failed since its last fsync, which must report it.
    var writebackFailed = false
    /// What the inode table charges for it (InodeCacheState), kept current by `recount`, and
    /// where; 0 and nil outside the table.
    var cacheCharge = 0
    var cacheAccount: InodeCacheAccount?

    /// Joins a mounted volume's metadata whose MetadataSpace already counts this inode (read
    /// back after it was let go, or counted by mount's scan). Caller holds Metadata.lock.
    func joinCounted(_ space: MetadataSpace) {
        metadataSpace = space
        countedBytes = encodedSizeEstimate
    }

    /// Leaves the table but stays counted in its MetadataSpace (its image is still in the tree).
    func leaveCounted() {
        metadataSpace = nil
        countedBytes = 0
    }

    init(ino: InodeNumber, mode: UInt32, uid: UInt32, gid: UInt32, time: Timespec, cache: PageCache?) {
        self.ino = ino
        storedMode = mode
        storedUid = uid
        storedGid = gid
        storedAtime = time
        storedMtime = time
        storedCtime = time
        storedBtime = time
        let type = FileType(mode: mode)
        storedNlink = type == .directory ? 2 : 1
        if type == .directory { storedDirectory = Directory() }
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
