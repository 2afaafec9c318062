/// What a full walk of a tree found, for fsck and the tests.
public struct TreeCheckReport: Sendable {
    public var items = 0
    public var nodes = 0
    /// Nodes above the leaves.
    public var internalNodes = 0
    /// Levels, leaves included; 0 for an empty tree.
    public var height = 0
    /// Every address the tree's nodes occupy on disk (dirty nodes have none yet).
    public var storedAddresses: [UInt64] = []
    public var dirtyNodes = 0
    /// Nodes other than the root with less than a quarter of their space used. The tree keeps
    /// none, except after an error while it was rebalancing; fsck reports them as a warning.
    public var underfilledNodes = 0
    /// Slot and value bytes over every node, against `nodes` times a node's usable bytes: how
    /// full the tree is (splits and merges decide it; a copy-on-write commit does not change it).
    public var usedBytes = 0
    public var usableBytes = 0
    public var fill: Double { usableBytes == 0 ? 0 : Double(usedBytes) / Double(usableBytes) }

    public init() {}
}

extension BTree {
    /// Reads every node (each checked as any read is) and counts. Structural damage throws as
    /// reads do; underfill is counted, not thrown, as it costs space, not correctness.
    public func check() throws -> TreeCheckReport {
        var report = TreeCheckReport()
        guard let rootStep = try rootStep() else { return report }
        report.height = Int(rootStep.node.level) + 1
        if case let .stored(stored) = root { report.storedAddresses.append(stored.address) }
        try walk(rootStep, isRoot: true, report: &report)
        return report
    }

    private func walk(_ step: Step, isRoot: Bool, report: inout TreeCheckReport) throws {
        report.nodes += 1
        report.usedBytes += step.node.usedBytes
        report.usableBytes += capacity
        if step.node.location == nil { report.dirtyNodes += 1 }
        if !isRoot, step.node.usedBytes < minimumFill { report.underfilledNodes += 1 }
        if step.node.isLeaf {
            report.items += step.node.count
            return
        }
        report.internalNodes += 1
        for index in 0..<step.node.count {
            if case let .stored(address, _) = step.node.children[index] { report.storedAddresses.append(address) }
            try walk(try child(of: step, at: index), isRoot: false, report: &report)
        }
    }

    /// Dirty nodes the tree holds in memory until the next commit (each charged nodeSize to the cache).
    public var dirtyNodes: Int { dirtyNodeCount }
}

extension BTree {
    /// The addresses of every stored node, reading only internal nodes (a leaf's address is in its
    /// parent): what a mount needs to keep the tree's blocks out of free space, at about one read
    /// in a fanout's worth of a full walk. Each node read is checked as any read is; a node reached
    /// twice throws (a tree is not a graph), so a damaged tree cannot make the walk loop or repeat.
    public func storedNodeAddresses() throws -> [UInt64] {
        guard let rootStep = try rootStep() else { return [] }
        var addresses: [UInt64] = []
        var seen = Set<UInt64>()
        func note(_ address: UInt64) throws {
            guard seen.insert(address).inserted else { throw TreeError.corruptNode(address: address, reason: "reached twice") }
            addresses.append(address)
        }
        if case let .stored(stored) = root { try note(stored.address) }
        var stack = [rootStep]
        while let step = stack.popLast() {
            guard !step.node.isLeaf else { continue }
            // The children about to be read, all at once: mount's cost is their reads' latency.
            if step.node.level > 1 {
                device.prefetchNodes(at: (0..<step.node.count).compactMap {
                    if case let .stored(address, _) = step.node.children[$0] { return address }
                    return nil
                })
            }
            for index in 0..<step.node.count {
                if case let .stored(address, _) = step.node.children[index] { try note(address) }
                if step.node.level > 1 { stack.append(try child(of: step, at: index)) }
            }
        }
        return addresses
    }

    /// Reads internal nodes into the cache from the root down, a level at a time (each level's
    /// reads started together), at most `limit` of them: a mount that needs no node addresses
    /// (format version 10) still starts with the top of the tree cached, in a time that does
    /// not grow with the tree.
    public func readTopNodes(limit: Int) throws {
        guard var level = try rootStep().map({ [$0] }) else { return }
        var read = 1
        while read < limit {
            let wanted = level.filter { $0.node.level > 1 }.flatMap { parent in (0..<parent.node.count).map { (parent, $0) } }
                .prefix(limit - read)
            guard !wanted.isEmpty else { return }
            device.prefetchNodes(at: wanted.compactMap { parent, index in
                if case let .stored(address, _) = parent.node.children[index] { return address }
                return nil
            })
            level = try wanted.map { try child(of: $0.0, at: $0.1) }
            read += wanted.count
        }
    }
}
