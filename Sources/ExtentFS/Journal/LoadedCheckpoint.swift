import ExtentFSCore

/// The metadata a mount starts from: the newest checkpoint with the log replayed over it.
struct LoadedCheckpoint {
    var nextInode: InodeNumber
    var inodes: [Inode]
    var referenceCounts: ReferenceCounts
    /// Every block either superblock copy's checkpoint holds (tree nodes, or an older image's
    /// index and payload): none is free, so either copy can be mounted.
    var checkpointRuns: [BlockRun] = []
    /// Nodes of the newest copy's tree, its levels, how full its nodes are (0...1), and its
    /// nodes under a quarter full.
    var treeNodes: UInt64 = 0
    var treeHeight = 0
    var treeFill = 0.0
    var treeUnderfilledNodes = 0
    /// The nodes mount read of the newest checkpoint's tree (its internal nodes, and what
    /// replay loaded), for the tree the inode table reads from next (CommittedTree), so that
    /// its first lookups do not read them again: the root they were read from, and their cache.
    var treeNodesRead: (root: TreeRoot, cache: NodeCache)?
    /// Blocks only the older copy reaches: free once the next checkpoint is durable (it
    /// replaces that copy).
    var heldUntilNextCheckpoint: [BlockRun] = []
    /// The held nodes the newest copy's tree lists (version 10; MetadataTree+FreeSpace).
    var heldNodesRecorded: [BlockRun] = []
    /// Blocks the newest copy reaches but its tree will not (an older image's whole checkpoint):
    /// free once the second checkpoint from now is durable.
    var heldUntilSecondCheckpoint: [BlockRun] = []
    /// What the tree does not hold yet: what replay changed, or everything (mkfs, an image of
    /// an older version).
    var sinceCheckpoint = CheckpointChanges(everything: true)
    /// Where the next log record goes, and the oldest log byte a superblock copy replays from.
    var logHead = LogPosition(offset: 0, sequence: 1)
    var logReclaimTail: UInt64 = 0
    /// Records replayed at load.
    var replayedRecords = 0
    /// Inodes the checkpoint holds that are not in `inodes` (a mount reads inodes on demand):
    /// how many and what they take in a checkpoint (MetadataSpace); their blocks are in `fileBlocks`.
    var notHeld = NotHeldInodes()
    /// The cross-checks of a mount that read inodes on demand (none but its own: fsck has them);
    /// nil when `inodes` is everything (check them with Checker.check(superblock:loaded:)).
    var checkProblems: [Checker.Problem]?
    /// The blocks files use, when the tree holds them (format version 5) and mount read them.
    var fileBlocks: BlockRunSet?
    /// A version 5 tree read whole (fsck): its volume items as the log leaves them.
    var storedVolume: StoredVolumeItems?
    /// Damage to what only the older superblock copy reaches (its checkpoint does not read
    /// back): the newest copy is intact, so mount goes on and its next checkpoint, which replaces
    /// that copy, heals it; fsck reports it, since a mount could no longer fall back to that copy.
    var warnings: [String] = []
    /// Free space (version 10) that does not match what the checkpoint uses, in the safe
    /// direction only (blocks lost, not blocks listed free that are used): fsck reports it.
    var freeSpaceProblems: [String] = []
}

struct NotHeldInodes {
    var count: UInt64 = 0
    var checkpointBytes = 0
}
