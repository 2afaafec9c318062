import ExtentFSCore
import Logging
import SystemPackage

/// All metadata of a mounted volume: the inode table (with each inode's attributes, extent map,
/// directory, xattrs), free space and reference counts.
///
/// Every change goes through `transaction` or `sharedTransaction`: an in-memory change that notes
/// what it touched in the running transaction (`changes`); the journal logs each closed
/// transaction as one record and writes whole checkpoints in the background
/// (Journal/Journal.swift).
///
/// `lock` is held exclusively by `transaction` and `withLock` (everything below is theirs), and
/// shared by `sharedTransaction(on:)`: changes confined to one inode, whose `transactionLock` it
/// holds, which reach what inodes share only through locks or atomics of their own
/// (`allocatorLock` for free space and reference counts, which they only lower; ChangeSet's
/// noting; MetadataSpace's and the inode table's byte counts) and leave the rest alone. Whoever
/// holds it exclusively (the log's commit, a checkpoint's snapshot, every other change) sees no
/// shared transaction half done.
final class Metadata: @unchecked Sendable {
    let lock = ReadWriteLock()
    /// Free space (`freeSpace`) and reference counts (`referenceCounts`), for shared
    /// transactions: they take it for each use of them (one hold for a check and the change it
    /// allows; a count read with ChangeSet's unshared blocks), several at once. Exclusive holders
    /// of `lock` need not (no shared transaction runs then). Only ChangeSet's noting lock is
    /// taken inside it.
    let allocatorLock = Mutex()
    /// For shared holds of `lock` that add to the table, what they share: `nextInode`,
    /// `inodeCount` and the table's cache bookkeeping (`cacheState`) as an inode joins (made
    /// with a name, FileSystem+Names.swift, or read back, `inodeUnderTableLock`), and the
    /// committed tree (not thread-safe), which they read under it to read an inode back or look a
    /// name up in a directory that holds only some of its entries. Exclusive holders of `lock`
    /// need not take it (no shared hold runs then). Taken inside a shared hold (in a transaction,
    /// after its transactionLocks); nothing is taken inside it but the committed tree's device
    /// reads and leaves (the table's map, ChangeSet's noting, a fieldLock).
    let tableLock = Mutex()
    /// Held across a rename that moves a directory to another parent in a shared transaction
    /// (Linux's s_vfs_rename_mutex): its walk up the new parent's ancestors, to refuse a move
    /// below itself, reads `parent` fields that none of the transactionLocks it holds guards,
    /// and only such moves change them; two at once could each pass their walk and together make
    /// a loop cut off from the root. Taken before `lock` (a rename holding `lock` exclusively
    /// needs it not: no shared transaction runs then).
    let directoryMoveLock = Mutex()
    let geometry: Geometry

    // Guarded by `lock`.
    /// The inode table: a cache over the newest durable checkpoint (InodeCache.swift states what
    /// it always holds). Use `inode(_:)` to find an inode; this holds only what is in memory.
    /// Changed under `lock` only; its own lock lets a request read it without (InodeTable.swift).
    let inodes = InodeTable()
    /// Every inode of the volume, held or not.
    private(set) var inodeCount: UInt64 = 0
    /// The newest durable checkpoint's tree, where inodes not held are read from (nil until the
    /// volume has one that holds everything: an image of version 2 or 3 before its first
    /// checkpoint, or a volume being made).
    var committed: CommittedTree?
    /// Inodes in checkpoints written but not durable yet: held until one is.
    var checkpointInFlight = Set<InodeNumber>()
    var cacheState: InodeCacheState
    /// `cacheState`'s account, read with no lock held (it is atomic; `cacheState` is not).
    let cacheAccount = InodeCacheAccount()
    /// Wakes the flusher to ask the kernel to let go of inodes (KernelInodePruning.swift). Called
    /// under `lock`; it takes only the flusher's own mutex.
    var wakeForKernelPrune: (() -> Void)?
    /// Each tree's node cache (the committed tree's, which the table reads from, and the journal's,
    /// the next checkpoint being built): a quarter of the metadata cache's budget each.
    var treeNodeCacheBytes = max(1 << 20, MountOptions.defaultMetadataCacheBytes / 4)
    /// Where a regular file read back from the tree keeps its pages.
    var pageCache: PageCache?
    var nextInode: InodeNumber
    var freeSpace: FreeSpace
    var referenceCounts: ReferenceCounts
    /// The running transaction: what changed since the last log record.
    let changes: ChangeSet
    /// What changed since the last checkpoint: what the next one writes into the tree.
    var sinceCheckpoint: CheckpointChanges
    /// The newest superblock written (or loaded).
    var superblock: Superblock
    /// What a checkpoint of the metadata takes, current at every change: space is held for it.
    let space: MetadataSpace

