import ExtentFSCore

/// The newest durable checkpoint's metadata tree, read-only: where the inode cache loads an inode
/// it does not hold (Metadata.inode). The journal's own tree (Journal.tree) is the next
/// checkpoint being built, changed without Metadata.lock; this one is never written, so a load
/// needs only Metadata.lock, never the journal's checkpointLock.
///
/// Why its nodes stay valid: a node a checkpoint releases is freed only when the checkpoint after
/// it is durable (TreeStorage), and `advance` moves reads to each durable checkpoint's root under
/// Metadata.lock before those blocks can be reused, dropping them from this cache (a block reused
/// for a new node must not be found here with its old contents).
///
/// Guarded by Metadata.lock held exclusively, or shared with Metadata.tableLock (a name made in a
/// shared transaction looks itself up here; lookups and inodes read back run so): the tree and
/// its node cache are not thread-safe.
final class CommittedTree {
    private let store: BackingStore
    private let cache: NodeCache
    private var tree: MetadataTree
    private var reader: TreeReader
    /// Counts `advance`s: nodes read outside the lock for one generation are staged only while
    /// it is still the current one (TreeReadDeferred).
    private(set) var generation: UInt64 = 0

    /// `nodesRead`: clean nodes of this checkpoint's tree already read (by mount), kept within
    /// `cacheBytes`; the cache becomes this tree's alone.
    init(store: BackingStore, superblock: Superblock, cacheBytes: Int, nodesRead: NodeCache? = nil) throws {
        self.store = store
        cache = nodesRead ?? NodeCache(budgetBytes: cacheBytes)
        cache.budgetBytes = cacheBytes
        (tree, reader) = try Self.open(store, superblock, cache)
    }

    private static func open(_ store: BackingStore, _ superblock: Superblock, _ cache: NodeCache) throws -> (MetadataTree, TreeReader) {
        let device = TreeReader(store: store, superblock: superblock)
        return (MetadataTree(tree: try BTree(root: superblock.checkpoint.treeRoot, owner: MetadataTree.owner, device: device,
                                             allocator: device, cache: cache),
                             superblock: superblock),
                device)
    }

    /// Runs `body` with reads that would wait for the device thrown as TreeReadDeferred.
    /// Staged bytes not used by it are dropped after it.
    func deferringReads<T>(_ body: () throws -> T) rethrows -> T {
        reader.defersReads = true
        defer {
            reader.defersReads = false
            if !reader.staged.isEmpty { reader.staged.removeAll() }
        }
        return try body()
    }

    /// `bytes`, read outside the lock for `deferred`, serve the next read of its node, if the
    /// tree is still the one they were read for.
    func stage(_ bytes: [UInt8], for deferred: TreeReadDeferred) {
        guard deferred.generation == generation, bytes.count == deferred.byteCount else { return }
        reader.staged[deferred.address] = bytes
    }

    /// Checkpoint `superblock` is durable and `freed` may be reused from now on.
    func advance(to superblock: Superblock, freed: [BlockRun]) throws {
        for run in freed {
            for address in run.start..<run.end { cache.remove(address) }
        }
        (tree, reader) = try Self.open(store, superblock, cache)
        generation += 1
        reader.generation = generation
    }

    /// Inode `ino` as the newest durable checkpoint holds it (nil: it holds nothing of it).
    func loadInode(_ ino: InodeNumber, nextInode: InodeNumber, pageCache: PageCache?) throws -> Inode? {
        try tree.loadInode(ino, nextInode: nextInode, cache: pageCache)
    }

    /// The entry `name` names in `directory` as the checkpoint holds it.
    func lookupEntry(in directory: InodeNumber, named name: [UInt8]) throws -> Directory.Entry? {
        try tree.lookupEntry(in: directory, named: name)
    }

    /// The checkpoint's entries of `directory` after `cookie` and below `end`, in cookie order.
    func forEachEntry(of directory: InodeNumber, after cookie: UInt64, before end: UInt64,
                      _ body: ([UInt8], Directory.Entry) throws -> Bool) throws {
        try tree.forEachStoredEntry(of: directory, after: cookie, before: end, body)
    }

    var cachedNodeBytes: Int { cache.cleanBytes }
    /// Directories can be read by name (format version 7).
    var hasNameIndex: Bool { tree.hasNameIndex }
}
