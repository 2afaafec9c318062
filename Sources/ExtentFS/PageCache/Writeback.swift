import ExtentFSCore
import SystemPackage

/// Writeback: dirty units go to disk, exactly those (rule 3).
///
/// A unit over a written block is written in place. A block that is delayed gets its physical
/// blocks now, mapped as *unwritten*; the whole block is written (absent pages as zeros) and only
/// then converted to written, so a checkpoint taken meanwhile maps it as reading zeros, never as
/// holding whatever the block held before. Pages stay locked from mapping until their data is on
/// disk. Caller must not hold the invalidate_lock; writeback takes it shared (it maps blocks).
///
/// Nothing is written once the volume is shut down (as XFS's writeback maps no block then): the
/// pages stay dirty and writeback fails with EIO. A shutdown can come from inside a writeback
/// (the log forced for a recently unshared block) or from another file's commit, so the check is
/// made again before each batch is written, not only when writeback begins.
extension FileSystem {
    private static let batchBytes = 1 << 20
    /// The most blocks one delayed allocation converts at once.
    static let maxDelayedAllocation: UInt64 = 1 << 16

    func writebackAll() throws {
        // The cache lists the files with dirty pages: O(those), however many files there are.
        let spaces = cache.spacesWithDirtyPages
        // The table's own lock suffices: an inode with dirty pages is never let go.
        let dirty = spaces.compactMap { space in metadata.inodes[space.ino].flatMap { $0.pages === space ? $0 : nil } }
        var firstError: Error?
        for inode in dirty.sorted(by: { $0.ino < $1.ino }) {
            do { try writeback(inode) } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }

    func writeback(_ inode: Inode) throws {
        guard let space = inode.pages, space.hasDirtyPages else { return }
        try journal.shutdown.check()
        inode.invalidateLock.lockShared()
        defer { inode.invalidateLock.unlock() }
        var batch = WritebackBatch()
        let pagesPerGroup = UInt64(geometry.pagesPerBlock)
        var previousGroup: UInt64?
        do {
            for index in space.dirtyPageIndices() {
                let group = index / pagesPerGroup
                if group == previousGroup { continue }
                previousGroup = group
                try writeGroup(inode, space, firstPage: group * pagesPerGroup, into: &batch)
                if batch.runs.totalBytes >= FileSystem.batchBytes { try flush(&batch, inode, space) }
            }
            try flush(&batch, inode, space)
        } catch {
            if !batch.cowRemaps.isEmpty {
                metadata.transaction { for remap in batch.cowRemaps { metadata.freeSpace.free(BlockRun(start: remap.newPhysical, count: 1)) } }
            }
            batch.abandon(space)
            metadata.sharedTransaction(on: inode) { inode.writebackFailed = true }
            engineCounters.writebackErrors.wrappingAdd(1, ordering: .relaxed)
            logger.error("writeback of inode \(inode.ino) failed: \(error)")
            throw Errno.ioError
        }
    }

    /// Adds one group (a page, or the pages of one block when blocks are larger) to the batch.
    private func writeGroup(_ inode: Inode, _ space: AddressSpace, firstPage: UInt64, into batch: inout WritebackBatch) throws {
        let pageCount = geometry.pagesPerBlock
        var pages: [Page?] = []
        for offset in 0..<UInt64(pageCount) {
            let page = space.find(firstPage + offset)
            page?.lock.lock()
            pages.append(page)
        }
        let present = pages.compactMap { $0 }
        let dirtyMasks = present.map { $0.dirty }
        guard dirtyMasks.contains(where: { $0 != 0 }) else {
            for page in present {
                page.lock.unlock()
                space.release(page)
            }
            return
        }
        batch.groups.append(WritebackBatch.Group(pages: present, cleaned: dirtyMasks))

        let shift = UInt64(geometry.blockShift)
        let groupOffset = firstPage * UInt64(Page.size)
        let firstBlock = groupOffset >> shift
        let endBlock = (groupOffset + UInt64(pageCount * Page.size) - 1) >> shift + 1
        var extents = inode.fieldLock.withLock { inode.extents.extents(from: firstBlock, to: endBlock) }
        if extents.contains(where: { $0.state == .delayed }) {
            try allocateDelayed(inode, from: firstBlock, to: endBlock)
            extents = inode.fieldLock.withLock { inode.extents.extents(from: firstBlock, to: endBlock) }
        }
        for block in firstBlock..<endBlock where blockIsDirty(block, pages: pages, firstPage: firstPage) {
            guard let extent = extents.first(where: { $0.logical <= block && block < $0.logicalEnd }) else {
                preconditionFailure("dirty data in unmapped block \(block) of inode \(inode.ino)")
            }
            let physical = extent.physical + block - extent.logical
            // nil: its last sharer let go in a transaction not yet logged, and the durable
            // metadata still maps it in another file: written in place only once that is logged.
            var decision = metadata.sharedTransaction(on: inode) { sharingDecision(inode, block: block, physical: physical) }
            while decision == nil {
                try journal.force()
                decision = metadata.sharedTransaction(on: inode) { sharingDecision(inode, block: block, physical: physical) }
            }
            let shared = decision!
            if shared {
                // Written or unwritten alike: another file maps this block, so it is never written.
                try copyOnWrite(inode, block: block, from: physical, oldIsWritten: extent.state == .written,
                                pages: pages, firstPage: firstPage, into: &batch)
            } else if extent.state == .written {
                appendDirtyUnits(of: block, at: physical << shift, pages: pages, into: &batch)
            } else {
                appendWholeBlock(block, at: physical << shift, pages: pages, firstPage: firstPage, into: &batch)
                batch.conversions.append(block)
            }
        }
    }

    /// Whether `block` (at `physical`) is shared, so copied on write; nil when it may be written
    /// in place only after the log is forced (see ChangeSet.unshared). A block written in place
    /// gives back its copy-on-write reservation. In a transaction, shared on `inode` or not.
    private func sharingDecision(_ inode: Inode, block: UInt64, physical: UInt64) -> Bool? {
        // One hold: a truncate of another file sharing the block lowers its count and notes it
        // unshared in one hold of its own (ReferenceCounts).
        let (shared, recentlyUnshared) = metadata.noBlockIsShared ? (false, false) : metadata.allocatorLock.withLock {
            (metadata.referenceCounts.count(of: physical) > 1, metadata.changes.isRecentlyUnshared(physical))
        }
        if shared { return true }
        if recentlyUnshared { return nil }
        if inode.cowReserved.remove(block) != nil { metadata.allocatorLock.withLock { metadata.freeSpace.unreserve(1) } }
        return false
    }

    /// In place: only the dirty units of `block`.
    private func appendDirtyUnits(of block: UInt64, at blockDisk: UInt64, pages: [Page?], into batch: inout WritebackBatch) {
        let shift = UInt64(geometry.blockShift)
        let unitSize = geometry.unitSize
        for page in pages {
            guard let page, page.dirty != 0 else { continue }
            for unit in 0..<geometry.unitsPerPage where page.dirty & (1 << unit) != 0 {
                let fileOffset = page.fileOffset + UInt64(unit * unitSize)
                guard fileOffset >> shift == block else { continue }
                let diskOffset = blockDisk + (fileOffset & (UInt64(geometry.blockSize) - 1))
                batch.runs.append(diskOffset: diskOffset, memory: page.memory + unit * unitSize, length: unitSize)
            }
        }
    }

    /// A block that holds no data on disk yet: all of it, absent pages as zeros.
    private func appendWholeBlock(_ block: UInt64, at blockDisk: UInt64, pages: [Page?], firstPage: UInt64, into batch: inout WritebackBatch) {
        let blockOffset = block << UInt64(geometry.blockShift)
        var written = 0
        while written < geometry.blockSize {
            let fileOffset = blockOffset + UInt64(written)
            let slot = Int(fileOffset / UInt64(Page.size) - firstPage)
            let inPage = Int(fileOffset % UInt64(Page.size))
            let length = min(geometry.blockSize - written, Page.size - inPage)
            let memory = pages[slot].map { $0.memory + inPage } ?? ZeroPage.memory
            batch.runs.append(diskOffset: blockDisk + UInt64(written), memory: memory, length: length)
            written += length
        }
    }

    /// A shared block: its new contents go to a new block, which replaces it in this file's map
    /// after the write; the old block loses a reference. The space comes from the reservation
    /// taken when the block was dirtied.
    private func copyOnWrite(_ inode: Inode, block: UInt64, from oldPhysical: UInt64, oldIsWritten: Bool, pages: [Page?],
                             firstPage: UInt64, into batch: inout WritebackBatch) throws {
        let newPhysical = try metadata.sharedTransaction(on: inode) { () -> UInt64 in
            let reserved = inode.cowReserved.remove(block) != nil
            return try metadata.allocatorLock.withLock {
                if reserved { metadata.freeSpace.unreserve(1) }
                guard metadata.freeSpace.freeBlocks > metadata.freeSpace.reserved,
                      let run = metadata.freeSpace.allocate(1, near: oldPhysical + 1, mappedNow: false).first else {
                    throw ExtentFSError("no free block for copy-on-write", errno: .noSpace)
                }
                return run.start
            }
        }
        batch.cowRemaps.append(WritebackBatch.Remap(block: block, newPhysical: newPhysical))
        let shift = UInt64(geometry.blockShift)
        if geometry.blockSize <= Page.size {
            // The block is one unit, dirty and so wholly uptodate.
            appendDirtyUnits(of: block, at: newPhysical << shift, pages: pages, into: &batch)
            return
        }
        // The block spans pages: old contents (zeros if it was unwritten) under what the cache holds.
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: geometry.blockSize, alignment: Page.size)
        batch.temporaries.append(buffer)
        if oldIsWritten {
            try store.read(into: buffer, count: geometry.blockSize, at: oldPhysical << shift)
        } else {
            buffer.initializeMemory(as: UInt8.self, repeating: 0, count: geometry.blockSize)
        }
        for (slot, page) in pages.enumerated() {
            guard let page else { continue }
            for unit in 0..<geometry.unitsPerPage where page.uptodate & (1 << unit) != 0 {
                (buffer + slot * Page.size + unit * geometry.unitSize)
                    .copyMemory(from: page.memory + unit * geometry.unitSize, byteCount: geometry.unitSize)
            }
        }
        batch.runs.append(diskOffset: newPhysical << shift, memory: buffer, length: geometry.blockSize)
    }

