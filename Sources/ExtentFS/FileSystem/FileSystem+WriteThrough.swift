import ExtentFSCore
import SystemPackage

/// Small random overwrites go straight to the image, past the page cache.
///
/// A write of whole blocks, inside the file, over blocks this file alone maps as written, with
/// none of their pages cached, and not continuing the last write (a stream gathers in the cache
/// and goes out in long direct runs; an O_DIRECT write, written back at once anyway, need not
/// be the start of one), needs nothing of the cache: no allocation, no
/// copy-on-write, and writeback would write the same bytes to the same place later. Written
/// through, it costs one pwrite into the host's cache, as passthrough_ll's write does, instead of
/// a page, a copy and a writeback (docs/PERFORMANCE.md). Durability is as a cached write's: in
/// the host's cache until fsync flushes the image (BackingStore counts the write unflushed).
///
/// Why it is safe: the caller holds the inode's lock exclusively, so no clone, dedupe, punch,
/// truncate or other write of this file runs meanwhile (they take it too), and the blocks stay
/// this file's alone and mapped where they are (nothing is freed, so rule 1 has nothing to
/// guard). Readers are not held off (the invalidate_lock is not taken: a write held behind
/// reads waiting for the disk cost the two-job mix a third of its rate): a read running
/// meanwhile may fill a page of the range with what was there before, as the kernel's buffered
/// reads may beside a direct write, so once the data is written every page of the range found is
/// emptied under its lock (a fill in progress finishes first; such a page is never dirty, since
/// only writes, excluded by the inode's lock, dirty pages), and a read that follows reads the
/// disk again. Blocks whose last sharer let go in a transaction not yet logged
/// (ChangeSet.isRecentlyUnshared) are not written in place here, as writeback does not.
extension FileSystem {
    /// Writes longer than this go through the cache, whose writeback sends runs this long or
    /// longer direct (DirectIO).
    static let maxWriteThroughBytes = DirectIO.minimumBytes

    /// Where a write through would write, as runs contiguous on disk.
    typealias WriteThroughRuns = [(diskOffset: UInt64, count: Int)]

    /// Whether a write of `length` at `offset` has the shape of one written through: whole
    /// pages and blocks, short, not continuing the last write (unless O_DIRECT), no page of the
    /// range cached. Checked before the write's transaction; `inPlaceRuns` decides in it.
    func mayWriteThrough(_ space: AddressSpace, offset: UInt64, length: UInt64, direct: Bool) -> Bool {
        let alignment = UInt64(max(Page.size, geometry.blockSize))
        guard length > 0, length <= UInt64(FileSystem.maxWriteThroughBytes),
              offset % alignment == 0, length % alignment == 0 else { return false }
        let firstPage = offset / UInt64(Page.size)
        return space.indexLock.withLock {
            (direct || space.lastWriteEnd != offset)
                && !space.hasPagesLocked(from: firstPage, to: firstPage + length / UInt64(Page.size))
        }
    }

    /// Where [offset, offset + length) of the file sits on disk, as runs contiguous there, when
    /// every block of it is written and mapped by this file alone (nil otherwise: the write
    /// goes through the cache). Copy-on-write reservations left on those blocks go back, as
    /// writeback's in-place writes give them. In the write's transaction, in place of its
    /// reservation (such blocks need none).
    func inPlaceRuns(_ inode: Inode, offset: UInt64, length: UInt64) -> WriteThroughRuns? {
        let shift = UInt64(geometry.blockShift)
        let end = offset + length
        guard end <= inode.size else { return nil }
        let firstBlock = offset >> shift, endBlock = (end - 1) >> shift + 1
        var runs: WriteThroughRuns = []
        var cursor = firstBlock
        for extent in inode.extents.extents(from: firstBlock, to: endBlock) {
            guard extent.logical <= cursor, extent.state == .written else { return nil }
            let stop = min(extent.logicalEnd, endBlock)
            let physical = extent.physical + cursor - extent.logical
            let inPlace = metadata.noBlockIsShared || metadata.allocatorLock.withLock {
                (physical..<physical + (stop - cursor)).allSatisfy { block in
                    metadata.referenceCounts.count(of: block) <= 1 && !metadata.changes.isRecentlyUnshared(block)
                }
            }
            guard inPlace else { return nil }
            runs.append((physical << shift, Int((stop - cursor) << shift)))
            cursor = stop
        }
        guard cursor == endBlock else { return nil }
        for block in firstBlock..<endBlock where inode.cowReserved.remove(block) != nil {
            metadata.allocatorLock.withLock { metadata.freeSpace.unreserve(1) }
        }
        return runs
    }

    /// Writes `data` at `offset` to `runs` (from `inPlaceRuns`). Caller holds `inode.lock`
    /// exclusively.
    func writeThrough(_ inode: Inode, _ space: AddressSpace, offset: UInt64, _ data: UnsafeRawBufferPointer,
                      to runs: WriteThroughRuns) throws {
        let firstPage = offset / UInt64(Page.size), endPage = firstPage + UInt64(data.count / Page.size)
        pausePoint(.writeThroughBeforeWrite)
        // As writeback checks before each batch: another thread may have shut the volume down
        // since this write began, and nothing reaches the image after that.
        try journal.shutdown.check()
        // A failed write may have changed part of the range too.
        defer { forgetPagesFilledMeanwhile(space, from: firstPage, to: endPage) }
        var written = 0
        do {
            for run in runs {
                try store.write(from: data.baseAddress! + written, count: run.count, at: run.diskOffset)
                written += run.count
            }
        } catch {
            logger.error("write of inode \(inode.ino) failed: \(error)")
            throw Errno.ioError
        }
        EngineCounters.add(engineCounters.writtenThroughBytes, written)
    }

    /// Empties the pages of [first, end) a concurrent read brought in while the range was being
    /// written: they may hold what was there before. Caller holds the inode's lock exclusively.
    private func forgetPagesFilledMeanwhile(_ space: AddressSpace, from first: UInt64, to end: UInt64) {
        for index in first..<end {
            guard let page = space.find(index) else { continue }
            page.lock.withLock {
                if !page.isDirty { page.discard(units: 0xFF, unitSize: geometry.unitSize) }
            }
            space.release(page)
        }
    }
}
