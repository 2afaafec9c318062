import ExtentFSCore
import SystemPackage

/// The metadata tree's nodes in the image: one node a block, addressed by block number, taken
/// from and given back to the volume's free space.
///
/// Reuse: a node the tree releases is still reachable from the newest superblock copy's tree,
/// and a node released by the checkpoint before is still reachable from the older copy's. So a
/// released node becomes free only when the checkpoint after the one that released it is durable
/// (`checkpointDurable`): by then neither copy reaches it, and either copy stays mountable.
///
/// Used by the journal under its checkpointLock only; takes Metadata.lock to allocate and free.
final class TreeStorage: NodeDevice, NodeAllocator {
    let store: BackingStore
    let metadata: Metadata
    let nodeSize: Int
    /// Reads check that a child address read from a node is inside the volume's data blocks.
    private let reader: TreeReader
    /// Nodes reachable from the tree as committed or being built.
    private(set) var liveNodes: UInt64
    /// Released while the next checkpoint is built: free once the checkpoint after it is durable.
    private var releasedNow: [BlockRun]
    /// Released while the newest durable checkpoint was built: free once the next is durable.
    private var releasedBefore: [BlockRun]
    /// Every block either superblock copy's checkpoint holds, and the nodes prepared for the next
    /// commit: what the tree's free space leaves out besides the file blocks (freeRuns).
    private(set) var heldRuns: BlockRunSet
    /// Allocated for the next commit's nodes before the tree is committed (prepareNodes), so that
    /// the free space the commit records already leaves them out; the lowest last.
    private var preparedNodes: [UInt64] = []
    /// Taken from preparedNodes by the commit under way: given back if it fails.
    private var handedOut = Set<UInt64>()
    /// The held nodes (MetadataTree.replaceHeldNodes) the tree holds as built so far: those of
    /// the last checkpoint until the next records its own (`releasedNow`).
    var recordedHeld: BlockRunSet

    init(store: BackingStore, metadata: Metadata, loaded: LoadedCheckpoint) {
        self.store = store
        self.metadata = metadata
        nodeSize = metadata.geometry.blockSize
        reader = TreeReader(store: store, superblock: metadata.superblock)
        liveNodes = loaded.treeNodes
        releasedNow = loaded.heldUntilSecondCheckpoint
        releasedBefore = loaded.heldUntilNextCheckpoint
        heldRuns = BlockRunSet(loaded.checkpointRuns)
        recordedHeld = BlockRunSet(loaded.heldNodesRecorded)
    }

    /// Blocks the checkpoints hold: the tree, and what either superblock copy may still reach.
    var heldBlocks: UInt64 {
        liveNodes + UInt64(preparedNodes.count) + (releasedNow + releasedBefore).reduce(0) { $0 + $1.count }
    }

    func readNode(at address: UInt64) throws -> [UInt8] {
        try reader.readNode(at: address)
    }

    func writeNode(_ bytes: [UInt8], at address: UInt64) throws {
        // Only to addresses allocateNode handed out: free blocks of the volume.
        try store.write(bytes, at: address * UInt64(nodeSize))
    }

    /// Only what prepareNodes set aside: the free space the commit records counts on it.
    func allocateNode() throws -> UInt64 {
        guard let block = preparedNodes.popLast() else {
            throw ExtentFSError("the checkpoint has more nodes to write than it allocated and recorded", errno: .ioError)
        }
        handedOut.insert(block)
        liveNodes += 1
        return block
    }

    func releaseNode(_ address: UInt64) {
        // Saturating: a count derived from damaged lists (version 10) may be short.
        liveNodes -= min(liveNodes, 1)
        if handedOut.remove(address) != nil {
            // A commit that failed: still set aside, as its free space records.
            preparedNodes.append(address)
            preparedNodes.sort(by: >)
            return
        }
        guard heldRuns.intersects(BlockRun(start: address, count: 1)) else {
            // The tree reached a node its free space list says is not held: the lists are
            // damaged (a mount reads no node to check them). Never freed; the journal shuts
            // the volume down before it commits anything more.
            if inconsistency == nil { inconsistency = "the metadata tree's node \(address) is listed as free space or a file block" }
            return
        }
        releasedNow.append(BlockRun(start: address, count: 1))
    }

    /// Set when the tree contradicts the free space and held node lists it was mounted with.
    private(set) var inconsistency: String?

    var preparedCount: Int { preparedNodes.count }

