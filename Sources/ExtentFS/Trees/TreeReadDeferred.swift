/// A read of the committed tree that an operation running under Metadata.lock did not wait for
/// (issue 9, step 5: no device I/O under the lock for lookups and attribute reads). The caller
/// reads the node with no lock held, stages it (CommittedTree.stage) and runs the operation
/// again, which then finds it; FileSystem.readingTreeOutsideTheLock does both. An operation
/// that can be deferred changes nothing before its last tree read, or only what running it
/// again finds done (an inode let into the table).
struct TreeReadDeferred: Error {
    let address: UInt64
    let byteOffset: UInt64
    let byteCount: Int
    /// The committed tree's generation it was asked of: bytes read for an older one are not
    /// staged (its blocks may have been reused since).
    let generation: UInt64
}
