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

    init(store: BackingStore, metadata: Metadata, loaded: LoadedCheckpoint) {
        self.store = store
        self.metadata = metadata
        nodeSize = metadata.geometry.blockSize
        reader = TreeReader(store: store, superblock: metadata.superblock)
        liveNodes = loaded.treeNodes
        releasedNow = loaded.heldUntilSecondCheckpoint
        releasedBefore = loaded.heldUntilNextCheckpoint
    }

    /// Blocks the checkpoints hold: the tree, and what either superblock copy may still reach.
    var heldBlocks: UInt64 {
        liveNodes + (releasedNow + releasedBefore).reduce(0) { $0 + $1.count }
    }

    func readNode(at address: UInt64) throws -> [UInt8] {
        try reader.readNode(at: address)
    }

    func writeNode(_ bytes: [UInt8], at address: UInt64) throws {
        // Only to addresses allocateNode handed out: free blocks of the volume.
        try store.write(bytes, at: address * UInt64(nodeSize))
    }

    func allocateNode() throws -> UInt64 {
        let block = try metadata.withLock { () -> UInt64 in
            // Never take blocks promised to delayed allocations: their data must get to disk.
            let space = metadata.freeSpace
            let unpromised = space.freeBlocks - min(space.freeBlocks, space.reserved)
            guard unpromised > 1, let run = metadata.freeSpace.allocateContiguous(1) else {
                throw ExtentFSError("no space left for the metadata checkpoint", errno: .noSpace)
            }
            return run.start
        }
        liveNodes += 1
        return block
    }

    func releaseNode(_ address: UInt64) {
        liveNodes -= 1
        releasedNow.append(BlockRun(start: address, count: 1))
    }

    /// A checkpoint's superblock is durable: what the checkpoint before it released is reachable
    /// from neither copy now. Returns those blocks, for the caller to free.
    func checkpointDurable() -> [BlockRun] {
        defer {
            releasedBefore = releasedNow
            releasedNow = []
        }
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