    init(superblock: Superblock, loaded: LoadedCheckpoint) {
        self.superblock = superblock
        geometry = Geometry(superblock: superblock)
        nextInode = loaded.nextInode
        cacheState = InodeCacheState(budgetBytes: MountOptions.defaultMetadataCacheBytes / 2, account: cacheAccount)
        changes = ChangeSet(running: loaded.logHead.sequence)
        space = MetadataSpace(blockSize: Int(superblock.blockSize))
        referenceCounts = loaded.referenceCounts
        referenceCounts.changes = changes
        referenceCounts.metadataSpace = space
        sinceCheckpoint = loaded.sinceCheckpoint
        var fileRuns: [BlockRun] = []
        space.addInodeBytes(loaded.notHeld.checkpointBytes)
        inodeCount = loaded.notHeld.count
        for inode in loaded.inodes {
            inodes[inode.ino] = inode
            inodeCount += 1
            inode.count(in: space)
            inode.changes = changes
            cacheState.admit(inode)
            if loaded.fileBlocks == nil { for extent in inode.extents.extents { fileRuns.append(extent.physicalRun) } }
        }
        // The blocks files use: the tree's list as the log left it (version 5), or every extent.
        let fileBlocks = loaded.fileBlocks ?? BlockRunSet(fileRuns)
        freeSpace = FreeSpace(firstBlock: superblock.firstAllocatableBlock, blockCount: superblock.blockCount,
                              used: loaded.checkpointRuns + fileBlocks.runs, fileBlocks: fileBlocks)
        freeSpace.metadataSpace = space
        freeSpace.changes = changes
    }

    /// A number for a new inode, counted in `inodeCount` from now on: ENOSPC when the volume
    /// holds `maxInodes` inodes, or past the last number. Numbers are never reused, and an image
    /// may start near the end of them: past it, the image would be one that no mount accepts.
    /// The inode joins right after, with `insert`: nothing between can fail.
    func claimInodeNumber() throws -> InodeNumber {
        try tableLock.withLock {
            guard hasRoomForInode else { throw Errno.noSpace }
            defer {
                nextInode += 1
                inodeCount += 1
            }
            return nextInode
        }
    }

    /// Another inode fits: fewer than `maxInodes`, and a number left. Caller holds `lock`
    /// exclusively, or `tableLock`.
    var hasRoomForInode: Bool { inodeCount < geometry.maxInodes && nextInode + 1 < CheckpointCodec.maxInodeNumber }

    /// A new inode joins the table, with a number claimed for it (`claimInodeNumber`); its
    /// creation is part of the running transaction.
    func insert(_ inode: Inode) {
        inodes[inode.ino] = inode
        tableLock.withLock { cacheState.admit(inode) }
        inode.count(in: space)
        inode.changes = changes
        inode.lastChange = changes.note(inode.ino)
    }

    /// A dead inode leaves the table; the log records that it is gone. Caller is in a
    /// transaction shared on `inode`, or holds `lock` exclusively: it leaves under `tableLock`,
    /// noted as changed before the lock is let go, so that a read back under it
    /// (`inodeUnderTableLock`) finds either the member or that it is gone.
    func remove(_ inode: Inode) {
        tableLock.withLock {
            inodes.removeValue(forKey: inode.ino)
            inodeCount -= 1
            cacheState.release(inode)
            _ = changes.note(inode.ino)
        }
        inode.count(in: nil)
        inode.changes = nil
    }

