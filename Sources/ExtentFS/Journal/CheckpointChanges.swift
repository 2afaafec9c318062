import ExtentFSCore

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
    /// Ranges where the blocks files use changed (FreeSpace.fileBlocks).
    private(set) var fileBlockRuns: [BlockRun] = []
    /// Every inode and every reference count, whatever the sets say.
    private(set) var everything: Bool
    /// Every file block range (an image of version 4, whose tree has none yet), whatever
    /// `fileBlockRuns` says.
    var allFileBlocks: Bool

    init(everything: Bool) {
        self.everything = everything
        allFileBlocks = everything
    }

    init(inodes: Set<InodeNumber>, referenceRuns: [BlockRun], fileBlockRuns: [BlockRun] = []) {
        everything = false
        allFileBlocks = false
        self.inodes = inodes
        self.referenceRuns = referenceRuns
        self.fileBlockRuns = fileBlockRuns
    }

    mutating func add(inodes changed: Set<InodeNumber>, referenceRuns runs: [BlockRun], fileBlockChanges: [FileBlockChange] = []) {
        guard !everything else { return }
        inodes.formUnion(changed)
        referenceRuns += runs
        if !allFileBlocks { fileBlockRuns += fileBlockChanges.map(\.run) }
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
        /// Disjoint, sorted; the tree's file block items over each become `fileBlocks`' there.
        var fileBlockRuns: [BlockRun]
        var fileBlocks: BlockRunSet
        /// Every inode of the volume, and what they take in a checkpoint (MetadataSpace).
        var inodeCount: UInt64
        var inodeBytes: Int
    }

    /// The snapshot of what changed, and an empty set for the next checkpoint. Caller holds
    /// Metadata.lock.
    mutating func take(from metadata: Metadata) -> Snapshot {
        defer { self = CheckpointChanges(everything: false) }
        let numbers = everything ? Array(metadata.inodes.keys) : Array(inodes.union(metadata.changes.inodes))
        let volume = BlockRun(start: metadata.superblock.firstAllocatableBlock, count: metadata.superblock.blockCount - metadata.superblock.firstAllocatableBlock)
        let runs = everything ? [volume] : BlockRun.merged(referenceRuns + metadata.changes.referenceRuns)
        let fileBlockRanges = allFileBlocks ? [volume] : BlockRun.merged(fileBlockRuns + metadata.changes.fileBlockChanges.map(\.run))
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
                        referenceRuns: runs, referenceCounts: metadata.referenceCounts,
                        fileBlockRuns: fileBlockRanges, fileBlocks: metadata.freeSpace.fileBlocks,
                        inodeCount: metadata.inodeCount, inodeBytes: metadata.space.inodeBytes)
    }
}
