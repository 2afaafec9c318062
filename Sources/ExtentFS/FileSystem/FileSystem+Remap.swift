import ExtentFSCore
import SystemPackage

/// Clone, dedupe and copy_file_range: sharing blocks between files (or within one) through
/// reference counts. Locking (rule 2): both inodes' locks, lower inode number first; both files
/// written back; both invalidate_locks exclusive, lower first; then compare (dedupe) and remap
/// before any lock drops. The remap is a transaction shared on both files (issue 9,
/// requirement 4), its counts raised under the allocator's lock: a count goes up only for blocks
/// the source maps, and whoever decides by such a count to write one in place (a write, its
/// write-through, writeback of the source) is held off by the source's inode lock and
/// invalidate_lock, taken here after its writeback, as XFS takes both files' IOLOCK and MMAPLOCK
/// and waits for writeback before a remap. Other files' decisions need no count of these blocks.
extension FileSystem {
    /// `caller`: who changes the destination's data; unless privileged, the set-user-ID and
    /// set-group-ID bits go (FileSystem+Privileges.swift). In-process callers act as root.
    public func clone(from source: InodeNumber, sourceOffset: UInt64, to destination: InodeNumber,
                      destinationOffset: UInt64, length: UInt64, by caller: Credentials = .root) throws -> UInt64 {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        return try remapOperation(source, destination) { sourceInode, destinationInode in
            let length = try checkRemap(sourceInode, sourceOffset, destinationInode, destinationOffset, length, dedupe: false)
            guard length > 0 else { return 0 }
            try remap(sourceInode, sourceOffset, destinationInode, destinationOffset, length, changedBy: caller)
            return length
        }
    }

    public func dedupe(from source: InodeNumber, sourceOffset: UInt64, length: UInt64,
                       to destination: InodeNumber, destinationOffset: UInt64) throws -> DedupeStatus {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        return try remapOperation(source, destination) { sourceInode, destinationInode in
            let length = try checkRemap(sourceInode, sourceOffset, destinationInode, destinationOffset, length, dedupe: true)
            guard length > 0 else { return .same(bytes: 0) }
            guard try rangesEqual(sourceInode, sourceOffset, destinationInode, destinationOffset, length) else { return .differs }
            pausePoint(.dedupeAfterCompare)
            // The destination reads as it did: no new times, nothing taken from it.
            try remap(sourceInode, sourceOffset, destinationInode, destinationOffset, length, changedBy: nil)
            return .same(bytes: length)
        }
    }

    /// Whole blocks are shared when both offsets sit at the same place within a block; the
    /// unaligned head and tail (or everything, when they do not) are copied.
    public func copyFileRange(from source: InodeNumber, sourceOffset: UInt64, to destination: InodeNumber,
                              destinationOffset: UInt64, length: UInt64) throws -> UInt64 {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        let sourceInode = try inode(source)
        let destinationInode = try inode(destination)
        guard sourceInode.type == .regular, destinationInode.type == .regular else {
            throw sourceInode.type == .directory || destinationInode.type == .directory ? Errno.isDirectory : Errno.invalidArgument
        }
        // generic_copy_file_checks: no copy into an immutable (or append-only) file.
        try destinationInode.fieldLock.withLock { try refuseIfImmutableOrAppendOnly(destinationInode) }
        let sourceSize = sourceInode.fieldLock.withLock { sourceInode.size }
        guard sourceOffset < sourceSize, length > 0 else { return 0 }
        var remaining = min(length, sourceSize - sourceOffset)
        guard destinationOffset <= Superblock.maxFileSize, remaining <= Superblock.maxFileSize - destinationOffset else {
            throw Errno.fileTooLarge
        }
        if source == destination, sourceOffset < destinationOffset + remaining, destinationOffset < sourceOffset + remaining {
            throw Errno.invalidArgument
        }
        let blockSize = UInt64(geometry.blockSize)
        var copied: UInt64 = 0
        if sourceOffset % blockSize == destinationOffset % blockSize {
            let head = min(remaining, (blockSize - sourceOffset % blockSize) % blockSize)
            copied += try copyBytes(source, sourceOffset, destination, destinationOffset, head)
            remaining -= head
            let whole = remaining / blockSize * blockSize
            if whole > 0 {
                copied += try clone(from: source, sourceOffset: sourceOffset + copied, to: destination,
                                    destinationOffset: destinationOffset + copied, length: whole)
                remaining -= whole
            }
        }
        copied += try copyBytes(source, sourceOffset + copied, destination, destinationOffset + copied, remaining)
        return copied
    }

