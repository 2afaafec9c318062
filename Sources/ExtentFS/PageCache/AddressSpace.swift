/// The cached pages of one file: an index from page number to page.
///
/// `indexLock` is the lock every lookup takes to find a page and take a reference to it, and
/// eviction checks "nobody holds this page" and removes it from the index under the same lock,
/// so no lookup can take a reference between the check and the removal (DESIGN.md rule 5).
final class AddressSpace: @unchecked Sendable {
    let ino: InodeNumber
    unowned let cache: PageCache
    let indexLock = Mutex()

    // Guarded by indexLock.
    private var pages = PageIndex()
    /// What the cache lists this file for (PageCache.list): kept in step with `pages` under
    /// indexLock.
    private var listedCached = false
    private var listedDirty = false
    /// Where the last read ended, to detect sequential reads for readahead.
    var lastReadEnd: UInt64 = 0
    var readaheadPages = 4
    /// The page before which a sequential reader has dropped the clean pages behind it
    /// (FileSystem.dropBehind): each drop starts here rather than at page 0.
    var droppedBehind: UInt64 = 0
    /// Where the last write ended and where the run of writes each starting at the previous
    /// one's end began: a run of `FileSystem.streamingWriteBytes` or more is a stream, whose
    /// pages writeback cleans behind it are dropped (FileSystem.dropWrittenBehind).
    var lastWriteEnd: UInt64 = 0
    var sequentialWritesStart: UInt64 = 0
    /// The page before which the stream's written pages have been dropped: pages a writeback
    /// cleaned while they were near the writer are dropped by a later one.
    var writtenDroppedBehind: UInt64 = 0

    init(ino: InodeNumber, cache: PageCache) {
        self.ino = ino
        self.cache = cache
    }

    var pageCount: Int { indexLock.withLock { pages.count } }

    /// Whether any page of [first, end) is cached.
    func hasPages(from first: UInt64, to end: UInt64) -> Bool {
        indexLock.withLock { hasPagesLocked(from: first, to: end) }
    }

    /// As `hasPages`, for a caller that holds indexLock to decide with the read and write state
    /// it also guards, in one round of the lock.
    func hasPagesLocked(from first: UInt64, to end: UInt64) -> Bool {
        (first..<end).contains { pages[$0] != nil }
    }
    var hasDirtyPages: Bool { indexLock.withLock { pages.dirtyCount > 0 } }

    /// A referenced page if it is cached.
    func find(_ index: UInt64) -> Page? {
        indexLock.withLock {
            guard let page = pages[index] else { return nil }
            page.references += 1
            page.recentlyUsed = true
            return page
        }
    }

    /// The referenced page at `index`, created (zeroed, nothing uptodate, LOCKED) when absent.
    /// `created` tells which: a created page is returned locked so that whoever looks it up next
    /// waits on the page lock until its creator has filled it.
    /// `zeroed: false` leaves a created page's memory as it was, for a caller that fills all of it.
    func findOrCreate(_ index: UInt64, zeroed: Bool = true) -> (page: Page, created: Bool) {
        indexLock.lock()
        if let page = pages[index] {
            page.references += 1
            page.recentlyUsed = true
            indexLock.unlock()
            return (page, false)
        }
        indexLock.unlock()
        let memory = cache.allocatePageMemory(zeroed: zeroed)
        let fresh = Page(index: index, memory: memory)
        fresh.lock.lock()
        fresh.references = 1
        indexLock.lock()
        if let page = pages[index] {
            page.references += 1
            indexLock.unlock()
            fresh.lock.unlock()
            cache.releasePageMemory(memory)
            return (page, false)
        }
        pages.insert(fresh)
        updateListing()
        indexLock.unlock()
        cache.pageAdded()
        return (fresh, true)
    }

