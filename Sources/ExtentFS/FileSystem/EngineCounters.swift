import Synchronization

/// What the engine has done since mount, for `extentfs stats`: counted where it happens with
/// relaxed atomic adds (no lock, no ordering: each counter is read on its own, and a reader may
/// see one a little ahead of another). Counters only grow; `logUsedBytes` is a gauge, set after
/// each log append and reclaim.
final class EngineCounters: Sendable {
    /// Pages a read asked the cache for that were there and uptodate, and those it had to read
    /// from disk (readahead beyond the request counts in neither).
    let pageCacheHits = Atomic<UInt64>(0)
    let pageCacheMisses = Atomic<UInt64>(0)
    /// Bytes of dirty data writeback wrote to the backing store, and writebacks that failed.
    let writtenBackBytes = Atomic<UInt64>(0)
    let writebackErrors = Atomic<UInt64>(0)
    /// Bytes small overwrites wrote straight to the backing store (FileSystem+WriteThrough.swift).
    let writtenThroughBytes = Atomic<UInt64>(0)
    /// Log records written (each a commit: one flush), and checkpoints written.
    let logCommits = Atomic<UInt64>(0)
    let checkpoints = Atomic<UInt64>(0)
    let logUsedBytes = Atomic<UInt64>(0)

    @inline(__always)
    static func add(_ counter: borrowing Atomic<UInt64>, _ amount: Int) {
        if amount > 0 { counter.wrappingAdd(UInt64(amount), ordering: .relaxed) }
    }
}

/// A reading of the engine's counters and gauges (`FileSystem.counters()`).
public struct EngineStatistics: Sendable, Equatable {
    public var pageCacheHits: UInt64
    public var pageCacheMisses: UInt64
    /// Bytes of file data in the engine's page cache now, of them not yet written back, and the
    /// cache's budget.
    public var cachedBytes: UInt64
    public var dirtyBytes: UInt64
    public var cacheBudgetBytes: UInt64
    public var writtenBackBytes: UInt64
    public var writebackErrors: UInt64
    /// Bytes written straight to the backing store, past the page cache
    /// (FileSystem+WriteThrough.swift).
    public var writtenThroughBytes: UInt64
    public var logCommits: UInt64
    public var checkpoints: UInt64
    /// Bytes of the log ring that replay would still read, and the ring's size.
    public var logUsedBytes: UInt64
    public var logCapacityBytes: UInt64
    /// Why the volume was shut down (every request fails with EIO), or nil while it runs.
    public var shutdownReason: String?
}

extension FileSystem {
    /// The engine's counters now. Takes no lock a request holds for long: the cache's (a leaf)
    /// for its page counts, the shutdown state's for the reason.
    public func counters() -> EngineStatistics {
        let counters = self.engineCounters
        return EngineStatistics(
            pageCacheHits: counters.pageCacheHits.load(ordering: .relaxed),
            pageCacheMisses: counters.pageCacheMisses.load(ordering: .relaxed),
            cachedBytes: UInt64(cache.cachedPages * Page.size), dirtyBytes: UInt64(cache.dirtyPages * Page.size),
            cacheBudgetBytes: UInt64(cache.budgetPages * Page.size),
            writtenBackBytes: counters.writtenBackBytes.load(ordering: .relaxed),
            writebackErrors: counters.writebackErrors.load(ordering: .relaxed),
            writtenThroughBytes: counters.writtenThroughBytes.load(ordering: .relaxed),
            logCommits: counters.logCommits.load(ordering: .relaxed),
            checkpoints: counters.checkpoints.load(ordering: .relaxed),
            logUsedBytes: counters.logUsedBytes.load(ordering: .relaxed),
            logCapacityBytes: journal.log.capacity,
            shutdownReason: journal.shutdown.why)
    }
}