    private func copyBytes(_ source: InodeNumber, _ sourceOffset: UInt64, _ destination: InodeNumber,
                           _ destinationOffset: UInt64, _ length: UInt64) throws -> UInt64 {
        var done: UInt64 = 0
        while done < length {
            let chunk = Int(min(length - done, 1 << 20))
            var failure: Error?
            var got = 0
            try read(source, offset: sourceOffset + done, count: chunk) { bytes in
                got = bytes.count
                do {
                    if !bytes.isEmpty { got = try write(destination, offset: destinationOffset + done, bytes) }
                } catch {
                    failure = error
                }
            }
            if let failure { if done > 0 { return done }; throw failure }
            if got == 0 { break }
            done += UInt64(got)
        }
        return done
    }

    /// Locks both files (or one, for a same-file operation) in order, writes them back, takes
    /// both invalidate_locks exclusively, runs `body`, then updates times.
    private func remapOperation<T>(_ source: InodeNumber, _ destination: InodeNumber,
                                   _ body: (Inode, Inode) throws -> T) throws -> T {
        let sourceInode = try inode(source)
        let destinationInode = try inode(destination)
        for inode in [sourceInode, destinationInode] where inode.type != .regular {
            throw inode.type == .directory ? Errno.isDirectory : Errno.invalidArgument
        }
        let ordered = source == destination ? [sourceInode] : [sourceInode, destinationInode].sorted { $0.ino < $1.ino }
        for inode in ordered { inode.lock.lockExclusive() }
        defer { for inode in ordered.reversed() { inode.lock.unlock() } }
        // generic_remap_file_range_prep: nothing is cloned or deduped into an immutable file;
        // an append-only one takes data only at its end, as writes.
        // The flags change only under the inode lock (setFlags), held here.
        try destinationInode.fieldLock.withLock { try refuseIfImmutableOrAppendOnly(destinationInode) }
        for inode in ordered { try writeback(inode) }
        for inode in ordered { inode.invalidateLock.lockExclusive() }
        defer { for inode in ordered.reversed() { inode.invalidateLock.unlock() } }
        return try body(sourceInode, destinationInode)
    }

