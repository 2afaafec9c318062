import ExtentFSCore
import SystemPackage

/// Buffered writes with delayed allocation.
///
/// Rule 4 (DESIGN.md): before a page unit is dirtied, its block is allocated or reserved (a
/// `.delayed` extent holding a reservation), so ENOSPC comes back from write() and writeback
/// never fails for space. A short write returns what fit; a write that fits nothing is ENOSPC.
extension FileSystem {
    /// `direct` (O_DIRECT): the data is on disk when this returns and the range is not cached.
    /// Takes no privileges from the file (as the kernel's writes of mmap'd pages do not).
    public func write(_ ino: InodeNumber, offset: UInt64, direct: Bool = false, _ data: UnsafeRawBufferPointer) throws -> Int {
        try write(ino, offset: offset, direct: direct, data, by: nil).count
    }

    /// A write by `writer` takes the file's privileges as a write(2) would
    /// (FileSystem+Privileges.swift); nil takes none.
    public func write(_ ino: InodeNumber, offset: UInt64, direct: Bool = false, _ data: UnsafeRawBufferPointer,
                      by writer: Credentials?) throws -> WriteResult {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        let inode = try self.inode(ino)
        guard let space = inode.pages else {
            throw inode.type == .directory ? Errno.isDirectory : Errno.invalidArgument
        }
        guard data.count > 0 else { return WriteResult(count: 0, removedPrivileges: false) }
        guard offset < Superblock.maxFileSize else { throw Errno.fileTooLarge }
        var length = min(UInt64(data.count), Superblock.maxFileSize - offset)

        inode.lock.lockExclusive()
        defer { inode.lock.unlock() }
        try throttle(inode)

        let shift = UInt64(geometry.blockShift)
        let firstBlock = offset >> shift
        let endBlock = (offset + length - 1) >> shift + 1
        var removedPrivileges = false
        let mayWriteThrough = mayWriteThrough(space, offset: offset, length: length, direct: direct)
        var throughRuns: WriteThroughRuns?
        // Shared transactions (Metadata.sharedTransaction): this inode's fields and free space
        // under the allocator's lock; writes to other files run theirs at the same time.
        var securedEnd = try metadata.sharedTransaction(on: inode) {
            // Under the inode lock, which setFlags takes too, before anything changes. An
            // append-only file takes data only at its end: through a mount the kernel writes an
            // O_APPEND descriptor (the only kind open for writing, FileSystem.refuseOpen) at the
            // size it knows, which is ours.
            try refuseIfImmutable(inode)
            if inode.flags.contains(.appendOnly), offset != inode.size { throw Errno.notPermitted }
            // Before any byte changes (FileSystem+Privileges.swift).
            if let writer { removedPrivileges = removePrivileges(inode, changedBy: writer) }
            if mayWriteThrough, let runs = inPlaceRuns(inode, offset: offset, length: length) {
                throughRuns = runs
                return endBlock
            }
            return reserveForDirtying(inode, from: firstBlock, to: endBlock)
        }
        if securedEnd < endBlock, commitToReleaseFrees() {
            securedEnd = metadata.sharedTransaction(on: inode) { reserveForDirtying(inode, from: firstBlock, to: endBlock) }
        }
        if securedEnd < endBlock {
            guard securedEnd > firstBlock else { throw Errno.noSpace }
            length = (securedEnd << shift) - offset
        }

        var done = 0
        if let throughRuns {
            try writeThrough(inode, space, offset: offset, UnsafeRawBufferPointer(rebasing: data[..<Int(length)]), to: throughRuns)
            done = Int(length)
        }
        let unitSize = geometry.unitSize
        while UInt64(done) < length {
            let position = offset + UInt64(done)
            let inPage = Int(position % UInt64(Page.size))
            let count = min(Page.size - inPage, Int(length) - done)
            // A page this write covers whole needs no zeroing first.
            let (page, created) = space.findOrCreate(position / UInt64(Page.size), zeroed: count < Page.size)
            if !created { page.lock.lock() }
            let firstUnit = inPage / unitSize
            let lastUnit = (inPage + count - 1) / unitSize
            var partial: UInt8 = 0
            if inPage % unitSize != 0 { partial |= 1 << firstUnit }
            if (inPage + count) % unitSize != 0 { partial |= 1 << lastUnit }
            partial &= ~page.uptodate
            do {
                if partial != 0 { try fill(inode, [(page, partial)]) }
            } catch {
                page.lock.unlock()
                space.release(page)
                logger.error("read-modify-write of inode \(inode.ino) failed: \(error)")
                if done > 0 { break }
                throw Errno.ioError
            }
            (page.memory + inPage).copyMemory(from: data.baseAddress! + done, byteCount: count)
            let units = Page.unitMask(firstUnit, lastUnit - firstUnit + 1)
            page.setUptodate(units: units)
            if page.setDirty(units: units) { space.noteDirty(page, becameDirty: true) }
            page.lock.unlock()
            space.release(page)
            done += count
        }

        space.indexLock.withLock {
            if space.lastWriteEnd != offset { space.sequentialWritesStart = offset }
            space.lastWriteEnd = offset + UInt64(done)
        }
        metadata.sharedTransaction(on: inode) {
            let end = offset + UInt64(done)
            if end > inode.size { inode.size = end }  // durable once written back (Inode.durableSize)
            let now = Timespec.now
            inode.mtime = now
            inode.ctime = now
        }
        if direct, throughRuns == nil { try finishDirectWrite(inode, space, offset: offset, length: UInt64(done)) }
        return WriteResult(count: done, removedPrivileges: removedPrivileges)
    }

