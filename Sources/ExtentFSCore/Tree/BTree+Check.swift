/// What a full walk of a tree found, for fsck and the tests.
public struct TreeCheckReport: Sendable {
    public var items = 0
    public var nodes = 0
    /// Levels, leaves included; 0 for an empty tree.
    public var height = 0
    /// Every address the tree's nodes occupy on disk (dirty nodes have none yet).
    public var storedAddresses: [UInt64] = []
    public var dirtyNodes = 0
    /// Nodes other than the root with less than a quarter of their space used. The tree keeps
    /// none, except after an error while it was rebalancing; fsck reports them as a warning.
    public var underfilledNodes = 0
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
        if step.node.location == nil { report.dirtyNodes += 1 }
        if !isRoot, step.node.usedBytes < minimumFill { report.underfilledNodes += 1 }
        if step.node.isLeaf {
            report.items += step.node.count
            return
        }
        for index in 0..<step.node.count {
            if case let .stored(address, _) = step.node.children[index] { report.storedAddresses.append(address) }
            try walk(try child(of: step, at: index), isRoot: false, report: &report)
        }
    }

    /// Dirty nodes the tree holds in memory until the next commit (each charged nodeSize to the cache).
    public var dirtyNodes: Int { dirtyNodeCount }
}
