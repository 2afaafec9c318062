/// What changed since the last checkpoint: the inodes and reference-count runs of every log
/// record closed since (Journal), or everything, when the tree does not hold the metadata yet
/// (mkfs, an image converted from the whole-checkpoint format). A checkpoint takes these (O(what
/// changed), under Metadata.lock) and writes only their items into the metadata tree.
///
/// The snapshot also takes everything the running transaction changed so far (it is not logged
/// yet; the checkpoint's log tail is at it, so replay applies it again): transactions change
/// metadata whole under Metadata.lock, and a snapshot that took only part of one (a new link's
/// inode but not its directory) would be a state no sequence of transactions made, which a crash
/// before that transaction is logged would leave on disk. Guarded by Metadata.lock.
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
        let numbers = everything ? Array(metadata.inodes.keys) : Array(inodes.union(metadata.changes.inodes))
        let runs = everything
            ? [BlockRun(start: metadata.superblock.firstAllocatableBlock, count: metadata.superblock.blockCount - metadata.superblock.firstAllocatableBlock)]
            : BlockRun.merged(referenceRuns + metadata.changes.referenceRuns)
        let images = numbers.sorted().map { ino -> (InodeNumber, InodeImage?) in
            guard let inode = metadata.inodes[ino] else { return (ino, nil) }
            var image = InodeImage(inode)
            if everything {
                image.changedEntryCookies = nil
                image.changedExtentRange = nil
            }
            // From here on the tree will hold this directory's entries, this file's extents, as
            // the image has them.
            if inode.type == .directory { inode.checkpointEntryCookies = [] }
            if inode.type == .regular { inode.extentsCheckpointed() }
            return (ino, image)
        }
        return Snapshot(nextInode: metadata.nextInode, inodes: images,
                        referenceRuns: runs, referenceCounts: metadata.referenceCounts)
    }
}
