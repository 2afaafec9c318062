/// Reads of the committed tree with no lock held (issue 9, step 5; lookup, getattr, open,
/// readlink, getxattr and listxattr): an operation that may need
/// nodes the cache does not hold runs under Metadata.lock with reads deferred; each node it
/// would wait for is read after the lock is let go and handed to its next run, so that one
/// request waiting for the device does not hold up every other (a cold lookup no longer stalls
/// a cached getattr, and cold lookups of two processes read in parallel).
extension FileSystem {
    /// Runs of `body` before it gives up deferring: one per node a cold lookup may miss (the
    /// directory's image, internal nodes, the name's index leaf, the child's image) and more.
    static let maxDeferredRuns = 12

    /// `body` under Metadata.lock, its committed-tree reads done outside it. `body` must be one
    /// that can be deferred (TreeReadDeferred says which).
    func readingTreeOutsideTheLock<T>(_ body: () throws -> T) throws -> T {
        var staged: (TreeReadDeferred, [UInt8])?
        for _ in 0..<Self.maxDeferredRuns {
            do {
                return try metadata.withLock {
                    guard let committed = metadata.committed else { return try body() }
                    if let (deferred, bytes) = staged { committed.stage(bytes, for: deferred) }
                    return try committed.deferringReads(body)
                }
            } catch let deferred as TreeReadDeferred {
                // A read error here is the next run's to meet (and report) under the lock.
                guard let bytes = try? store.read(deferred.byteCount, at: deferred.byteOffset) else { break }
                staged = (deferred, bytes)
            }
        }
        return try metadata.withLock(body)
    }
}
