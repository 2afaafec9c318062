import ExtentFSCore
import Logging
import SystemPackage

/// Makes metadata durable. Each transaction (Metadata.transaction) notes what it changes in the
/// running ChangeSet; a commit closes it, writes it as one log record (LogRecord) and flushes,
/// so an fsync costs what changed, not what the volume holds. Commits are serialized by
/// `commitLock`; a caller that finds its change already durable returns at once, and the
/// changes of everyone who waited meanwhile go out in the next record together (group commit).
///
/// Checkpoints trim the log: what changed since the last checkpoint (CheckpointChanges, O(the
/// changes) under Metadata.lock) goes into the metadata tree without Metadata.lock, the tree's
/// new and changed nodes are written to free blocks and flushed, and the superblock slot
/// (sequence % 2) is pointed at the new root with the log tail after it, then flushed. Either
/// superblock copy stays mountable: the tree is copy-on-write, a node it replaces is freed only
/// once neither copy reaches it (TreeStorage), and the log is reclaimed only up to the older
/// copy's tail, so the older copy plus the log still reaches the newest state.
///
/// Nothing is reused before the record that frees it is durable: blocks freed by a transaction
/// become allocatable after its record is flushed (FreeSpace.freeAfterCommit), and blocks whose
/// reference count fell to one are not written in place until then (ChangeSet.unshared).
///
/// Ordered data: writeback maps new blocks unwritten and converts them after their data is
/// written, and logs a size only once the data below it is written (Inode.durableSize); a commit
/// flushes before writing its record when anything written is unflushed (as XFS's log writes
/// carry PREFLUSH), so a record never reaches the disk ahead of the data it covers.
///
/// Failures shut the volume down (Shutdown): a failed log, checkpoint or superblock write or
/// flush is never retried over state that may be on disk.
///
/// Lock order: commitLock -> checkpointLock -> reuseBarrier -> Metadata.lock. commitLock is held
/// across log I/O, checkpointLock across checkpoint I/O; Metadata.lock never is.
final class Journal: @unchecked Sendable {
    let store: BackingStore
    let metadata: Metadata
    let log: LogRing
    let shutdown = Shutdown()
    private let logger = Logger(label: "extentfs.journal")
    private let commitLock = Mutex()
    /// One checkpoint at a time, and the newest superblock with it. Lock order: commitLock ->
    /// checkpointLock (a checkpoint takes it before letting commitLock go, then writes without
    /// commitLock); never commitLock while holding checkpointLock.
    private let checkpointLock = Mutex()
    /// Held shared by a read that bypasses the cache, from mapping file blocks until it has read
    /// them (`FileSystem.readBypassingCache`), exclusively by a commit while it makes freed
    /// blocks reusable: a block that copy-on-write or another file released meanwhile cannot be
    /// reallocated and overwritten under the reader. Holders of it take only Metadata.lock. Not nested.
    let reuseBarrier = ReadWriteLock()
    /// Called (with commitLock held: it must only signal) when half the log is in use, so a
    /// checkpoint runs in the background before the log fills.
    var onLogPressure: (() -> Void)?
    /// The last logged transaction known to be on disk. Guarded by commitLock.
    private var durable: LogSequence
    /// The checkpoint as a tree, and where its nodes live. Guarded by checkpointLock.
    let treeStorage: TreeStorage
    let tree: MetadataTree
    /// Commits, checkpoints and the log's use, for `extentfs stats`.
    let counters: EngineCounters

    init(store: BackingStore, metadata: Metadata, loaded: LoadedCheckpoint, counters: EngineCounters = EngineCounters()) throws {
        self.store = store
        self.metadata = metadata
        self.counters = counters
        log = LogRing(store: store, superblock: metadata.superblock, head: loaded.logHead, reclaimTail: loaded.logReclaimTail)
        durable = loaded.logHead.sequence - 1
        treeStorage = TreeStorage(store: store, metadata: metadata, loaded: loaded)
        tree = MetadataTree(tree: try BTree(root: metadata.superblock.checkpoint.treeRoot, owner: MetadataTree.owner,
                                            device: treeStorage, allocator: treeStorage,
                                            cache: NodeCache(budgetBytes: metadata.treeNodeCacheBytes)),
                            superblock: metadata.superblock)
        metadata.withLock { metadata.space.heldBlocks = treeStorage.heldBlocks }
        // The inode table reads what it does not hold from the newest durable checkpoint, once
        // that holds everything (an older image's first checkpoint is still to come).
        if !loaded.sinceCheckpoint.everything, metadata.superblock.checkpoint.treeRoot != nil {
            let warm = loaded.treeNodesRead.flatMap { $0.root == metadata.superblock.checkpoint.treeRoot ? $0.cache : nil }
            let committed = try CommittedTree(store: store, superblock: metadata.superblock, cacheBytes: metadata.treeNodeCacheBytes,
                                              nodesRead: warm)
            metadata.withLock { metadata.committed = committed }
        }
        counters.logUsedBytes.store(log.usedBytes, ordering: .relaxed)
    }

