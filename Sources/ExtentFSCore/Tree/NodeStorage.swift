/// Where nodes live. Addresses are opaque to the tree: the engine passes block numbers (a node
/// spans nodeSize / blockSize blocks when blocks are small), the tests a counter.
public protocol NodeDevice: AnyObject {
    /// The size of every node, 512...65536; fixed for the life of a volume.
    var nodeSize: Int { get }
    /// Exactly nodeSize bytes. A short or long answer is reported as a damaged node, not trusted.
    func readNode(at address: UInt64) throws -> [UInt8]
    /// `bytes.count == nodeSize`. The tree writes only to addresses allocateNode() handed it since
    /// the last successful commit.
    func writeNode(_ bytes: [UInt8], at address: UInt64) throws
    /// A hint: these nodes will be read soon (a walk that knows a level's addresses before it
    /// reads them), so the device may start reading them all at once. Nothing is checked here.
    func prefetchNodes(at addresses: [UInt64])
}

extension NodeDevice {
    public func prefetchNodes(at addresses: [UInt64]) {}
}

/// Space for nodes.
///
/// The reuse contract: the tree calls `releaseNode` when a node that is on disk is replaced by a
/// copy or deleted (and for addresses it allocated during a commit that then failed). That address
/// is still reachable from the last committed root, which is what the superblock on disk points at,
/// so the allocator must not hand it out again until the *next* checkpoint (the one whose roots
/// no longer reach it) is durable. The allocator keeps released addresses pending and moves them
/// to free once that superblock is on stable storage. Under that contract the tree never writes
/// over anything the last commit's root can reach, and the previous checkpoint stays intact.
public protocol NodeAllocator: AnyObject {
    /// A fresh address; may throw Errno.noSpace. The tree calls it only from `commit`.
    func allocateNode() throws -> UInt64
    /// Each address is released exactly once.
    func releaseNode(_ address: UInt64)
}

/// What the superblock records for one tree: enough to check the root node as its parent would
/// check any other (level and generation are verified against the node's header).
public struct TreeRoot: Hashable, Sendable, CustomStringConvertible {
    public var address: UInt64
    public var generation: UInt64
    public var level: UInt8

    public init(address: UInt64, generation: UInt64, level: UInt8) {
        self.address = address
        self.generation = generation
        self.level = level
    }

    public var description: String { "root \(address) gen \(generation) level \(level)" }
}