    /// The kernel's generic_remap_checks (fs/remap_range.c), which XFS applies to clone and
    /// dedupe. Returns the length to remap: length 0 means through the source's EOF; dedupe may
    /// shorten an unaligned tail to whole blocks (REMAP_FILE_CAN_SHORTEN), clone may not.
    private func checkRemap(_ source: Inode, _ sourceOffset: UInt64, _ destination: Inode, _ destinationOffset: UInt64,
                            _ requested: UInt64, dedupe: Bool) throws -> UInt64 {
        let blockSize = UInt64(geometry.blockSize)
        // Sizes change only under the inode locks the caller holds.
        let sourceSize = source.fieldLock.withLock { source.size }
        let destinationSize = destination.fieldLock.withLock { destination.size }
        var count = requested
        if count == 0 {
            guard sourceOffset <= sourceSize else { throw Errno.invalidArgument }
            count = sourceSize - sourceOffset
            if count == 0 { return 0 }
        }
        guard sourceOffset % blockSize == 0, destinationOffset % blockSize == 0 else { throw Errno.invalidArgument }
        guard sourceOffset <= UInt64.max - count, destinationOffset <= UInt64.max - count else { throw Errno.invalidArgument }
        if dedupe && (sourceOffset >= sourceSize || sourceOffset + count > sourceSize ||
                      destinationOffset >= destinationSize || destinationOffset + count > destinationSize) {
            throw Errno.invalidArgument
        }
        guard sourceOffset < sourceSize else { throw Errno.invalidArgument }
        count = min(count, sourceSize - sourceOffset)
        guard destinationOffset <= Superblock.maxFileSize, count <= Superblock.maxFileSize - destinationOffset else {
            throw Errno.fileTooLarge
        }
        // Linking to the source's EOF rounds up to the block for the overlap check; otherwise the
        // count must be whole blocks.
        let blockCount: UInt64
        if sourceOffset + count == sourceSize && (!dedupe || destinationOffset + count == destinationSize) {
            blockCount = (sourceSize + blockSize - 1) / blockSize * blockSize - sourceOffset
        } else {
            count = count / blockSize * blockSize
            blockCount = count
        }
        if source === destination, destinationOffset + blockCount > sourceOffset, destinationOffset < sourceOffset + blockCount {
            throw Errno.invalidArgument
        }
        if count != requested && requested != 0 && !dedupe { throw Errno.invalidArgument }
        // A partial last block may not cut into data the destination keeps past the range.
        if count % blockSize != 0, destinationOffset + count < destinationSize { throw Errno.invalidArgument }
        return count
    }

    /// Compares through the page cache. The caller holds both invalidate_locks exclusively: the
    /// fill here does not take them again (rule 2, as read_mapping_page does in the kernel).
    private func rangesEqual(_ source: Inode, _ sourceOffset: UInt64, _ destination: Inode, _ destinationOffset: UInt64,
                             _ length: UInt64) throws -> Bool {
        var compared: UInt64 = 0
        let chunk: UInt64 = 256 * UInt64(Page.size)
        while compared < length {
            let count = Int(min(chunk, length - compared))
            let left = try cachedBytes(source, sourceOffset + compared, count)
            let right = try cachedBytes(destination, destinationOffset + compared, count)
            if left != right { return false }
            compared += UInt64(count)
        }
        return true
    }

    private func cachedBytes(_ inode: Inode, _ offset: UInt64, _ count: Int) throws -> [UInt8] {
        guard let space = inode.pages else { throw Errno.invalidArgument }
        let firstPage = offset / UInt64(Page.size)
        let lastPage = (offset + UInt64(count) - 1) / UInt64(Page.size)
        let pages = try uptodatePages(inode, space, firstPage...lastPage, readaheadTo: lastPage)
        defer { for page in pages { space.release(page) } }
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { buffer in
            var copied = 0
            for page in pages {
                let start = max(offset, page.fileOffset)
                let stop = min(offset + UInt64(count), page.fileOffset + UInt64(Page.size))
                page.lock.withLock {
                    (buffer.baseAddress! + copied).copyMemory(from: page.memory + Int(start - page.fileOffset), byteCount: Int(stop - start))
                }
                copied += Int(stop - start)
            }
        }
        return bytes
    }

