import SystemPackage

/// Size changes. Shrinking is a page-removing operation: it holds the invalidate_lock
/// exclusively from before the pages go until the blocks are unmapped (rule 1).
extension FileSystem {
    func truncate(_ inode: Inode, to newSize: UInt64) throws {
        guard let space = inode.pages else { throw Errno.invalidArgument }
        inode.lock.lockExclusive()
        defer { inode.lock.unlock() }
        let oldSize = metadata.withLock { inode.size }
        guard newSize < oldSize else {
            metadata.transaction { inode.size = newSize }
            return
        }
        inode.invalidateLock.lockExclusive()
        defer { inode.invalidateLock.unlock() }

        let blockSize = UInt64(geometry.blockSize)
        let blockEnd = (newSize + blockSize - 1) / blockSize * blockSize
        // The rest of the last block stays allocated: zero it, so bytes past EOF are zero on disk
        // and a later extension reads zeros.
        if blockEnd > newSize { try zeroCached(inode, space, from: newSize, to: min(blockEnd, oldSize)) }
        let pageSize = UInt64(Page.size)
        space.removePages(from: (blockEnd + pageSize - 1) / pageSize)
        if blockEnd % pageSize != 0, let page = space.find(blockEnd / pageSize) {
            let firstGone = Int(blockEnd % pageSize) / geometry.unitSize
            page.lock.withLock {
                let wasDirty = page.isDirty
                page.discard(units: Page.unitMask(firstGone, geometry.unitsPerPage - firstGone), unitSize: geometry.unitSize)
                if wasDirty && !page.isDirty { space.noteDirty(page, becameDirty: false) }
            }
            space.release(page)
        }
        metadata.transaction {
            releaseExtents(inode.extents.remove(from: blockEnd / blockSize, to: UInt64.max))
            inode.size = newSize
        }
    }

    /// Zeros [from, to) through the cache. Units whose blocks are mapped become dirty (they own
    /// space already); units in holes only get zeroed memory, never dirtied, so no dirty unit is
    /// without space (rule 4). Caller holds the inode's lock and its invalidate_lock exclusively.
    func zeroCached(_ inode: Inode, _ space: AddressSpace, from: UInt64, to: UInt64) throws {
        guard from < to else { return }
        let shift = UInt64(geometry.blockShift)
        let extents = metadata.withLock { inode.extents.extents(from: from >> shift, to: (to - 1) >> shift + 1) }
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
