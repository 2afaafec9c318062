import ExtentFSCore
import SystemPackage

/// Buffered reads: page-cache fill from the extent map, readahead on sequential reads; random
/// reads of pages not cached go around the cache (FileSystem+UncachedRead.swift).
///
/// Rule 1 (DESIGN.md): the invalidate_lock is held shared from before pages are added or blocks
/// mapped until the reply has been handed over, so a punch or truncate (exclusive) can never
/// drop pages, free their blocks and then have a reader bring back a page with the old data.
extension FileSystem {
    static let maxReadaheadPages = 256

    /// `direct` (O_DIRECT): the cache is bypassed coherently (FileSystem+DirectIO.swift).
    /// `body` gets a copy of the bytes in one buffer, once no lock is held, so it may call the
    /// engine (copy_file_range reads one file and writes another in it); see `readSegments`
    /// for the cached pages themselves.
    public func read(_ ino: InodeNumber, offset: UInt64, count: Int, direct: Bool = false,
                     _ body: (UnsafeRawBufferPointer) -> Void) throws {
        var copy = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        defer { copy.deallocate() }
        try readSegments(ino, offset: offset, count: count, direct: direct) { segments in
            let length = segments.reduce(0) { $0 + $1.count }
            guard length > 0 else { return }
            copy = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 16)
            var copied = 0
            for segment in segments {
                UnsafeMutableRawBufferPointer(rebasing: copy[copied..<copied + segment.count]).copyMemory(from: segment)
                copied += segment.count
            }
        }
        body(UnsafeRawBufferPointer(copy))
    }

    /// Reads as `read` does, handing `body` the bytes in order as segments of the cached pages
    /// themselves (no copy: the adapter replies with them as an iovec). The pages are locked and
    /// the invalidate_lock held while `body` runs, so nothing changes them under the reply:
    /// `body` must not call the engine. Empty when there is nothing to read.
    public func readSegments(_ ino: InodeNumber, offset: UInt64, count: Int, direct: Bool = false,
                             _ body: (UnsafeBufferPointer<UnsafeRawBufferPointer>) -> Void) throws {
        try journal.shutdown.check()
        let inode = try self.inode(ino)
        guard let space = inode.pages else {
            throw inode.type == .directory ? Errno.isDirectory : Errno.invalidArgument
        }
        // Writeback takes the invalidate_lock itself, so a direct read's comes first.
        if direct { try writeback(inode) }
        inode.invalidateLock.lockShared()
        defer { inode.invalidateLock.unlock() }
        let size = inode.fieldLock.withLock { inode.size }
        guard count > 0, offset < size else { return body(UnsafeBufferPointer(start: nil, count: 0)) }
        let end = min(offset + UInt64(count), size)
        let firstPage = offset / UInt64(Page.size)
        let lastPage = (end - 1) / UInt64(Page.size)
        let (window, aroundCache) = direct ? (0, true)
            : readaheadWindow(space, offset: offset, end: end, pages: firstPage...lastPage)
        if aroundCache {
            if !direct { EngineCounters.add(engineCounters.pageCacheMisses, Int(lastPage - firstPage + 1)) }
            return try readBypassingCache(inode, offset: offset, end: end) { bytes in
                withUnsafePointer(to: bytes) { body(UnsafeBufferPointer(start: $0, count: 1)) }
            }
        }
        let readaheadEnd = min(lastPage + UInt64(window), (size - 1) / UInt64(Page.size))
        let streaming = window == FileSystem.maxReadaheadPages
        // After the pages' references are gone (defers run last to first).
        defer { if streaming { dropBehind(space, before: firstPage) } }
        let pages = try uptodatePages(inode, space, firstPage...lastPage, readaheadTo: readaheadEnd)
        defer { for page in pages { space.release(page) } }

        // In ascending order, as every path that locks several pages of a file does.
        for page in pages { page.lock.lock() }
        defer { for page in pages { page.lock.unlock() } }
        withUnsafeTemporaryAllocation(of: UnsafeRawBufferPointer.self, capacity: pages.count) { segments in
            for (slot, page) in pages.enumerated() {
                let start = max(offset, page.fileOffset)
                let stop = min(end, page.fileOffset + UInt64(Page.size))
                segments.initializeElement(at: slot, to: UnsafeRawBufferPointer(start: page.memory + Int(start - page.fileOffset),
                                                                                 count: Int(stop - start)))
            }
            body(UnsafeBufferPointer(segments))
        }
    }

    /// The readahead window in pages: grows while reads are sequential, 0 for a random read; at
    /// its largest the reader streams. And whether the read goes around the cache: it is random
    /// and none of `pages` is cached (FileSystem+UncachedRead.swift). A page created after the
    /// check belongs to a write that runs concurrently with this read; either order is a valid
    /// answer.
    private func readaheadWindow(_ space: AddressSpace, offset: UInt64, end: UInt64,
                                 pages: ClosedRange<UInt64>) -> (pages: Int, aroundCache: Bool) {
        // A read starting where the last ended doubles the window.
        space.indexLock.withLock {
            let sequential = space.lastReadEnd == offset
            space.readaheadPages = sequential ? min(max(space.readaheadPages * 2, 4), FileSystem.maxReadaheadPages) : 0
            space.lastReadEnd = end
            let window = space.readaheadPages
            return (window, window == 0 && !space.hasPagesLocked(from: pages.lowerBound, to: pages.upperBound + 1))
        }
    }

    /// A streaming reader drops the clean pages more than a readahead window behind it. The
    /// kernel's page cache (keep_cache) answers a re-read of them, so ours would only hold a
    /// second copy: a file read whole would fill the cache with pages nobody asks for, each in
    /// fresh memory (zeroing it was a fifth of a cold sequential read's time), and push out
    /// other files' pages. Dirty, locked and referenced pages stay; the pages just read and the
    /// window ahead are never touched.
    private func dropBehind(_ space: AddressSpace, before page: UInt64) {
        let keep = UInt64(FileSystem.maxReadaheadPages)
        guard page > keep else { return }
        let end = page - keep
        let start: UInt64? = space.indexLock.withLock {
            // Behind the mark: the reader started over, so drop from the start again.
            let from = space.droppedBehind <= end ? space.droppedBehind : 0
            space.droppedBehind = end
            return from < end ? from : nil
        }
        guard let start else { return }
        for evicted in space.evictClean(from: start, to: end) { cache.pageRemoved(evicted) }
    }

    /// Referenced pages for `range`, uptodate where the file has data; pages past the range up to
    /// `readaheadTo` are created and filled too when absent. Caller holds the invalidate_lock.
    func uptodatePages(_ inode: Inode, _ space: AddressSpace, _ range: ClosedRange<UInt64>, readaheadTo: UInt64) throws -> [Page] {
        let allUnits = Page.unitMask(0, geometry.unitsPerPage)
        var pages: [Page] = []
        var readahead: [Page] = []
        var toFill: [(Page, UInt8)] = []
        var hits = 0
        pages.reserveCapacity(range.count)
        for index in range.lowerBound...max(range.upperBound, readaheadTo) {
            // A created page is filled whole, so its memory need not be zeroed first.
            let (page, created) = space.findOrCreate(index, zeroed: false)
            if index > range.upperBound {
                if created {
                    toFill.append((page, allUnits))
                    readahead.append(page)
                } else {
                    space.release(page)
                }
                continue
            }
            pages.append(page)
            if created {
                toFill.append((page, allUnits))
            } else {
                page.lock.lock()
                if page.isUptodate(units: allUnits) {
                    page.lock.unlock()
                    hits += 1
                } else {
                    toFill.append((page, allUnits & ~page.uptodate))
                }
            }
        }
        EngineCounters.add(engineCounters.pageCacheHits, hits)
        EngineCounters.add(engineCounters.pageCacheMisses, pages.count - hits)
        defer {
            for (page, _) in toFill { page.lock.unlock() }
            for page in readahead { space.release(page) }
        }
        do {
            if !toFill.isEmpty { pausePoint(.readBeforeFill) }
            try fill(inode, toFill)
        } catch {
            for page in pages { space.release(page) }
            logger.error("read of inode \(inode.ino) failed: \(error)")
            throw Errno.ioError
        }
        return pages
    }

    /// Reads the given units of locked pages from disk (zeros for holes, unwritten and delayed
    /// blocks: written here, so the memory of a unit being filled may hold anything) and marks
    /// them uptodate. On failure the units are zero again (Page's invariant). Caller holds the
    /// pages' locks and the invalidate_lock.
    func fill(_ inode: Inode, _ pages: [(Page, UInt8)]) throws {
        guard let firstPage = pages.first?.0, let lastPage = pages.last?.0 else { return }
        let shift = UInt64(geometry.blockShift)
        let firstBlock = firstPage.fileOffset >> shift
        let endBlock = (lastPage.fileOffset + UInt64(Page.size) - 1) >> shift + 1
        // No reuse barrier (Journal.reuseBarrier) needed: copy-on-write writeback locks every
        // cached page of a block before it remaps the block, so the locked pages keep these
        // blocks mapped until they are read (BlockReuseTests).
        let extents = inode.fieldLock.withLock { inode.extents.extents(from: firstBlock, to: endBlock) }
        var runs = DiskRuns()
        var cursor = 0
        let unitSize = geometry.unitSize
        for (page, mask) in pages {
            for unit in 0..<geometry.unitsPerPage where mask & (1 << unit) != 0 {
                let fileOffset = page.fileOffset + UInt64(unit * unitSize)
                let block = fileOffset >> shift
                while cursor < extents.count, extents[cursor].logicalEnd <= block { cursor += 1 }
                guard cursor < extents.count, extents[cursor].logical <= block, extents[cursor].state == .written else {
                    (page.memory + unit * unitSize).initializeMemory(as: UInt8.self, repeating: 0, count: unitSize)
                    continue
                }
                let extent = extents[cursor]
                let diskOffset = ((extent.physical + block - extent.logical) << shift) + (fileOffset & (UInt64(geometry.blockSize) - 1))
                runs.append(diskOffset: diskOffset, memory: page.memory + unit * unitSize, length: unitSize)
            }
        }
        pausePoint(.readAfterMapping)
        do {
            try runs.read(from: store)
        } catch {
            for (page, mask) in pages {
                for unit in 0..<geometry.unitsPerPage where mask & (1 << unit) != 0 {
                    (page.memory + unit * unitSize).initializeMemory(as: UInt8.self, repeating: 0, count: unitSize)
                }
            }
            throw error
        }
        for (page, mask) in pages { page.setUptodate(units: mask) }
    }
}
