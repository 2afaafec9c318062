#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The running transaction: which inodes and which reference-count ranges changed since the last
/// log commit, and the sequence they will be logged under. Guarded by Metadata.lock; `note`,
/// `hasNoted`, `noteDataChange`, `noteFileBlocks`, `noteReferenceChange`, `isRecentlyUnshared` and
/// `closedAreDurable` are also
/// called by shared transactions (Metadata.sharedTransaction), several at once, and take
/// `notingLock` (a leaf, taken inside Metadata.allocatorLock by the allocator's and the
/// reference counts' noting) for what they change or read: whoever holds Metadata.lock
/// exclusively (the log's commit above all) sees no shared transaction running.
///
/// Inodes note themselves when a persisted field changes (Inode's property observers), so no
/// operation can change metadata without it reaching the log.
package final class ChangeSet: @unchecked Sendable {
    private let notingLock = NotingLock()
    /// The sequence the running transaction will be logged as.
    package private(set) var running: LogSequence
    package private(set) var inodes = Set<InodeNumber>()
    /// Some file's block map or logged size changed: the record may cover data written since the
    /// last flush, so it must not reach the disk before that data (Journal's preflush).
    package private(set) var touchesData = false
    /// Reference-count ranges whose counts changed (possibly overlapping).
    package private(set) var referenceRuns: [BlockRun] = []
    /// Blocks that became mapped once by a change not yet durable: the durable metadata may
    /// still map them twice, so nobody writes them in place until the change is logged
    /// (DESIGN.md, Durability). Two generations: the running one and the one being written.
    package private(set) var unshared: [BlockRun] = []
    package private(set) var unsharedCommitting: [BlockRun] = []
    /// Runs in both, for a reader with no lock (Metadata.noBlockIsShared).
    private let unsharedRunCount = Atomic<Int>(0)
    package var hasUnsharedBlocks: Bool { unsharedRunCount.load(ordering: .acquiring) > 0 }
    /// Blocks that became file blocks or stopped being file blocks (FreeSpace.fileBlocks), in
    /// order: the record carries them, so that mount replays them over the tree's copy.
    package private(set) var fileBlockChanges: [FileBlockChange] = []

    package init(running: LogSequence) {
        self.running = running
    }

    package var isEmpty: Bool { inodes.isEmpty && referenceRuns.isEmpty && fileBlockChanges.isEmpty }

    package func noteFileBlocks(allocated: Bool, _ run: BlockRun) {
        notingLock.withLock { fileBlockChanges.append(FileBlockChange(allocated: allocated, run: run)) }
    }

    /// Returns the sequence the change will be logged under.
    package func note(_ ino: InodeNumber) -> LogSequence {
        notingLock.withLock { _ = inodes.insert(ino) }
        return running
    }

    /// `ino` changed in the running transaction: for a reader in a shared hold (an inode read
    /// back from the tree, InodeCache.swift), while shared transactions note others.
    package func hasNoted(_ ino: InodeNumber) -> Bool {
        notingLock.withLock { inodes.contains(ino) }
    }

    package func noteDataChange() {
        notingLock.withLock { touchesData = true }
    }

    package func noteReferenceChange(_ run: BlockRun, unshared newlyUnshared: [BlockRun]) {
        notingLock.withLock {
            referenceRuns.append(run)
            unshared += newlyUnshared
            unsharedRunCount.store(unshared.count + unsharedCommitting.count, ordering: .releasing)
        }
    }

    package func isRecentlyUnshared(_ block: UInt64) -> Bool {
        notingLock.withLock {
            unshared.contains { $0.start <= block && block < $0.end } ||
                unsharedCommitting.contains { $0.start <= block && block < $0.end }
        }
    }

    /// Closes the running transaction: what it changed, and a new empty one opens.
    package func close() -> (sequence: LogSequence, inodes: Set<InodeNumber>, referenceRuns: [BlockRun], fileBlockChanges: [FileBlockChange],
                     touchesData: Bool) {
        defer {
            running += 1
            touchesData = false
            inodes = []
            referenceRuns = []
            fileBlockChanges = []
            unsharedCommitting += unshared
            unshared = []
        }
        return (running, inodes, referenceRuns, fileBlockChanges, touchesData || !referenceRuns.isEmpty || !fileBlockChanges.isEmpty)
    }

    /// The closed transactions are durable: their unshared blocks may be written in place. Called
    /// with Metadata.lock held shared (and the allocator's lock, under which readers decide by
    /// `isRecentlyUnshared`) while shared transactions note changes.
    package func closedAreDurable() {
        notingLock.withLock {
            unsharedCommitting = []
            unsharedRunCount.store(unshared.count, ordering: .releasing)
        }
    }
}

/// Blocks becoming file blocks (allocated and mapped) or ceasing to be (released by a change).
package struct FileBlockChange: Equatable {
    package var allocated: Bool
    package var run: BlockRun

    package init(allocated: Bool, run: BlockRun) {
        self.allocated = allocated
        self.run = run
    }
}

/// ChangeSet's lock: a pthread mutex rather than Synchronization's Mutex, whose futex
/// ThreadSanitizer does not see (scripts/tsan.sh reported the inode set changed by two shared
/// transactions at once, both holding it), as it sees the engine's pthread locks.
private final class NotingLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init() { pthread_mutex_init(mutex, nil) }
    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}
