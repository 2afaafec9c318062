import ExtentFSCore

/// The running transaction: which inodes and which reference-count ranges changed since the last
/// log commit, and the sequence they will be logged under. Guarded by Metadata.lock.
///
/// Inodes note themselves when a persisted field changes (Inode's property observers), so no
/// operation can change metadata without it reaching the log.
final class ChangeSet: @unchecked Sendable {
    /// The sequence the running transaction will be logged as.
    private(set) var running: LogSequence
    private(set) var inodes = Set<InodeNumber>()
    /// Some file's block map or logged size changed: the record may cover data written since the
    /// last flush, so it must not reach the disk before that data (Journal's preflush).
    private(set) var touchesData = false
    /// Reference-count ranges whose counts changed (possibly overlapping).
    private(set) var referenceRuns: [BlockRun] = []
    /// Blocks that became mapped once by a change not yet durable: the durable metadata may
    /// still map them twice, so nobody writes them in place until the change is logged
    /// (DESIGN.md, Durability). Two generations: the running one and the one being written.
    private(set) var unshared: [BlockRun] = []
    private(set) var unsharedCommitting: [BlockRun] = []
    /// Blocks that became file blocks or stopped being file blocks (FreeSpace.fileBlocks), in
    /// order: the record carries them, so that mount replays them over the tree's copy.
    private(set) var fileBlockChanges: [FileBlockChange] = []

    init(running: LogSequence) {
        self.running = running
    }

    var isEmpty: Bool { inodes.isEmpty && referenceRuns.isEmpty && fileBlockChanges.isEmpty }

    func noteFileBlocks(allocated: Bool, _ run: BlockRun) {
        fileBlockChanges.append(FileBlockChange(allocated: allocated, run: run))
    }

    /// Returns the sequence the change will be logged under.
    func note(_ ino: InodeNumber) -> LogSequence {
        inodes.insert(ino)
        return running
    }

    func noteDataChange() {
        touchesData = true
    }

    func noteReferenceChange(_ run: BlockRun, unshared newlyUnshared: [BlockRun]) {
        referenceRuns.append(run)
        unshared += newlyUnshared
    }

    func isRecentlyUnshared(_ block: UInt64) -> Bool {
        unshared.contains { $0.start <= block && block < $0.end } ||
            unsharedCommitting.contains { $0.start <= block && block < $0.end }
    }

    /// Closes the running transaction: what it changed, and a new empty one opens.
    func close() -> (sequence: LogSequence, inodes: Set<InodeNumber>, referenceRuns: [BlockRun], fileBlockChanges: [FileBlockChange],
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

    /// The closed transactions are durable: their unshared blocks may be written in place.
    func closedAreDurable() {
        unsharedCommitting = []
    }
}

/// Blocks becoming file blocks (allocated and mapped) or ceasing to be (released by a change).
struct FileBlockChange: Equatable {
    var allocated: Bool
    var run: BlockRun
}