    /// Sets `count` free blocks aside for the next commit's nodes; returns them. Never blocks
    /// promised to delayed allocations: their data must get to disk.
    func prepareNodes(_ count: Int) throws -> [BlockRun] {
        let runs = try metadata.withLock { () -> [BlockRun] in
            let space = metadata.freeSpace
            let unpromised = space.freeBlocks - min(space.freeBlocks, space.reserved)
            guard unpromised > UInt64(count) else {
                throw ExtentFSError("no space left for the metadata checkpoint", errno: .noSpace)
            }
            // Not file blocks: nothing notes them for the log.
            return metadata.freeSpace.allocate(UInt64(count), mappedNow: false)
        }
        for run in runs {
            heldRuns.insert(run)
            preparedNodes += (run.start..<run.end).reversed()
        }
        preparedNodes.sort(by: >)
        return runs
    }

    /// Gives `count` of the blocks set aside back to free space (the commit needs fewer: nodes
    /// dirtied then merged away); returns them.
    func unprepareNodes(_ count: Int) -> [BlockRun] {
        let blocks = preparedNodes.prefix(count)
        preparedNodes.removeFirst(blocks.count)
        let runs = BlockRunSet(blocks.map { BlockRun(start: $0, count: 1) }).runs
        metadata.withLock {
            for run in runs { metadata.freeSpace.free(run) }
        }
        for run in runs { heldRuns.remove(run) }
        return runs
    }

    /// The commit succeeded: what it took is its tree's now.
    func committed() {
        handedOut.removeAll()
    }

    /// Released while the newest durable checkpoint was built: free once the next is durable.
    var freedWhenDurable: [BlockRun] { releasedBefore }
    /// Released while this checkpoint is built: what its held nodes are.
    var heldByOlderCopy: BlockRunSet { BlockRunSet(releasedNow) }

    /// What is free within `range` once the checkpoint being built is durable: not a file block
    /// (as of its snapshot), not held by it or by the older copy it leaves.
    func freeRuns(within range: BlockRun, fileBlocks: BlockRunSet, freedWhenDurable: BlockRunSet) -> [BlockRun] {
        let free = BlockRunSet.complement(of: [fileBlocks, heldRuns], within: range)
        return BlockRun.merged(free.runs + freedWhenDurable.runs(within: range))
    }

    /// A checkpoint's superblock is durable: what the checkpoint before it released is reachable
    /// from neither copy now. Returns those blocks, for the caller to free.
    func checkpointDurable() -> [BlockRun] {
        defer {
            releasedBefore = releasedNow
            releasedNow = []
        }
        heldRuns = heldRuns.subtracting(BlockRunSet(releasedBefore))
        return releasedBefore
    }
}

/// A tree's nodes read from an image that is not mounted (mount's load, fsck), or the newest
/// durable checkpoint's of a mounted one (CommittedTree): reads only.
final class TreeReader: NodeDevice, NodeAllocator {
    let store: BackingStore
    let superblock: Superblock
    let nodeSize: Int
    /// Set (by CommittedTree, under Metadata.lock) while an operation must not wait for the
    /// device: a node neither cached nor staged is then a TreeReadDeferred, not a read.
    var defersReads = false
    /// Node bytes read outside the lock, each used by the next read of its address.
    var staged: [UInt64: [UInt8]] = [:]
    /// Which tree of the committed one this reader reads (CommittedTree.generation).
    var generation: UInt64 = 0

    init(store: BackingStore, superblock: Superblock) {
        self.store = store
        self.superblock = superblock
        nodeSize = Int(superblock.blockSize)
    }

    func readNode(at address: UInt64) throws -> [UInt8] {
        guard address >= superblock.firstAllocatableBlock, address < superblock.blockCount else {
            throw DecodingError(description: "metadata tree node address \(address) is outside the volume's data blocks")
        }
        if let bytes = staged.removeValue(forKey: address) { return bytes }
        if defersReads { throw TreeReadDeferred(address: address, byteOffset: address * UInt64(nodeSize), byteCount: nodeSize, generation: generation) }
        return try store.read(nodeSize, at: address * UInt64(nodeSize))
    }

    func prefetchNodes(at addresses: [UInt64]) {
        store.prefetch(addresses.filter { $0 >= superblock.firstAllocatableBlock && $0 < superblock.blockCount }
            .map { (offset: $0 * UInt64(nodeSize), count: nodeSize) })
    }

    func writeNode(_ bytes: [UInt8], at address: UInt64) throws { throw Errno.readOnlyFileSystem }
    func allocateNode() throws -> UInt64 { throw Errno.readOnlyFileSystem }
    func releaseNode(_ address: UInt64) {}
}
