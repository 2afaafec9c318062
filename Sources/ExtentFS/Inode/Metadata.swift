import SystemPackage

/// All metadata of a mounted volume, behind one lock: the inode table (with each inode's
/// attributes, extent map, directory, xattrs), free space and reference counts.
///
/// Every change goes through `transaction`, the one interface a journal will sit behind: today a
/// transaction is an in-memory change marked dirty, and a commit writes a checkpoint of the whole
/// state atomically (Journal/Commit.swift).
final class Metadata: @unchecked Sendable {
    let lock = Mutex()
    let geometry: Geometry

    // Guarded by `lock`.
    var inodes: [InodeNumber: Inode] = [:]
    var nextInode: InodeNumber
    var freeSpace: FreeSpace
    var referenceCounts: ReferenceCounts
    /// Changed since the last checkpoint.
    var isDirty = false
    /// Blocks of the checkpoint on disk now (index and payload): freed once the next is durable.
    var checkpointRuns: [BlockRun]
    var superblock: Superblock

    init(superblock: Superblock, loaded: LoadedCheckpoint) {
        self.superblock = superblock
        geometry = Geometry(superblock: superblock)
        nextInode = loaded.nextInode
        referenceCounts = loaded.referenceCounts
        checkpointRuns = loaded.checkpointRuns
        var used = loaded.checkpointRuns
        for inode in loaded.inodes {
            inodes[inode.ino] = inode
            for extent in inode.extents.extents { used.append(extent.physicalRun) }
        }
        freeSpace = FreeSpace(firstBlock: superblock.firstDataBlock, blockCount: superblock.blockCount, used: used)
        updateMetadataReserve(lastCheckpointBlocks: loaded.checkpointRuns.reduce(0) { $0 + $1.count })
    }

    @inline(__always)
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        try lock.withLock(body)
    }

    /// The one way metadata changes.
    @inline(__always)
    func transaction<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer {
            isDirty = true
            lock.unlock()
        }
        return try body()
    }

    /// Keeps room for two checkpoints of the current size plus slack, so a commit never fails
    /// for lack of space after data has filled the disk.
    func updateMetadataReserve(lastCheckpointBlocks: UInt64) {
        let slack = max(UInt64(64), (UInt64(256 << 10) + UInt64(geometry.blockSize) - 1) / UInt64(geometry.blockSize))
        freeSpace.metadataReserve = 2 * lastCheckpointBlocks + slack
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