    /// Whether any unit of `block` is dirty in the group's pages (locked by the caller).
    private func blockIsDirty(_ block: UInt64, pages: [Page?], firstPage: UInt64) -> Bool {
        let shift = UInt64(geometry.blockShift)
        for page in pages {
            guard let page, page.dirty != 0 else { continue }
            for unit in 0..<geometry.unitsPerPage where page.dirty & (1 << unit) != 0 {
                if (page.fileOffset + UInt64(unit * geometry.unitSize)) >> shift == block { return true }
            }
        }
        return false
    }

    /// Gives the delayed extents that reach into [firstBlock, endBlock) physical blocks, mapped
    /// unwritten, next to the file's previous extent when possible; their reservation becomes
    /// the allocation. The whole delayed extent, not just the group's part, so the file's blocks
    /// come out contiguous (as XFS converts whole delalloc extents); the blocks past the group
    /// stay unwritten until their own pages are written, safe at any crash.
    ///
    /// Chosen and converted in one transaction: another writeback of the same file (a group in
    /// the same delayed extent) may convert it first, and converting it again would unreserve
    /// its blocks twice and map the range a second time. Shared on `inode`: writebacks and writes
    /// of other files run theirs meanwhile.
    private func allocateDelayed(_ inode: Inode, from firstBlock: UInt64, to endBlock: UInt64) throws {
        try metadata.sharedTransaction(on: inode) {
            let delayed = inode.extents.extents(from: firstBlock, to: endBlock).filter { $0.state == .delayed }.map { extent -> FileExtent in
                guard case .mapped(let whole) = inode.extents.lookup(extent.logical) else { return extent }
                return whole.clipped(from: whole.logical, to: whole.logical + min(whole.length, FileSystem.maxDelayedAllocation))
            }
            for extent in delayed {
                var hint: UInt64 = 0
                if extent.logical > 0, case .mapped(let previous) = inode.extents.lookup(extent.logical - 1), previous.state != .delayed {
                    hint = previous.physical + 1
                }
                let runs = try metadata.allocatorLock.withLock { () -> [BlockRun] in
                    guard metadata.freeSpace.freeBlocks >= extent.length else {
                        // Only a checkpoint that outgrew its reserve can get here; the data stays
                        // dirty in memory and the next writeback tries again.
                        throw ExtentFSError("no free blocks to back a reservation", errno: .noSpace)
                    }
                    metadata.freeSpace.unreserve(extent.length)
                    return metadata.freeSpace.allocate(extent.length, near: hint)
                }
                var logical = extent.logical
                for run in runs {
                    inode.extents.replace(with: FileExtent(logical: logical, length: run.count, physical: run.start, state: .unwritten))
                    logical += run.count
                }
            }
        }
    }

