import ExtentFSCore

/// Bounds the lookup counts the inode table keeps for inodes it let go (issue 11): FUSE requires
/// them exact, and the kernel holds them for as long as it caches the inodes, so a walk of many
/// files would grow them without end. Past `InodeCacheState.lookupRecordLimit` of them, the
/// flusher asks the kernel, through the adapter, to let go of those inodes it does not use
/// (FUSE_NOTIFY_PRUNE); its FORGETs then remove the counts. Inodes the kernel uses (open files,
/// working directories, mapped files) stay, as they must: their number is bounded by what
/// processes hold open.
///
/// Lock order: Metadata.lock is never held while the pruner runs; the pruner's own lock is held
/// across a call, so that clearing it waits for a call in progress (the adapter clears it before
/// its session goes).
final class KernelInodePruner: @unchecked Sendable {
    private let lock = Mutex()
    private var prune: (@Sendable ([InodeNumber]) -> Void)?

    func set(_ prune: (@Sendable ([InodeNumber]) -> Void)?) {
        lock.withLock { self.prune = prune }
    }

    /// Asks the pruner set, if any.
    func callAsFunction(_ inodes: [InodeNumber]) {
        lock.withLock { prune?(inodes) }
    }
}

extension FileSystem {
    /// How to ask the kernel to let go of inodes it does not use (nil: no kernel to ask, as in
    /// process; the counts then stay). The adapter sets it once its session exists and clears
    /// it before the session goes.
    public func setKernelInodePruner(_ prune: (@Sendable ([InodeNumber]) -> Void)?) {
        kernelInodePruner.set(prune)
    }

    /// Asks the kernel to let go of inodes when the table keeps too many lookup counts. Called
    /// by the flusher with no lock held.
    func pruneKernelInodes() {
        let candidates = metadata.lock.withShared { metadata.tableLock.withLock { metadata.cacheState.takePruneCandidates() } }
        guard !candidates.isEmpty else { return }
        kernelInodePruner(candidates)
    }
}