    /// Maps the destination range to the source's blocks. Both files are written back and both
    /// invalidate_locks held exclusively by the caller. `caller` is who changes the
    /// destination's data (clone), nil when its contents stay the same (dedupe): only a change
    /// updates its times and takes its privileges, in the transaction that changes it.
    private func remap(_ source: Inode, _ sourceOffset: UInt64, _ destination: Inode, _ destinationOffset: UInt64,
                       _ length: UInt64, changedBy caller: Credentials?) throws {
        let blockSize = UInt64(geometry.blockSize)
        let shift = UInt64(geometry.blockShift)
        let sourceFirst = sourceOffset >> shift
        let count = (length + blockSize - 1) / blockSize
        let destinationFirst = destinationOffset >> shift
        if let space = destination.pages {
            dropCached(space, from: destinationFirst * blockSize, to: (destinationFirst + count) * blockSize)
        }
        try metadata.sharedTransaction(on: [source, destination]) {
            let shared = source.extents.extents(from: sourceFirst, to: sourceFirst + count).filter { $0.state != .delayed }
            // An extent per source extent; reference counts split wherever a source run's
            // pieces differ and at its ends; the destination's map and counts split at the ends.
            // Pending from the check to the change, which then counts itself.
            let charged = try metadata.allocatorLock.withLock { () -> Int in
                let pieces = shared.reduce(0) { $0 + metadata.referenceCounts.pieces(of: $1.physicalRun).count }
                let bytes = FileExtent.encodedBytes * shared.count +
                    ReferenceCounts.encodedEntryBytes * (pieces + 2 * shared.count) + FileSystem.splitBytes
                try metadata.chargePending(bytes: bytes, givesSpaceBack: caller == nil)
                return bytes
            }
            defer { metadata.settleCharge(bytes: charged) }
            unmapBlocks(destination, from: destinationFirst, to: destinationFirst + count)
            metadata.allocatorLock.withLock { for extent in shared { metadata.referenceCounts.increment(extent.physicalRun) } }
            for extent in shared {
                destination.extents.insert(FileExtent(logical: extent.logical - sourceFirst + destinationFirst, length: extent.length,
                                                      physical: extent.physical, state: extent.state))
            }
            let end = destinationOffset + length
            if end > destination.size { destination.size = end }
            if let caller {
                removePrivileges(destination, changedBy: caller)
                let now = Timespec.now
                destination.mtime = now
                destination.ctime = now
            }
        }
    }

    /// At most `limit` entries, so a caller paging through a huge map pays for what it gets.
    public func extentMap(_ ino: InodeNumber, offset: UInt64, length: UInt64, limit: Int = Int.max) throws -> [MappedExtent] {
        try journal.shutdown.check()
        let inode = try self.inode(ino)
        guard inode.type == .regular else { throw inode.type == .directory ? Errno.isDirectory : Errno.invalidArgument }
        guard length > 0 else { return [] }
        let shift = UInt64(geometry.blockShift)
        let first = offset >> shift
        let end = offset > UInt64.max - length ? UInt64.max : (offset + length - 1) >> shift + 1
        // The map whole (its transactionLock), the counts under the allocator's lock.
        return metadata.sharedTransaction(on: inode) {
            let lastBlock = inode.extents.endBlock
            var result: [MappedExtent] = []
            var index = inode.extents.firstIndex(endingAfter: first)
            while index < inode.extents.extents.count, inode.extents.extents[index].logical < end, result.count < limit {
                let extent = inode.extents.extents[index].clipped(from: first, to: end)
                index += 1
                var flags: MappedExtent.Flags = []
                if extent.state == .unwritten { flags.insert(.unwritten) }
                guard extent.state != .delayed else {
                    result.append(MappedExtent(logical: extent.logical << shift, physical: 0, length: extent.length << shift,
                                               flags: extent.logicalEnd == lastBlock ? [.delayed, .last] : .delayed))
                    continue
                }
                var logical = extent.logical
                for piece in metadata.allocatorLock.withLock({ metadata.referenceCounts.pieces(of: extent.physicalRun) }) {
                    var pieceFlags = flags
                    if piece.count > 1 { pieceFlags.insert(.shared) }
                    if logical + piece.run.count == lastBlock { pieceFlags.insert(.last) }
                    let mapped = MappedExtent(logical: logical << shift, physical: piece.run.start << shift,
                                              length: piece.run.count << shift, flags: pieceFlags)
                    if var previous = result.last, previous.flags == pieceFlags.subtracting(.last),
                       previous.logical + previous.length == mapped.logical, previous.physical + previous.length == mapped.physical {
                        previous.length += mapped.length
                        previous.flags = pieceFlags
                        result[result.count - 1] = previous
                    } else {
                        result.append(mapped)
                    }
                    logical += piece.run.count
                }
            }
            return result.count > limit ? Array(result.prefix(limit)) : result
        }
    }
}
