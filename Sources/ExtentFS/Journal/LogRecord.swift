/// The payload of a transaction record: the images of the inodes it changed (or that they are
/// gone) and the reference counts over the ranges it changed. Replaying a record makes those
/// objects exactly what they were when the transaction closed, so replay is idempotent and a
/// record needs nothing from the one before it but the state it was logged over.
///
///     u64 next inode number
///     u64 inode count, per inode: u8 kind (1 image, 2 removed), then the inode as in a
///         checkpoint (kind 1) or u64 inode number (kind 2)
///     u64 range count, per range: u64 first block, u64 block count,
///         u64 entry count, per entry: u64 first block, u64 block count, u32 count (>= 2)
struct LogRecord {
    enum Change {
        case image(InodeImage)
        case removed(InodeNumber)
    }

    var nextInode: InodeNumber
    var inodes: [Change]
    var referenceRanges: [(run: BlockRun, entries: [ReferenceCounts.Entry])]

    /// Changes a block map, a logged size or reference counts (not written: decides the preflush).
    var touchesData = false

    var isEmpty: Bool { inodes.isEmpty && referenceRanges.isEmpty }

    /// Caller holds Metadata.lock: closes the running transaction and copies what it changed.
    static func close(_ metadata: Metadata) -> (sequence: LogSequence, record: LogRecord) {
        let closed = metadata.changes.close()
        var inodes: [Change] = []
        inodes.reserveCapacity(closed.inodes.count)
        for ino in closed.inodes.sorted() {
            if let inode = metadata.inodes[ino] { inodes.append(.image(InodeImage(inode))) } else { inodes.append(.removed(ino)) }
        }
        let ranges = merged(closed.referenceRuns).map { run in (run, metadata.referenceCounts.entries(within: run)) }
        return (closed.sequence, LogRecord(nextInode: metadata.nextInode, inodes: inodes, referenceRanges: ranges,
                                           touchesData: closed.touchesData))
    }

    private static func merged(_ runs: [BlockRun]) -> [BlockRun] {
        var result: [BlockRun] = []
        for run in runs.sorted(by: { $0.start < $1.start }) where run.count > 0 {
            if let last = result.last, last.end >= run.start {
                result[result.count - 1].count = max(last.end, run.end) - last.start
            } else {
                result.append(run)
            }
        }
        return result
    }

    /// The payload.
    func encode() -> [UInt8] {
        var writer = ByteWriter(capacity: 256 + inodes.count * 160)
        writer.u64(nextInode)
        writer.u64(UInt64(inodes.count))
        for change in inodes {
            switch change {
            case .image(let image):
                writer.u8(1)
                CheckpointCodec.encode(image, into: &writer)
            case .removed(let ino):
                writer.u8(2)
                writer.u64(ino)
            }
        }
        writer.u64(UInt64(referenceRanges.count))
        for range in referenceRanges {
            writer.u64(range.run.start)
            writer.u64(range.run.count)
            writer.u64(UInt64(range.entries.count))
            for entry in range.entries {
                writer.u64(entry.run.start)
                writer.u64(entry.run.count)
                writer.u32(entry.count)
            }
        }
        return writer.bytes
    }

    /// Applies an encoded record to the state being loaded. Throws on anything malformed: a
    /// record whose checksum matched but does not decode is damage, not the end of the log.
    static func apply(_ payload: [UInt8], to state: inout ReplayState, superblock: Superblock, cache: PageCache?) throws {
        var reader = ByteReader(payload)
        let nextInode = try CheckpointCodec.validatedNextInode(try reader.u64())
        let count = try reader.count(minimumItemSize: 9)
        var changes: [(InodeNumber, Inode?)] = []
        for _ in 0..<count {
            switch try reader.u8() {
            case 1:
                let inode = try CheckpointCodec.decodeInode(&reader, superblock: superblock, cache: cache)
                guard inode.ino >= FileSystem.rootInode, inode.ino < nextInode else {
                    throw DecodingError(description: "inode number \(inode.ino) is not below the next inode number \(nextInode)")
                }
                changes.append((inode.ino, inode))
            case 2:
                changes.append((try reader.u64(), nil))
            default:
                throw DecodingError(description: "log record has an inode change of unknown kind")
            }
        }
        let rangeCount = try reader.count(minimumItemSize: 24)
        var ranges: [(BlockRun, [ReferenceCounts.Entry])] = []
        for _ in 0..<rangeCount {
            let run = BlockRun(start: try reader.u64(), count: try reader.u64())
            guard run.count > 0, run.start >= superblock.firstAllocatableBlock, run.start < superblock.blockCount,
                  run.count <= superblock.blockCount - run.start else {
                throw DecodingError(description: "log record has a reference-count range out of range: \(run)")
            }
            let entryCount = try reader.count(minimumItemSize: 20)
            var entries: [ReferenceCounts.Entry] = []
            for _ in 0..<entryCount {
                let entryRun = BlockRun(start: try reader.u64(), count: try reader.u64())
                let value = try reader.u32()
                guard entryRun.count > 0, value >= 2, entryRun.start >= run.start, entryRun.start < run.end,
                      entryRun.count <= run.end - entryRun.start,
                      entries.last.map({ $0.run.end <= entryRun.start }) ?? true else {
                    throw DecodingError(description: "log record has a malformed reference count in \(run)")
                }
                entries.append(ReferenceCounts.Entry(run: entryRun, count: value))
            }
            ranges.append((run, entries))
        }
        guard reader.remaining == 0 else { throw DecodingError(description: "log record has \(reader.remaining) trailing bytes") }
        state.nextInode = nextInode
        for (ino, inode) in changes { state.inodes[ino] = inode }
        for (run, entries) in ranges { state.referenceCounts.replace(run, with: entries) }
    }
}

/// The metadata as replay builds it: a checkpoint, then each record applied in order.
struct ReplayState {
    var nextInode: InodeNumber
    var inodes: [InodeNumber: Inode]
    var referenceCounts: ReferenceCounts
}
