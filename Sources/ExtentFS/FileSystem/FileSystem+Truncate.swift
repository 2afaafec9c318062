import ExtentFSCore
import SystemPackage

/// Size changes. Shrinking is a page-removing operation: it holds the invalidate_lock
/// exclusively from before the pages go until the blocks are unmapped (rule 1). Its changes are
/// the file's alone (its size and map) and lower reference counts and free blocks under the
/// allocator's lock, so they run in a transaction shared on the file: truncates of different
/// files run together and with writes.
extension FileSystem {
    /// A truncate to the current size or below frees every block past the new end of file,
    /// preallocation (fallocate KEEP_SIZE) included, as XFS's does (xfstests generic/092); one
    /// that grows the file keeps them.
    func truncate(_ inode: Inode, to newSize: UInt64) throws {
        guard let space = inode.pages else { throw Errno.invalidArgument }
        inode.lock.lockExclusive()
        defer { inode.lock.unlock() }
        let oldSize = inode.fieldLock.withLock { inode.size }
        guard newSize <= oldSize else {
            metadata.sharedTransaction(on: inode) { inode.size = newSize }
            return
        }
        inode.invalidateLock.lockExclusive()
        defer { inode.invalidateLock.unlock() }

        let blockSize = UInt64(geometry.blockSize)
        let blockEnd = (newSize + blockSize - 1) / blockSize * blockSize
        // The rest of the last block stays allocated: zero it, so bytes past EOF are zero on disk
        // and a later extension reads zeros.
        if blockEnd > newSize { try zeroCached(inode, space, from: newSize, to: min(blockEnd, oldSize)) }
        dropCached(space, from: blockEnd, to: UInt64.max)
        metadata.sharedTransaction(on: inode) {
            unmapBlocks(inode, from: blockEnd / blockSize, to: UInt64.max)
            inode.size = newSize
        }
    }

    /// Removes the cache's pages and units in [from, to), both block-aligned (to may be
    /// UInt64.max). Caller holds the invalidate_lock exclusively, so nothing brings them back
    /// before the blocks change (rule 1).
    func dropCached(_ space: AddressSpace, from: UInt64, to: UInt64) {
        guard from < to else { return }
        let pageSize = UInt64(Page.size)
        let firstWhole = (from + pageSize - 1) / pageSize
        let endWhole = to == UInt64.max ? UInt64.max : to / pageSize
        if firstWhole < endWhole { space.removePages(from: firstWhole, to: endWhole) }
        // Pages only partly in the range exist only when blocks are smaller than pages.
        for index in Set([from / pageSize, to == UInt64.max ? from / pageSize : to / pageSize]) {
            let pageStart = index * pageSize
            let start = max(from, pageStart)
            let end = min(to, pageStart + pageSize)
            guard start < end, start > pageStart || end < pageStart + pageSize, let page = space.find(index) else { continue }
            let firstUnit = Int(start - pageStart) / geometry.unitSize
            let endUnit = Int(end - pageStart) / geometry.unitSize
            page.lock.withLock {
                let wasDirty = page.isDirty
                page.discard(units: Page.unitMask(firstUnit, endUnit - firstUnit), unitSize: geometry.unitSize)
                if wasDirty && !page.isDirty { space.noteDirty(page, becameDirty: false) }
            }
            space.release(page)
        }
        // The pages dropped may have been the file's last dirty ones: then all its data is on
        // disk (or a hole) and its size is durable (Inode.durableSize's invariant), which only
        // writeback used to restore, and writeback has nothing left to write (xfstests
        // generic/033: a file whose dirty data was all zeroed came back with size 0).
        if let inode = metadata.inodes[space.ino], inode.pages === space {
            metadata.sharedTransaction(on: inode) { inode.noteWrittenBack(upTo: 0) }
        }
    }

    /// Zeros [from, to) through the cache. Units whose blocks are mapped become dirty (shared
    /// ones after a copy-on-write reservation, ENOSPC if none can be had); units in holes only
    /// get zeroed memory, never dirtied, so no dirty unit is without space (rule 4).
    /// Caller holds the inode's lock and its invalidate_lock exclusively.
    func zeroCached(_ inode: Inode, _ space: AddressSpace, from: UInt64, to: UInt64) throws {
        guard from < to else { return }
        let shift = UInt64(geometry.blockShift)
        let firstBlock = from >> shift
        let endBlock = (to - 1) >> shift + 1
        let extents = try metadata.sharedTransaction(on: inode) { () -> [FileExtent] in
            let mapped = inode.extents.extents(from: firstBlock, to: endBlock)
            var cursor = firstBlock
            for extent in mapped where extent.state != .delayed {
                guard reserveForDirtying(inode, from: max(cursor, extent.logical), to: extent.logicalEnd) == extent.logicalEnd else {
                    throw Errno.noSpace
                }
                cursor = extent.logicalEnd
            }
            return inode.extents.extents(from: firstBlock, to: endBlock)
        }
        let unitSize = geometry.unitSize
        var position = from
        while position < to {
            let inPage = Int(position % UInt64(Page.size))
            let count = Int(min(UInt64(Page.size - inPage), to - position))
            let (page, created) = space.findOrCreate(position / UInt64(Page.size))
            if !created { page.lock.lock() }
            defer {
                page.lock.unlock()
                space.release(page)
            }
            let firstUnit = inPage / unitSize
            let lastUnit = (inPage + count - 1) / unitSize
            let touched = Page.unitMask(firstUnit, lastUnit - firstUnit + 1)
            try fill(inode, [(page, touched & ~page.uptodate)])
            (page.memory + inPage).initializeMemory(as: UInt8.self, repeating: 0, count: count)
            var mapped: UInt8 = 0
            for unit in firstUnit...lastUnit {
                let block = (page.fileOffset + UInt64(unit * unitSize)) >> shift
                if extents.contains(where: { $0.logical <= block && block < $0.logicalEnd }) { mapped |= 1 << unit }
            }
            if mapped != 0, page.setDirty(units: mapped) { space.noteDirty(page, becameDirty: true) }
            position += UInt64(count)
        }
    }
}