    /// Writes the batch, converts its new blocks to written, cleans and unlocks its pages.
    private func flush(_ batch: inout WritebackBatch, _ inode: Inode, _ space: AddressSpace) throws {
        guard !batch.groups.isEmpty else { return }
        pausePoint(.writebackBeforeWrite)
        try journal.shutdown.check()
        try batch.runs.write(to: store)
        EngineCounters.add(engineCounters.writtenBackBytes, batch.runs.totalBytes)
        if !batch.conversions.isEmpty || !batch.cowRemaps.isEmpty {
            // Remaps change reference counts, which only exclusive transactions do.
            let conversions = batch.conversions
            let convert = {
                for block in conversions {
                    if case .mapped(let extent) = inode.extents.lookup(block), extent.state == .unwritten {
                        inode.extents.replace(with: FileExtent(logical: block, length: 1, physical: extent.physical, state: .written))
                    }
                }
            }
            // Remaps lower the old blocks' counts, under the allocator's lock (ReferenceCounts).
            metadata.sharedTransaction(on: inode) {
                convert()
                for remap in batch.cowRemaps {
                    metadata.allocatorLock.withLock { metadata.freeSpace.noteMapped(BlockRun(start: remap.newPhysical, count: 1)) }
                    releaseExtents(inode.extents.replace(with: FileExtent(logical: remap.block, length: 1, physical: remap.newPhysical, state: .written)))
                }
            }
            batch.cowRemaps = []
        }
        let writtenEnd = batch.groups.map { ($0.pages.last?.fileOffset ?? 0) + UInt64(Page.size) }.max() ?? 0
        for group in batch.groups {
            for (page, mask) in zip(group.pages, group.cleaned) {
                if page.clearDirty(units: mask) { space.noteDirty(page, becameDirty: false) }
                page.lock.unlock()
                space.release(page)
            }
        }
        let cleanedFrom = batch.groups.first?.pages.first?.index ?? 0
        dropWrittenBehind(space, cleaned: cleanedFrom..<writtenEnd / UInt64(Page.size))
        metadata.sharedTransaction(on: inode) { inode.noteWrittenBack(upTo: writtenEnd) }
        batch.freeTemporaries()
        batch = WritebackBatch()
    }
}