    /// Logs every change up to transaction `target` (all of them by default) and flushes; returns
    /// whether it flushed. Group commit: returns at once when `target` is already durable.
    @discardableResult
    func force(upTo target: LogSequence = .max) throws -> Bool {
        try commitLock.withLock { try forceLocked(upTo: target) }
    }

    /// Flushes the device if anything was written since the last flush (fsync of data that was
    /// written in place changes no metadata, but must still reach the disk).
    func flushIfNeeded() throws {
        try commitLock.withLock {
            try shutdown.check()
            guard store.hasUnflushedWrites else { return }
            do { try store.flush() } catch { throw shutdown.trigger("flushing the device failed: \(error)") }
        }
    }

    /// Logs what is pending, then writes a checkpoint, so the log can be reclaimed. Only the
    /// snapshot is taken under commitLock: commits go on while the checkpoint is encoded and
    /// written.
    func checkpoint() throws {
        let clock = ContinuousClock()
        var snapshotStart = clock.now
        let snapshot = try commitLock.withLock { () -> CheckpointSnapshot in
            _ = try forceLocked(upTo: .max)
            checkpointLock.lock()
            snapshotStart = clock.now
            return takeSnapshot()
        }
        let writeStart = clock.now
        defer { checkpointLock.unlock() }
        try writeCheckpoint(snapshot)
        // What stalls commits (the snapshot, under commitLock) and what only takes time.
        logger.debug("checkpoint of \(snapshot.changes.inodes.count) changed inodes: snapshot \(writeStart - snapshotStart) under the commit lock, written in \(clock.now - writeStart)")
    }

    /// More than half the log is in use: time for a checkpoint.
    var wantsCheckpoint: Bool {
        commitLock.withLock { log.usedBytes > log.capacity / 2 }
    }

    private func forceLocked(upTo target: LogSequence) throws -> Bool {
        try shutdown.check()
        guard target > durable else { return false }
        let closed = metadata.withLock { () -> (sequence: LogSequence, record: LogRecord, frees: [BlockRun])? in
            guard !metadata.changes.isEmpty else { return nil }
            let (sequence, record) = LogRecord.close(metadata)
            return (sequence, record, metadata.freeSpace.takePendingFrees())
        }
        guard let closed else { return false }
        let payload = closed.record.encode()
        guard log.head.sequence == closed.sequence else {
            throw shutdown.trigger("log sequence \(log.head.sequence) does not match transaction \(closed.sequence)")
        }
        // The record and the tail after it must stay below the limit mount accepts. No honest
        // volume gets near it (2^62 commits); an image made to start there stops here, whole.
        guard closed.sequence + 1 < LogPosition.maxSequence else {
            throw shutdown.trigger("log sequence numbers are used up (\(closed.sequence)): copy the files to a new volume")
        }
        if log.fits(payloadBytes: payload.count) {
            do {
                // Ordered data: what the record maps was written before it was closed; a flush
                // first keeps the device from putting the record on disk ahead of that data (a
                // record and data written without a flush between them may land in any order).
                // A record that changes no block map or logged size covers no data: no need.
                if closed.record.touchesData && store.hasUnflushedWrites { try store.flush() }
                try log.append(payload)
                try store.flush()
            } catch {
                throw shutdown.trigger("writing log record \(closed.sequence) failed: \(error)")
            }
            counters.logCommits.wrappingAdd(1, ordering: .relaxed)
            counters.logUsedBytes.store(log.usedBytes, ordering: .relaxed)
        } else {
            // Too big for the room the log has: two checkpoints record it instead, so that both
            // superblock copies hold it (the older copy's log replay would stop before it). The
            // transaction is closed: if it cannot be recorded, memory is ahead of the disk for good.
            log.skip(to: closed.sequence + 1)
            checkpointLock.lock()
            defer { checkpointLock.unlock() }
            do {
                try writeCheckpoint(takeSnapshot())
                try writeCheckpoint(takeSnapshot())
            } catch {
                throw shutdown.trigger("recording transaction \(closed.sequence) by checkpoints failed: \(error)")
            }
        }
        if log.usedBytes > log.capacity / 2 { onLogPressure?() }
        durable = closed.sequence
        // Free space and the unshared blocks are the allocator lock's in shared transactions:
        // running ones go on while the record's frees become reusable.
        reuseBarrier.withExclusive {
            metadata.lock.withShared {
                metadata.allocatorLock.withLock {
                    for run in closed.frees { metadata.freeSpace.free(run) }
                    metadata.changes.closedAreDurable()
                    if let inconsistency = metadata.freeSpace.inconsistency {
                        _ = shutdown.trigger("the metadata contradicts itself: \(inconsistency); run extentfs fsck")
                    }
                }
            }
        }
        return true
    }

