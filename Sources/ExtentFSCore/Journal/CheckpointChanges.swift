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
package struct CheckpointChanges {
    package private(set) var inodes = Set<InodeNumber>()
    package private(set) var referenceRuns: [BlockRun] = []
    /// Ranges where the blocks files use changed (FreeSpace.fileBlocks).
    package private(set) var fileBlockRuns: [BlockRun] = []
    /// Every inode and every reference count, whatever the sets say.
    package private(set) var everything: Bool
    /// Every file block range (an image of version 4, whose tree has none yet), whatever
    /// `fileBlockRuns` says.
    package var allFileBlocks: Bool
    /// Free space over the whole volume (an image of a version before 10, whose tree has none
    /// yet), whatever changed.
    package var allFreeSpace: Bool

    package init(everything: Bool) {
        self.everything = everything
        allFileBlocks = everything
        allFreeSpace = everything
    }

    package init(inodes: Set<InodeNumber>, referenceRuns: [BlockRun], fileBlockRuns: [BlockRun] = []) {
        everything = false
        allFileBlocks = false
        allFreeSpace = false
        self.inodes = inodes
        self.referenceRuns = referenceRuns
        self.fileBlockRuns = fileBlockRuns
    }

    package mutating func add(inodes changed: Set<InodeNumber>, referenceRuns runs: [BlockRun], fileBlockChanges: [FileBlockChange] = []) {
        guard !everything else { return }
        inodes.formUnion(changed)
        referenceRuns += runs
        if !allFileBlocks { fileBlockRuns += fileBlockChanges.map(\.run) }
    }

    /// What a checkpoint writes into the tree, copied out under Metadata.lock.
    package struct Snapshot {
        package var nextInode: InodeNumber
        /// Sorted by inode number; nil: the inode is gone.
        package var inodes: [(InodeNumber, InodeImage?)]
        /// Disjoint, sorted; the counts over each become those of `referenceCounts` there.
        package var referenceRuns: [BlockRun]
        /// Copy-on-write: costs nothing until the next change of a count.
        package var referenceCounts: ReferenceCounts
        /// Disjoint, sorted; the tree's file block items over each become `fileBlocks`' there.
        package var fileBlockRuns: [BlockRun]
        package var fileBlocks: BlockRunSet
        /// Disjoint, sorted: where free space may have changed with the file blocks (the nodes'
        /// part is the journal's: TreeStorage).
        package var freeSpaceRuns: [BlockRun]
        /// Every inode of the volume, and what they take in a checkpoint (MetadataSpace).
        package var inodeCount: UInt64
        package var inodeBytes: Int

        package init(nextInode: InodeNumber, inodes: [(InodeNumber, InodeImage?)], referenceRuns: [BlockRun],
                     referenceCounts: ReferenceCounts, fileBlockRuns: [BlockRun], fileBlocks: BlockRunSet,
                     freeSpaceRuns: [BlockRun]? = nil, inodeCount: UInt64, inodeBytes: Int) {
            self.nextInode = nextInode
            self.inodes = inodes
            self.referenceRuns = referenceRuns
            self.referenceCounts = referenceCounts
            self.fileBlockRuns = fileBlockRuns
            self.fileBlocks = fileBlocks
            self.freeSpaceRuns = freeSpaceRuns ?? fileBlockRuns
            self.inodeCount = inodeCount
            self.inodeBytes = inodeBytes
        }
    }
}