    /// Secures space for dirtying blocks [from, to), in order, as far as space allows: unmapped
    /// blocks become delayed allocations, shared blocks get a copy-on-write reservation. Returns
    /// the block up to which the range is backed. In a transaction, shared on `inode` or not.
    func reserveForDirtying(_ inode: Inode, from: UInt64, to: UInt64) -> UInt64 {
        var cursor = from
        for extent in inode.extents.extents(from: from, to: to) {
            if extent.logical > cursor {
                let granted = reserveHole(inode, start: cursor, count: extent.logical - cursor)
                if granted < extent.logical { return granted }
            }
            if extent.state != .delayed, !metadata.noBlockIsShared {
                let pieces = metadata.allocatorLock.withLock { metadata.referenceCounts.pieces(of: extent.physicalRun) }
                for piece in pieces where piece.count > 1 {
                    let firstLogical = extent.logical + (piece.run.start - extent.physical)
                    for block in firstLogical..<firstLogical + piece.run.count where !inode.cowReserved.contains(block) {
                        guard metadata.allocatorLock.withLock({ metadata.freeSpace.reserve(1) }) else { return block }
                        inode.cowReserved.insert(block)
                    }
                }
            }
            cursor = extent.logicalEnd
        }
        if cursor < to { return reserveHole(inode, start: cursor, count: to - cursor) }
        return to
    }

    /// Reserves as much of a hole as space allows; returns the block where the grant ends.
    private func reserveHole(_ inode: Inode, start: UInt64, count: UInt64) -> UInt64 {
        let grant = metadata.allocatorLock.withLock { () -> UInt64 in
            let grant = min(count, metadata.freeSpace.available)
            if grant > 0 { _ = metadata.freeSpace.reserve(grant) }
            return grant
        }
        if grant > 0 {
            inode.extents.insert(FileExtent(logical: start, length: grant, physical: 0, state: .delayed))
        }
        return start + grant
    }

    /// Keeps dirty pages under the cache's limit: write back this file first (we hold its i_rwsem,
    /// which comes before the invalidate_lock writeback takes), then wait for the flusher.
    private func throttle(_ inode: Inode) throws {
        guard cache.isOverDirtyLimit else { return }
        try writeback(inode)
        var waits = 0
        while cache.isOverDirtyLimit && waits < 50 {
            cache.waitForDirtyBelowLimit(seconds: 0.1)
            waits += 1
        }
    }
}