    /// What changed since the last checkpoint, the log position after the last logged record,
    /// and the newest superblock. Caller holds commitLock and checkpointLock and has logged every
    /// closed transaction, so replaying from `tail` over the tree with these changes gives every
    /// later state. O(the changes): commits wait for no copy of the whole metadata.
    private func takeSnapshot() -> CheckpointSnapshot {
        metadata.withLock {
            let changes = metadata.sinceCheckpoint.take(from: metadata)
            // Until this checkpoint is durable, the tree the inode table reads from lacks them.
            for (ino, _) in changes.inodes { metadata.checkpointInFlight.insert(ino) }
            return CheckpointSnapshot(changes: changes,
                                      tail: LogPosition(offset: log.head.offset, sequence: metadata.changes.running),
                                      previous: metadata.superblock)
        }
    }

    /// Writes the changes into the tree and its new nodes to disk, then points the next
    /// superblock slot at the new root. Caller holds checkpointLock (and may hold commitLock);
    /// Metadata.lock is taken only briefly (node allocation, and the end).
    private func writeCheckpoint(_ prepared: CheckpointSnapshot) throws {
        try shutdown.check()
        // As for log records (forceLocked): the next superblock must be one mount accepts.
        guard prepared.previous.sequence + 1 < LogPosition.maxSequence else {
            throw shutdown.trigger("superblock sequence numbers are used up (\(prepared.previous.sequence)): copy the files to a new volume")
        }
        var superblock = prepared.previous
        superblock.version = Superblock.currentVersion  // an older image converts here
        superblock.sequence += 1
        superblock.logTail = prepared.tail
        do {
            // A tree that could not take the changes is not what memory holds: nothing later
            // may be built on it.
            try tree.apply(prepared.changes)
            try recordSpace(prepared.changes)
            if let problem = treeStorage.inconsistency { throw ExtentFSError("\(problem); run extentfs fsck", errno: .ioError) }
        } catch let error as ExtentFSError where error.errno == .noSpace {
            // No room for the nodes: the tree keeps the changes (and the nodes set aside so far),
            // and the next checkpoint, with more room, writes them.
            throw error
        } catch {
            throw shutdown.trigger("updating the metadata tree for checkpoint \(superblock.sequence) failed: \(error)")
        }
        do {
            superblock.checkpoint = .tree(try tree.tree.commit(generation: superblock.sequence))
            treeStorage.committed()
            try store.flush()
        } catch let error as ExtentFSError where error.errno == .noSpace {
            // Nothing was written over anything: the tree keeps the changes, and the next
            // checkpoint, with more room, writes them.
            throw error
        } catch {
            throw shutdown.trigger("writing checkpoint \(superblock.sequence) failed: \(error)")
        }
        if let hook = metadata.pageCache?.pauseHook { hook(.checkpointBeforeSuperblock) }
        do {
            try Journal.writeSuperblock(superblock, store: store)
            try store.flush()
        } catch {
            // The superblock may be on disk: the new checkpoint's blocks stay in use.
            throw shutdown.trigger("writing superblock \(superblock.sequence) failed: \(error)")
        }
        let unreachable = treeStorage.checkpointDurable()
        try reuseBarrier.withExclusive {
            try metadata.withLock {
                // Reads move to the new root before the freed nodes can be reused.
                do {
                    if let committed = metadata.committed {
                        try committed.advance(to: superblock, freed: unreachable)
                    } else {
                        metadata.committed = try CommittedTree(store: store, superblock: superblock, cacheBytes: metadata.treeNodeCacheBytes)
                    }
                } catch {
                    throw shutdown.trigger("opening checkpoint \(superblock.sequence) for reading failed: \(error)")
                }
                // Every checkpoint written since the last durable one is in this tree (one that
                // failed left its changes in the tree object for this one to write).
                metadata.checkpointInFlight.removeAll()
                for run in unreachable { metadata.freeSpace.free(run) }
                metadata.space.heldBlocks = treeStorage.heldBlocks
                metadata.superblock = superblock
                metadata.evictToBudget(limit: .max)
            }
        }
        // The other copy (the previous newest) replays from its tail: keep the log from there.
        log.reclaim(upTo: prepared.previous.logTail.offset)
        counters.checkpoints.wrappingAdd(1, ordering: .relaxed)
        counters.logUsedBytes.store(log.usedBytes, ordering: .relaxed)
    }

    struct CheckpointSnapshot {
        var changes: CheckpointChanges.Snapshot
        var tail: LogPosition
        var previous: Superblock
    }

    static func writeSuperblock(_ superblock: Superblock, store: BackingStore) throws {
        let slot = Superblock.slotOffsets[Int(superblock.sequence % 2)]
        try store.write(superblock.encode(), at: slot)
    }
}
