/// What changed since the last checkpoint: the inodes and reference-count runs of every log
/// record closed since (Journal), or everything, when the tree does not hold the metadata yet
/// (mkfs, an image converted from the whole-checkpoint format). A checkpoint takes these (O(what
/// changed), under Metadata.lock) and writes only their items into the metadata tree.
///
/// Changes of the running transaction that are not in it are replayed from the log over the
/// checkpoint: its tail is at the running transaction. Guarded by Metadata.lock.
struct CheckpointChanges {
    private(set) var inodes = Set<InodeNumber>()
    private(set) var referenceRuns: [BlockRun] = []
    /// Every inode and every reference count, whatever the sets say.
    private(set) var everything: Bool

    init(everything: Bool) {
        self.everything = everything
    }

    init(inodes: Set<InodeNumber>, referenceRuns: [BlockRun]) {
        everything = false
        self.inodes = inodes
        self.referenceRuns = referenceRuns
    }

    mutating func add(inodes changed: Set<InodeNumber>, referenceRuns runs: [BlockRun]) {
        guard !everything else { return }
        inodes.formUnion(changed)
        referenceRuns += runs
    }

    /// What a checkpoint writes into the tree, copied out under Metadata.lock.
    struct Snapshot {
        var nextInode: InodeNumber
        /// Sorted by inode number; nil: the inode is gone.
        var inodes: [(InodeNumber, InodeImage?)]
        /// Disjoint, sorted; the counts over each become those of `referenceCounts` there.
        var referenceRuns: [BlockRun]
        /// Copy-on-write: costs nothing until the next change of a count.
        var referenceCounts: ReferenceCounts
    }

    /// The snapshot of what changed, and an empty set for the next checkpoint. Caller holds
    /// Metadata.lock.
    mutating func take(from metadata: Metadata) -> Snapshot {
        defer { self = CheckpointChanges(everything: false) }
        let numbers = everything ? Array(metadata.inodes.keys) : Array(inodes)
        let runs = everything
            ? [BlockRun(start: metadata.superblock.firstAllocatableBlock, count: metadata.superblock.blockCount - metadata.superblock.firstAllocatableBlock)]
            : BlockRun.merged(referenceRuns)
        return Snapshot(nextInode: metadata.nextInode,
                        inodes: numbers.sorted().map { ino in (ino, metadata.inodes[ino].map(InodeImage.init)) },
                        referenceRuns: runs, referenceCounts: metadata.referenceCounts)
    }
}