extension FileSystem {
    /// A sequential write of at least this much is a stream (dropWrittenBehind).
    static let streamingWriteBytes: UInt64 = 4 << 20

    /// Pages a streaming writer left behind it, once written back, are dropped, as a streaming
    /// reader's are (FileSystem.dropBehind): the kernel's page cache keeps what was written (FUSE
    /// writes go through it), so ours would only hold a second copy, and a file written whole
    /// would take the cache's memory one fresh page at a time (first touch of slab memory was a
    /// fifth of a sequential write's samples) and push out other files' pages. Pages within a
    /// readahead window of the writer's position stay (writes of one stream can arrive out of
    /// order), and so do pages dirtied again, locked or referenced meanwhile.
    func dropWrittenBehind(_ space: AddressSpace, cleaned: Range<UInt64>) {
        let keep = UInt64(FileSystem.maxReadaheadPages)
        let range: Range<UInt64>? = space.indexLock.withLock {
            guard space.lastWriteEnd >= space.sequentialWritesStart + FileSystem.streamingWriteBytes else { return nil }
            let writerPage = space.lastWriteEnd / UInt64(Page.size)
            guard writerPage > keep else { return nil }
            let end = min(cleaned.upperBound, writerPage - keep)
            // The pages an earlier writeback cleaned within the window then lie between the mark
            // and what this one cleaned (at most a window apart): they go now.
            let mark = space.writtenDroppedBehind
            let start = mark < cleaned.lowerBound && cleaned.lowerBound - mark <= keep ? mark : cleaned.lowerBound
            space.writtenDroppedBehind = end
            return start < end ? start..<end : nil
        }
        guard let range else { return }
        for evicted in space.evictClean(from: range.lowerBound, to: range.upperBound) { cache.pageRemoved(evicted) }
    }
}

/// Pages locked for writeback, the disk runs holding their data, and the blocks to convert.
struct WritebackBatch {
    struct Group {
        var pages: [Page]
        /// The dirty units seen when the group was mapped: the units this writeback cleans.
        var cleaned: [UInt8]
    }

    /// A copy-on-write: `block` moves to `newPhysical` once the data is written.
    struct Remap {
        var block: UInt64
        var newPhysical: UInt64
    }

    var groups: [Group] = []
    var runs = DiskRuns()
    var conversions: [UInt64] = []
    var cowRemaps: [Remap] = []
    /// Block images built for copy-on-write of blocks larger than a page; freed with the batch.
    var temporaries: [UnsafeMutableRawPointer] = []

    mutating func freeTemporaries() {
        for buffer in temporaries { buffer.deallocate() }
        temporaries = []
    }

    /// After a failed write: the pages stay dirty, are unlocked and released.
    mutating func abandon(_ space: AddressSpace) {
        freeTemporaries()
        for group in groups {
            for page in group.pages {
                page.lock.unlock()
                space.release(page)
            }
        }
        self = WritebackBatch()
    }
}