    @inline(__always)
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        try lock.withExclusive(body)
    }

    /// The way metadata changes: what the body changes is noted in `changes` as it happens.
    @inline(__always)
    func transaction<T>(_ body: () throws -> T) rethrows -> T {
        try lock.withExclusive(body)
    }

    /// A transaction on `inode` that runs alongside shared ones on other inodes (the class
    /// comment says what it may touch): a write's reservation of space and its size and times
    /// (FileSystem+Write.swift), writeback's allocation, conversions and logged size
    /// (Writeback.swift), setattr's mode, owner and times (FileSystem+Attributes.swift), a
    /// truncate and every fallocate mode: preallocate, punch, zero, collapse, insert, unshare
    /// (FileSystem+Truncate.swift, +Space.swift); setxattr and removexattr (+Xattr.swift); a
    /// name made in a directory, shared on the directory (create, mknod, mkdir, symlink:
    /// FileSystem+Names.swift), which also makes its new inode join the table under `tableLock`;
    /// a name removed or linked, shared on the directory and the inode, and a rename
    /// (FileSystem+Rename.swift), on both directories and the inodes both names are for (the
    /// form on several inodes). A listing (readdir) holds one on its directory too, so that no
    /// name in it changes while it lists; it changes only lookup counts.
    /// Never nested, in itself or in any other hold of `lock`: the lock prefers writers, so a
    /// second shared hold waits behind an exclusive waiter that waits for the first.
    @inline(__always)
    func sharedTransaction<T>(on inode: Inode, _ body: () throws -> T) rethrows -> T {
        try lock.withShared { try inode.transactionLock.withLock(body) }
    }

    /// A shared transaction on several inodes (a name removed or linked: the directory and the
    /// inode the name is for; a rename: both directories and the inodes both names are for),
    /// their transactionLocks taken lower number first (Locks.swift), each once.
    func sharedTransaction<T>(on inodes: [Inode], _ body: () throws -> T) rethrows -> T {
        var ordered: [Inode] = []
        for inode in inodes.sorted(by: { $0.ino < $1.ino }) where !ordered.contains(where: { $0 === inode }) { ordered.append(inode) }
        lock.lockShared()
        defer { lock.unlock() }
        for inode in ordered { inode.transactionLock.lock() }
        defer { for inode in ordered.reversed() { inode.transactionLock.unlock() } }
        return try body()
    }

    /// No block is mapped twice, and none stopped being shared in a change not yet durable: every
    /// mapped block may be written in place and none needs a copy-on-write reservation, which
    /// writes and writeback then learn with no lock. In a transaction on a file, shared or not,
    /// it stays true of that file's blocks once read true: a count goes up only in a clone or
    /// dedupe from the file that maps the block, under its inode lock and its transactionLock
    /// (FileSystem+Remap.swift), and blocks become unshared only when a count of two goes down.
    /// The count of entries is read first: a decrement stores it after noting what it unshared.
    var noBlockIsShared: Bool { space.referenceEntries == 0 && !changes.hasUnsharedBlocks }

    /// A request that adds up to `bytes` of metadata fails with ENOSPC unless three times that
    /// (the checkpoints it will be in) is free beyond every promise, the metadata reserve
    /// included. Call before the change, in the same hold of `lock`: the change itself then
    /// grows the reserve (MetadataSpace), so the next request sees it. `givesSpaceBack`: the
    /// operation frees space (punch, collapse, dedupe) and may use the cleanup pool, so that a
    /// volume full of data can still be cleaned up. Caller holds `lock` exclusively, or shared
    /// with `allocatorLock`; a shared transaction's change comes after the allocator's lock is
    /// let go, so it charges with `chargePending` instead.
    func chargeMetadata(bytes: Int, givesSpaceBack: Bool = false) throws {
        // Space freed by changes not logged yet counts: it is free before any checkpoint needs it.
        let spare = freeSpace.spareBlocks(countingPendingFrees: true) + Int64(givesSpaceBack ? space.cleanupPoolBlocks : 0)
        guard spare >= Int64(space.reserveGrowth(forBytes: bytes)) else { throw Errno.noSpace }
    }

    /// `chargeMetadata` for a change that `body` makes after the allocator's lock is let go (in a
    /// transaction shared on the inode it changes, or not): the bytes count as pending
    /// (MetadataSpace.pendingBytes) until `body`, whose change counts them itself, has run, so
    /// that another request's check, made meanwhile, does not pass on the room this one took.
    func withMetadataCharged<T>(bytes: Int, _ body: () throws -> T) throws -> T {
        try allocatorLock.withLock { try chargePending(bytes: bytes) }
        defer { settleCharge(bytes: bytes) }
        if bytes > 0, let hook = pageCache?.pauseHook { hook(.metadataChargedBeforeChange) }
        return try body()
    }

    /// `chargeMetadata`, the bytes then pending until `settleCharge(bytes:)`, which the caller
    /// calls once the change they are for has counted itself (or will not be made). Caller holds
    /// `allocatorLock` (with `lock` shared), or `lock` exclusively.
    func chargePending(bytes: Int, givesSpaceBack: Bool = false) throws {
        guard bytes > 0 else { return }
        try chargeMetadata(bytes: bytes, givesSpaceBack: givesSpaceBack)
        space.addPendingBytes(bytes)
    }

    func settleCharge(bytes: Int) {
        if bytes > 0 { space.addPendingBytes(-bytes) }
    }

    let logger = Logger(label: "extentfs.metadata")
}

/// Fixed numbers of a volume, readable without a lock.
struct Geometry: Sendable {
    let blockSize: Int
    let blockCount: UInt64
    let maxInodes: UInt64
    /// Allocation and page-state unit within a page: min(block size, page size).
    let unitSize: Int
    let unitsPerPage: Int
    let pagesPerBlock: Int
    let blockShift: Int

    init(superblock: Superblock) {
        blockSize = Int(superblock.blockSize)
        blockCount = superblock.blockCount
        maxInodes = superblock.maxInodes
        unitSize = min(blockSize, Page.size)
        unitsPerPage = Page.size / unitSize
        pagesPerBlock = max(1, blockSize / Page.size)
        blockShift = blockSize.trailingZeroBitCount
    }

    var maxFileBlocks: UInt64 { Superblock.maxFileSize >> UInt64(blockShift) }
}
