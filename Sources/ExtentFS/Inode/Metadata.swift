import SystemPackage

/// All metadata of a mounted volume, behind one lock: the inode table (with each inode's
/// attributes, extent map, directory, xattrs), free space and reference counts.
///
/// Every change goes through `transaction`: an in-memory change that notes what it touched in the
/// running transaction (`changes`); the journal logs each closed transaction as one record and
/// writes whole checkpoints in the background (Journal/Journal.swift).
final class Metadata: @unchecked Sendable {
    let lock = Mutex()
    let geometry: Geometry

    // Guarded by `lock`.
    var inodes: [InodeNumber: Inode] = [:]
    var nextInode: InodeNumber
    var freeSpace: FreeSpace
    var referenceCounts: ReferenceCounts
    /// The running transaction: what changed since the last log record.
    let changes: ChangeSet
    /// Blocks of the checkpoint each superblock slot points at (index and payload): a slot's are
    /// freed only when a newer checkpoint has replaced it there, so either copy stays mountable.
    var checkpointRunsBySlot: [[BlockRun]]
    /// The newest superblock written (or loaded).
    var superblock: Superblock
    /// What a checkpoint of the current metadata takes, in bytes, as of the last log commit
    /// (each inode's last encoded size, plus reference counts): space is charged for it.
    private(set) var encodedInodeBytes = 0

    init(superblock: Superblock, loaded: LoadedCheckpoint) {
        self.superblock = superblock
        geometry = Geometry(superblock: superblock)
        nextInode = loaded.nextInode
        changes = ChangeSet(running: loaded.logHead.sequence)
        referenceCounts = loaded.referenceCounts
        referenceCounts.changes = changes
        checkpointRunsBySlot = loaded.checkpointRunsBySlot
        var used = loaded.checkpointRuns
        for inode in loaded.inodes {
            inodes[inode.ino] = inode
            encodedInodeBytes += inode.encodedBytes
            inode.changes = changes
            for extent in inode.extents.extents { used.append(extent.physicalRun) }
        }
        freeSpace = FreeSpace(firstBlock: superblock.firstAllocatableBlock, blockCount: superblock.blockCount, used: used)
        updateMetadataReserve()
    }

    /// A new inode joins the table; its creation is part of the running transaction.
    func insert(_ inode: Inode) {
        inodes[inode.ino] = inode
        inode.changes = changes
        inode.lastChange = changes.note(inode.ino)
    }

    /// An inode leaves the table; the log records that it is gone.
    func remove(_ inode: Inode) {
        inodes.removeValue(forKey: inode.ino)
        encodedInodeBytes -= inode.encodedBytes
        inode.encodedBytes = 0
        _ = changes.note(inode.ino)
        inode.changes = nil
    }

    @inline(__always)
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        try lock.withLock(body)
    }

    /// The one way metadata changes: what the body changes is noted in `changes` as it happens.
    @inline(__always)
    func transaction<T>(_ body: () throws -> T) rethrows -> T {
        try lock.withLock(body)
    }

    /// An inode was encoded (log record or checkpoint) in `bytes`. Caller holds `lock`.
    func noteEncoded(_ inode: Inode, bytes: Int) {
        guard inodes[inode.ino] === inode else { return }
        encodedInodeBytes += bytes - inode.encodedBytes
        inode.encodedBytes = bytes
    }

    /// Blocks a checkpoint of the metadata as it is now takes (payload and index).
    var checkpointBlocksNeeded: UInt64 {
        let bytes = UInt64(max(0, encodedInodeBytes)) + 32 + UInt64(referenceCounts.entries.count) * UInt64(20)
        let blockSize = UInt64(geometry.blockSize)
        let payload = (bytes + blockSize - 1) / blockSize
        return payload + (16 + payload * 16 + blockSize - 1) / blockSize
    }

    /// Metadata is charged to space: the reserve keeps room for three checkpoints of the
    /// current metadata (two kept so either superblock copy can be mounted, one being written)
    /// less what the two kept ones already hold, plus slack. So free space shrinks as metadata
    /// grows, a checkpoint replacing an older one leaves what statfs reports unchanged, and
    /// a commit never fails for lack of space after data has filled the disk.
    func updateMetadataReserve() {
        let held = Set(checkpointRunsBySlot.flatMap { $0 }).reduce(UInt64(0)) { $0 + $1.count }
        let slack = max(UInt64(64), (UInt64(256 << 10) + UInt64(geometry.blockSize) - 1) / UInt64(geometry.blockSize))
        let wanted = 3 * checkpointBlocksNeeded + slack
        freeSpace.metadataReserve = wanted > held ? wanted - held : 0
    }

    /// A request that adds about `bytes` of metadata fails with ENOSPC unless three times that
    /// (the checkpoints it will be in) is free beyond every promise. Caller holds `lock`.
    func chargeMetadata(bytes: Int) throws {
        let blockSize = UInt64(geometry.blockSize)
        let blocks = 3 * ((UInt64(bytes) + blockSize - 1) / blockSize) + 3
        // Space freed by changes not logged yet counts: it is free before any checkpoint needs it.
        guard freeSpace.available + freeSpace.pendingFreeBlocks >= blocks else { throw Errno.noSpace }
    }

    /// Caller holds `lock`.
    func inode(_ ino: InodeNumber) throws -> Inode {
        guard let inode = inodes[ino] else { throw Errno.noSuchFileOrDirectory }
        return inode
    }
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
