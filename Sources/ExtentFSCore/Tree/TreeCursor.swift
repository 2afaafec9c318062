/// A forward scan in key order over `start...end`. Each `next()` may read a node, so it throws;
/// Swift's Sequence cannot, hence a cursor (and `BTree.items`, which collects into an array).
///
/// The tree may change between calls (a scan that removes what it visits, say): the cursor then
/// finds its place again from the root, after the last key it returned, so it never sees a node
/// after the tree has copied it. After a thrown error it does the same on the next call.
///
/// The cursor holds its root-to-leaf path, so those nodes stay in memory while it lives even when
/// the cache evicts them: at most one path, the "pinned path" of the cache's budget.
public struct TreeCursor {
    private let tree: BTree
    private let end: TreeKey?
    /// For a leaf, the next item to return; for an internal node, the child the path goes through.
    private var path: [(step: BTree.Step, index: Int)] = []
    /// Where to continue from: the successor of the last key returned; nil when the scan is over.
    private var resumeKey: TreeKey?
    private var pathMutationCount: UInt64?

    init(tree: BTree, start: TreeKey, end: TreeKey?) {
        self.tree = tree
        self.end = end
        resumeKey = start
    }

    public mutating func next() throws -> TreeItem? {
        guard let resumeKey else { return nil }
        if let end, end < resumeKey { return finish() }
        do {
            if pathMutationCount != tree.mutationCount { try seek(resumeKey) }
            guard let item = try nextInPath() else { return finish() }
            if let end, end < item.key { return finish() }
            self.resumeKey = item.key.successor
            return item
        } catch {
            pathMutationCount = nil
            throw error
        }
    }

    private mutating func finish() -> TreeItem? {
        resumeKey = nil
        path = []
        return nil
    }

    private mutating func seek(_ key: TreeKey) throws {
        path = []
        pathMutationCount = tree.mutationCount
        guard var step = try tree.rootStep() else { return }
        while !step.node.isLeaf {
            let index = step.node.childIndex(for: key)
            path.append((step, index))
            step = try tree.child(of: step, at: index)
        }
        path.append((step, step.node.search(key).index))
    }

    private mutating func nextInPath() throws -> TreeItem? {
        while let leaf = path.last {
            if leaf.index < leaf.step.node.count {
                path[path.count - 1].index += 1
                return TreeItem(key: leaf.step.node.keys[leaf.index], value: leaf.step.node.values[leaf.index])
            }
            // The leaf is done: up to the nearest ancestor with a child to the right, then down
            // that child's leftmost path.
            path.removeLast()
            while let top = path.last, top.index + 1 >= top.step.node.count { path.removeLast() }
            guard !path.isEmpty else { return nil }
            path[path.count - 1].index += 1
            var (step, index) = path[path.count - 1]
            // Every key of that child is at or above its bound: past the end, it is not read
            // (a scan of one inode's items that ends at a leaf's end reads no further leaf).
            if let end, end < step.node.keys[index] { return nil }
            while true {
                let child = try tree.child(of: step, at: index)
                path.append((child, 0))
                if child.node.isLeaf { break }
                (step, index) = (child, 0)
            }
        }
        return nil
    }
}

extension BTree {
    /// The items with keys in `start...end` (end nil: to the last), in key order.
    public func cursor(from start: TreeKey = .min, through end: TreeKey? = nil) -> TreeCursor {
        TreeCursor(tree: self, start: start, end: end)
    }

    /// The items with keys in `start...end`, at most `limit` of them, collected.
    public func items(from start: TreeKey = .min, through end: TreeKey? = nil, limit: Int = .max) throws -> [TreeItem] {
        var cursor = cursor(from: start, through: end)
        var items: [TreeItem] = []
        while items.count < limit, let item = try cursor.next() { items.append(item) }
        return items
    }

    /// The item with the least key >= `key`.
    public func firstItem(atOrAbove key: TreeKey) throws -> TreeItem? {
        var cursor = cursor(from: key)
        return try cursor.next()
    }

    /// The item with the greatest key <= `key`: for an extent map keyed (inode, EXTENT, offset),
    /// the extent that starts at or before a logical offset. The caller checks the kind and object.
    public func lastItem(atOrBelow key: TreeKey) throws -> TreeItem? {
        guard var step = try rootStep() else { return nil }
        var path: [(step: Step, index: Int)] = []
        while !step.node.isLeaf {
            let index = step.node.childIndex(for: key)
            path.append((step, index))
            step = try child(of: step, at: index)
        }
        let (index, found) = step.node.search(key)
        if found || index > 0 {
            let at = found ? index : index - 1
            return TreeItem(key: step.node.keys[at], value: step.node.values[at])
        }
        // Everything in this leaf is above `key` (a leaf's first key may be above its lower
        // bound): the answer is the last item of the subtree just left of the path.
        while let (parent, index) = path.popLast() {
            guard index > 0 else { continue }
            var node = try child(of: parent, at: index - 1)
            while !node.node.isLeaf { node = try child(of: node, at: node.node.count - 1) }
            guard let last = node.node.keys.last, let value = node.node.values.last else { return nil }
            return TreeItem(key: last, value: value)
        }
        return nil
    }

    /// The item with the greatest key < `key`.
    public func lastItem(before key: TreeKey) throws -> TreeItem? {
        guard let predecessor = key.predecessor else { return nil }
        return try lastItem(atOrBelow: predecessor)
    }
}
