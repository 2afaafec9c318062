import SystemPackage

/// Makes metadata durable: a commit writes a checkpoint of the whole metadata into free blocks,
/// then the superblock slot (sequence % 2) that points at it, with a flush before and after the
/// superblock, so the switch from the old checkpoint to the new one is atomic. The old checkpoint's
/// blocks and the blocks freed since the last commit become reusable only after that.
///
/// The caller writes back dirty data first (ordered mode): a checkpoint never maps a block whose
/// data is not on disk, because writeback allocates blocks as unwritten and converts them only
/// after their data is written.
final class Journal: @unchecked Sendable {
    let store: BackingStore
    let metadata: Metadata
    private let commitLock = Mutex()
    /// Held shared by an O_DIRECT read from mapping file blocks until it has read them
    /// (`FileSystem.readDirect`), exclusively by a commit while it makes freed blocks reusable:
    /// a block that copy-on-write or another file released meanwhile cannot be reallocated and
    /// overwritten under the reader. Holders of it take only Metadata.lock. Not nested.
    let reuseBarrier = ReadWriteLock()

    init(store: BackingStore, metadata: Metadata) {
        self.store = store
        self.metadata = metadata
    }

    private struct Prepared {
        var payload: [UInt8]
        var payloadRuns: [BlockRun]
        var index: [UInt8]
        var indexRun: BlockRun
        var frees: [BlockRun]
        var superblock: Superblock
    }

    /// Commits if anything changed since the last commit. Serialized: one commit at a time.
    func commit() throws {
        try commitLock.withLock {
            guard let prepared = try prepare() else { return }
            do {
                try write(prepared)
            } catch {
                metadata.withLock {
                    for run in prepared.payloadRuns { metadata.freeSpace.free(run) }
                    metadata.freeSpace.free(prepared.indexRun)
                    for run in prepared.frees { metadata.freeSpace.freeAfterCommit(run) }
                    metadata.isDirty = true
                }
                throw ExtentFSError("commit failed writing the checkpoint: \(error)", errno: (error as? Errno) ?? .ioError)
            }
            reuseBarrier.withExclusive { metadata.withLock {
                for run in metadata.checkpointRuns { metadata.freeSpace.free(run) }
                for run in prepared.frees { metadata.freeSpace.free(run) }
                metadata.checkpointRuns = prepared.payloadRuns + [prepared.indexRun]
                metadata.superblock = prepared.superblock
                metadata.updateMetadataReserve(lastCheckpointBlocks: metadata.checkpointRuns.reduce(0) { $0 + $1.count })
            } }
        }
    }

    private func prepare() throws -> Prepared? {
        try metadata.withLock { () -> Prepared? in
            guard metadata.isDirty || metadata.freeSpace.pendingFreeBlocks > 0 else { return nil }
            let blockSize = UInt64(metadata.geometry.blockSize)
            let payload = CheckpointCodec.encode(metadata)
            let payloadBlocks = (UInt64(payload.count) + blockSize - 1) / blockSize
            // Never take blocks promised to delayed allocations: their data must get to disk.
            let unpromised = metadata.freeSpace.freeBlocks - min(metadata.freeSpace.freeBlocks, metadata.freeSpace.reserved)
            guard payloadBlocks + 1 < unpromised else {
                throw ExtentFSError("no space left for the metadata checkpoint", errno: .noSpace)
            }
            let payloadRuns = metadata.freeSpace.allocate(payloadBlocks)
            let allocated = payloadRuns.reduce(0) { $0 + $1.count }
            let index = CheckpointIndex.encode(payloadRuns: payloadRuns)
            let indexBlocks = (UInt64(index.count) + blockSize - 1) / blockSize
            guard allocated == payloadBlocks, let indexRun = metadata.freeSpace.allocateContiguous(indexBlocks) else {
                for run in payloadRuns { metadata.freeSpace.free(run) }
                throw ExtentFSError("no space left for the metadata checkpoint", errno: .noSpace)
            }
            var superblock = metadata.superblock
            superblock.sequence += 1
            superblock.checkpoint = CheckpointRoot(
                indexBlock: indexRun.start, indexBlockCount: indexRun.count, indexBytes: UInt64(index.count),
                indexChecksum: CRC32C.checksum(index), payloadBytes: UInt64(payload.count),
                payloadChecksum: CRC32C.checksum(payload))
            let frees = metadata.freeSpace.takePendingFrees()
            metadata.isDirty = false
            return Prepared(payload: payload, payloadRuns: payloadRuns, index: index, indexRun: indexRun,
                            frees: frees, superblock: superblock)
        }
    }

    private func write(_ prepared: Prepared) throws {
        let blockSize = metadata.geometry.blockSize
        var offset = 0
        for run in prepared.payloadRuns {
            let length = min(Int(run.count) * blockSize, prepared.payload.count - offset)
            try prepared.payload.withUnsafeBytes { bytes in
                try store.write(from: bytes.baseAddress! + offset, count: length, at: run.start * UInt64(blockSize))
            }
            offset += length
        }
        try store.write(prepared.index, at: prepared.indexRun.start * UInt64(blockSize))
        try store.flush()
        try writeSuperblock(prepared.superblock, store: store)
        try store.flush()
    }

    func writeSuperblock(_ superblock: Superblock, store: BackingStore) throws {
        let slot = Superblock.slotOffsets[Int(superblock.sequence % 2)]
        try store.write(superblock.encode(), at: slot)
    }
}