    /// Caller holds indexLock.
    private func updateListing() {
        let cached = !pages.isEmpty, dirty = pages.dirtyCount > 0
        guard cached != listedCached || dirty != listedDirty else { return }
        listedCached = cached
        listedDirty = dirty
        cache.list(self, cached: cached, dirty: dirty)
    }

    func release(_ page: Page) {
        indexLock.withLock { page.references -= 1 }
    }

    /// Caller holds the page lock and has just made it dirty or clean.
    func noteDirty(_ page: Page, becameDirty: Bool) {
        indexLock.withLock {
            pages.setDirty(page.index, becameDirty)
            updateListing()
        }
        cache.adjustDirty(becameDirty ? 1 : -1)
    }

    func dirtyPageIndices() -> [UInt64] {
        indexLock.withLock { pages.dirtyIndices() }
    }

    /// Removes the pages at or after `firstIndex` (all with `firstIndex` 0), waiting for each
    /// page's lock (writeback and fill hold it). The caller holds the inode's invalidate_lock
    /// exclusively, so no new page can appear in the range meanwhile (rule 1).
    func removePages(from firstIndex: UInt64, to endIndex: UInt64 = UInt64.max) {
        let victims: [Page] = indexLock.withLock {
            pages.pages(from: firstIndex, to: endIndex).sorted { $0.index < $1.index }
        }
        for page in victims {
            page.lock.lock()
            let wasDirty = page.isDirty
            // Reclaim may have evicted it since the snapshot (it takes no invalidate_lock): then
            // it is not ours to free.
            let stillIndexed = indexLock.withLock { () -> Bool in
                guard pages[page.index] === page else { return false }
                pages.remove(page.index)
                updateListing()
                return true
            }
            page.lock.unlock()
            guard stillIndexed else { continue }
            if wasDirty { cache.adjustDirty(-1) }
            waitUntilUnreferenced(page)
            cache.pageRemoved(page)
        }
    }

    /// Someone may still hold a reference taken before removal (a writeback that found the page
    /// and is waiting for its lock); the memory is returned only after they let go.
    private func waitUntilUnreferenced(_ page: Page) {
        while indexLock.withLock({ page.references > 0 }) { sched_yield() }
    }

    /// Evicts the clean, unreferenced, unlocked pages of [first, end), used lately or not (a
    /// sequential reader's drop-behind). The check and the removal happen under indexLock
    /// (rule 5). Returns the evicted pages.
    func evictClean(from first: UInt64, to end: UInt64) -> [Page] {
        indexLock.withLock {
            var evicted: [Page] = []
            defer { updateListing() }
            for page in pages.pages(from: first, to: end) where removeIfUnused(page) {
                evicted.append(page)
            }
            return evicted
        }
    }

    /// Evicts clean, unreferenced, unlocked pages not used since the last pass (second chance).
    /// The check and the removal happen under indexLock (rule 5). Returns the evicted pages.
    func evictClean(limit: Int) -> [Page] {
        indexLock.withLock {
            var evicted: [Page] = []
            defer { updateListing() }
            for chunk in pages.allChunks {
                for case let page? in chunk.slots {
                    if evicted.count >= limit { return evicted }
                    if page.recentlyUsed {
                        page.recentlyUsed = false
                        continue
                    }
                    if removeIfUnused(page) { evicted.append(page) }
                }
            }
            return evicted
        }
    }

    /// Removes `page` from the index when it is clean, unreferenced and unlocked (nobody can
    /// take a reference meanwhile: the caller holds indexLock, rule 5). The caller updates the
    /// listing and gives the memory back.
    private func removeIfUnused(_ page: Page) -> Bool {
        guard page.references == 0, page.lock.tryLock() else { return false }
        defer { page.lock.unlock() }
        guard !page.isDirty else { return false }
        cache.pauseHook?(.evictAfterUnusedCheck)
        pages.remove(page.index)
        return true
    }
}

#if canImport(Glibc)
import ExtentFSCore
import Glibc
#endif
