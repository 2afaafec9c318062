/// A copy-on-write B+tree of (TreeKey -> bytes) items, the one format behind every index of the
/// volume (docs/TREES.md).
///
/// Between commits, changed nodes live in memory as dirty copies; the nodes on disk are never
/// written again (their addresses go back to the allocator, which defers their reuse). `commit`
/// writes the dirty nodes, children first, to fresh addresses and returns the new root for the
/// superblock.
///
/// Not thread-safe and not Sendable: the caller serializes every call (the engine's metadata lock)
/// and keeps the device, allocator and cache to the same lock.
///
/// After an error other than `.valueTooLarge` (a read that failed, a damaged node), the tree is
/// still consistent in memory and can be committed, but the operation may or may not have taken
/// effect and a node may be left under a quarter full: the caller treats the volume's metadata as
/// damaged (shuts down or goes read-only), as XFS does on a metadata I/O error.
public final class BTree {
    enum Root {
        case empty
        case stored(TreeRoot)
        case dirty(TreeNode)
    }

    public let owner: UInt8
    public let nodeSize: Int
    /// The longest value an item may have: a quarter of a node's usable space less the slot.
    public let maxValueSize: Int
    let device: NodeDevice
    let allocator: NodeAllocator
    public let cache: NodeCache
    let minimumFill: Int
    let capacity: Int

    var root: Root
    /// The generation of the last commit (or of the root opened); the next must be above it.
    private(set) var committedGeneration: UInt64
    /// Dirty nodes reachable from the root; each is charged `nodeSize` to the cache.
    private(set) var dirtyNodeCount = 0
    /// Bumped by every change, so that a cursor notices that its path may be stale.
    private(set) var mutationCount: UInt64 = 0

    /// `root` is what the superblock recorded (nil: an empty tree). Nothing is read until used.
    public init(root: TreeRoot?, owner: UInt8, device: NodeDevice, allocator: NodeAllocator, cache: NodeCache) throws {
        guard NodeLayout.nodeSizes.contains(device.nodeSize) else { throw TreeError.unsupportedNodeSize(device.nodeSize) }
        self.owner = owner
        self.device = device
        self.allocator = allocator
        self.cache = cache
        nodeSize = device.nodeSize
        maxValueSize = NodeLayout.maxValueSize(nodeSize: nodeSize)
        minimumFill = NodeLayout.minimumFill(nodeSize: nodeSize)
        capacity = NodeLayout.usableBytes(nodeSize: nodeSize)
        self.root = root.map { .stored($0) } ?? .empty
        committedGeneration = root?.generation ?? 0
    }

    deinit {
        cache.pinnedBytes -= dirtyNodeCount * nodeSize
    }

    public static func maxValueSize(nodeSize: Int) -> Int { NodeLayout.maxValueSize(nodeSize: nodeSize) }

    public var isEmpty: Bool {
        if case .empty = root { return true }
        return false
    }

    /// True when something changed since the last commit (commit would write).
    public var hasChanges: Bool {
        if case .dirty = root { return true }
        return false
    }

    /// The root as of the last commit, or as opened; what the superblock holds. Meaningful as the
    /// tree's state only when `hasChanges` is false.
    public var committedRoot: TreeRoot? {
        if case let .stored(root) = root { return root }
        return nil
    }

    // MARK: lookups

    public func lookup(_ key: TreeKey) throws -> [UInt8]? {
        guard var step = try rootStep() else { return nil }
        while !step.node.isLeaf {
            step = try child(of: step, at: step.node.childIndex(for: key))
        }
        let (index, found) = step.node.search(key)
        return found ? step.node.values[index] : nil
    }

    // MARK: reading nodes

    /// A node with the exclusive upper bound of its range, which its children's ranges need.
    struct Step {
        let node: TreeNode
        let upperBound: TreeKey?
    }

    func rootStep() throws -> Step? {
        switch root {
        case .empty: return nil
        case let .dirty(node): return Step(node: node, upperBound: nil)
        case let .stored(stored):
            let expectation = NodeExpectation(owner: owner, level: stored.level, generation: stored.generation,
                                              lowerBound: .min, upperBound: nil)
            return Step(node: try load(stored.address, expecting: expectation), upperBound: nil)
        }
    }

    func childUpperBound(of step: Step, at index: Int) -> TreeKey? {
        index + 1 < step.node.count ? step.node.keys[index + 1] : step.upperBound
    }

    func child(of step: Step, at index: Int) throws -> Step {
        let upper = childUpperBound(of: step, at: index)
        switch step.node.children[index] {
        case let .dirty(node): return Step(node: node, upperBound: upper)
        case let .stored(address, generation):
            let expectation = NodeExpectation(owner: owner, level: step.node.level - 1, generation: generation,
                                              lowerBound: step.node.keys[index], upperBound: upper)
            return Step(node: try load(address, expecting: expectation), upperBound: upper)
        }
    }

    private func load(_ address: UInt64, expecting expectation: NodeExpectation) throws -> TreeNode {
        if let node = cache.node(at: address) {
            try NodeCodec.check(node, at: address, expecting: expectation)
            return node
        }
        let node = try NodeCodec.decode(try device.readNode(at: address), at: address, nodeSize: nodeSize,
                                        expecting: expectation)
        cache.insert(node, at: address, charge: nodeSize)
        return node
    }

    // MARK: copy-on-write

    /// The root, dirty. The tree must not be empty.
    func mutableRoot() throws -> TreeNode {
        switch root {
        case .empty: preconditionFailure("mutableRoot of an empty tree")
        case let .dirty(node): return node
        case let .stored(stored):
            guard let step = try rootStep() else { preconditionFailure("stored root vanished") }
            let copy = step.node.copy()
            retire(stored.address)
            root = .dirty(copy)
            pin(1)
            return copy
        }
    }

    /// Child `index` of a dirty node, made dirty: the path to every change is copied, up to the root.
    func mutableChild(of step: Step, at index: Int) throws -> Step {
        let current = try child(of: step, at: index)
        guard let location = current.node.location else { return current }
        let copy = current.node.copy()
        retire(location.address)
        step.node.children[index] = .dirty(copy)
        pin(1)
        return Step(node: copy, upperBound: current.upperBound)
    }

    /// A node on disk is no longer part of the tree. Its address stays untouched until the
    /// allocator frees it after the next durable checkpoint (NodeAllocator's contract).
    func retire(_ address: UInt64) {
        cache.remove(address)
        allocator.releaseNode(address)
    }

    /// A child reference is dropped from the tree (merged away).
    func discard(_ ref: NodeRef) {
        switch ref {
        case let .stored(address, _): retire(address)
        case .dirty: pin(-1)
        }
    }

    func pin(_ nodes: Int) {
        dirtyNodeCount += nodes
        cache.pinnedBytes += nodes * nodeSize
    }

    func noteMutation() { mutationCount &+= 1 }

    func setCommitted(_ generation: UInt64) { committedGeneration = generation }
}

@available(*, unavailable, message: "BTree is used under the caller's lock; it is not Sendable")
extension BTree: Sendable {}
