#if canImport(Glibc)
import Glibc
#endif

/// The volume's page cache: the memory budget, page memory, dirty accounting and reclaim.
/// `lock` is a leaf: nothing else is taken while it is held.
final class PageCache: @unchecked Sendable {
    let budgetPages: Int
    /// Writers wait (after writing back their own file) while more pages than this are dirty.
    let dirtyLimit: Int
    /// The flusher starts writing back once this many pages are dirty (as the kernel's
    /// dirty_background_ratio does), so that writers seldom reach `dirtyLimit` and wait.
    let backgroundDirtyLimit: Int
    private let lock = Mutex()
    private let dirtyBelowLimit: Condition

    // Guarded by `lock`.
    private var pageCount = 0
    private(set) var dirtyCount = 0
    private var spaces: [InodeNumber: AddressSpace] = [:]
    private var spaceOrder: [InodeNumber] = []
    private var reclaimCursor = 0
    private var spareMemory: [UnsafeMutableRawPointer] = []
    private var slabs: [PageSlab] = []
    /// Called when dirty pages pass the background limit or the limit: wakes the flusher.
    var onDirtyPressure: (() -> Void)?
    /// Test-only (Support/PausePoints.swift).
    var pauseHook: ((PausePoint) -> Void)?

    init(budgetBytes: Int) {
        budgetPages = max(64, budgetBytes / Page.size)
        dirtyLimit = max(16, budgetPages / 2)
        backgroundDirtyLimit = dirtyLimit / 2
        dirtyBelowLimit = Condition(lock)
    }

    /// Every page's memory lives in one of these until the cache goes.
    deinit {
        for slab in slabs { slab.unmap() }
    }

    var cachedPages: Int { lock.withLock { pageCount } }
    var dirtyPages: Int { lock.withLock { dirtyCount } }

    /// Memory for a page: zeroed, or (`zeroed: false`) with whatever it held, for a caller that
    /// fills every unit of it at once (FileSystem.fill writes or zeroes each unit it fills).
    func allocatePageMemory(zeroed: Bool = true) -> UnsafeMutableRawPointer {
        if let memory = lock.withLock({ spareMemory.popLast() }) {
            if zeroed { memory.initializeMemory(as: UInt8.self, repeating: 0, count: Page.size) }
            return memory
        }
        // Fresh slab memory is zero.
        let slab = PageSlab.map(bytes: PageSlab.bytes(forBudgetPages: budgetPages))
        lock.withLock {
            slabs.append(slab)
            // Reversed, so that pops hand out ascending addresses: a file's neighbouring pages
            // are neighbours in memory too (writeback's vectors then join up).
            spareMemory.append(contentsOf: slab.pages.dropFirst().reversed())
        }
        return slab.pages[0]
    }

    /// Page memory goes back to the spare list, never to the kernel before the cache goes:
    /// cached and spare pages together stay near the budget (reclaim keeps the cached ones
    /// under it), and a cache at its budget reuses memory already faulted in.
    func releasePageMemory(_ memory: UnsafeMutableRawPointer) {
        lock.withLock { spareMemory.append(memory) }
    }

    func pageAdded(_ space: AddressSpace, registering: Bool) {
        let over = lock.withLock { () -> Bool in
            pageCount += 1
            if registering, spaces[space.ino] == nil {
                spaces[space.ino] = space
                spaceOrder.append(space.ino)
            }
            return pageCount > budgetPages
        }
        if over { reclaim() }
    }

    func pageRemoved(_ page: Page) {
        lock.withLock { pageCount -= 1 }
        releasePageMemory(page.memory)
    }

    /// Wakes the flusher as dirty pages pass `backgroundDirtyLimit` on the way up.
    func adjustDirty(_ delta: Int) {
        let passedBackgroundLimit = lock.withLock { () -> Bool in
            let before = dirtyCount
            dirtyCount += delta
            if dirtyCount <= dirtyLimit { dirtyBelowLimit.broadcast() }
            return before <= backgroundDirtyLimit && dirtyCount > backgroundDirtyLimit
        }
        if passedBackgroundLimit { onDirtyPressure?() }
    }

    func forget(_ space: AddressSpace) {
        lock.withLock {
            spaces.removeValue(forKey: space.ino)
            spaceOrder.removeAll { $0 == space.ino }
        }
    }

    var isOverDirtyLimit: Bool { lock.withLock { dirtyCount > dirtyLimit } }

    /// Blocks until dirty pages are under the limit or `seconds` pass. The caller holds no page
    /// lock and no invalidate_lock, so the flusher can make progress.
    func waitForDirtyBelowLimit(seconds: Double) {
        onDirtyPressure?()
        lock.withLock {
            if dirtyCount > dirtyLimit { dirtyBelowLimit.wait(seconds: seconds) }
        }
    }

    /// Evicts clean unused pages, round robin over files, until the cache is an eighth below
    /// budget or a full pass finds nothing. Never blocks on a page or an inode: it only
    /// try-locks pages, so any thread may call it whatever it holds, except an indexLock.
    func reclaim() {
        let target = budgetPages - budgetPages / 8
        var idlePasses = 0
        while idlePasses < 2 {
            let (candidates, excess) = lock.withLock { () -> ([AddressSpace], Int) in
                guard pageCount > target, !spaceOrder.isEmpty else { return ([], 0) }
                if reclaimCursor >= spaceOrder.count { reclaimCursor = 0 }
                let order = Array(spaceOrder[reclaimCursor...] + spaceOrder[..<reclaimCursor])
                reclaimCursor += 1
                return (order.compactMap { spaces[$0] }, pageCount - target)
            }
            guard excess > 0 else { return }
            var freed = 0
            for space in candidates where freed < excess {
                let evicted = space.evictClean(limit: excess - freed)
                for page in evicted { pageRemoved(page) }
                freed += evicted.count
            }
            if freed == 0 {
                idlePasses += 1
                if dirtyPages > 0 { onDirtyPressure?() }
            }
        }
    }
}
