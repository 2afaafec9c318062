extension BTree {
    /// Inserts the item, or replaces the value of the item with that key.
    public func insert(_ key: TreeKey, _ value: [UInt8]) throws {
        guard value.count <= maxValueSize else { throw TreeError.valueTooLarge(size: value.count, limit: maxValueSize) }
        defer { noteMutation() }
        if case .empty = root {
            root = .dirty(TreeNode(leafKeys: [key], values: [value]))
            pin(1)
            return
        }
        var path = try mutablePath(to: key)
        let leaf = path[path.count - 1].step.node
        let (index, found) = leaf.search(key)
        if found { leaf.replaceValue(at: index, with: value) } else { leaf.insertItem(at: index, key: key, value: value) }
        try restoreBalance(along: &path)
    }

    /// Removes the item with this key; false if there was none (and then nothing is copied).
    @discardableResult
    public func remove(_ key: TreeKey) throws -> Bool {
        guard try lookup(key) != nil else { return false }
        defer { noteMutation() }
        var path = try mutablePath(to: key)
        let leaf = path[path.count - 1].step.node
        let (index, found) = leaf.search(key)
        // Lookup found it; a second descent that does not is a node read differently the second
        // time (evicted and changed on disk meanwhile): damage, not a broken invariant.
        guard found else {
            throw TreeError.corruptNode(address: leaf.location?.address ?? 0, reason: "key \(key) found by lookup is missing from its leaf")
        }
        leaf.removeItem(at: index)
        try restoreBalance(along: &path)
        return true
    }

    /// One level of a path being changed: a dirty node and which child the path goes through.
    struct PathLevel {
        var step: Step
        var childIndex: Int
    }

    /// The root-to-leaf path that holds (or would hold) `key`, every node on it made dirty.
    func mutablePath(to key: TreeKey) throws -> [PathLevel] {
        var step = Step(node: try mutableRoot(), upperBound: nil)
        var path: [PathLevel] = []
        while !step.node.isLeaf {
            let index = step.node.childIndex(for: key)
            path.append(PathLevel(step: step, childIndex: index))
            step = try mutableChild(of: step, at: index)
        }
        path.append(PathLevel(step: step, childIndex: 0))
        return path
    }

    /// After one item changed in the path's leaf: from the leaf up, an overfull node splits into
    /// its parent (a new root above the old one if need be), an underfull one merges with or takes
    /// from a sibling; each level's repair changes only its parent, which the next round looks at.
    /// Then a root left with one child gives way to it, and a root leaf left empty to nothing.
    private func restoreBalance(along path: inout [PathLevel]) throws {
        for depth in stride(from: path.count - 1, through: 0, by: -1) {
            let node = path[depth].step.node
            if node.usedBytes > capacity {
                let right = node.splitOff(from: splitPoint(node))
                pin(1)
                if depth == 0 {
                    root = .dirty(TreeNode(level: node.level + 1, keys: [.min, right.keys[0]],
                                           children: [.dirty(node), .dirty(right)]))
                    pin(1)
                } else {
                    let parent = path[depth - 1]
                    parent.step.node.insertChild(at: parent.childIndex + 1, key: right.keys[0], child: .dirty(right))
                }
            } else if depth > 0, node.usedBytes < minimumFill {
                try refill(child: path[depth - 1].childIndex, of: path[depth - 1].step)
            }
        }
        collapseRoot()
    }

    private func collapseRoot() {
        while case let .dirty(node) = root {
            if node.isLeaf {
                guard node.count == 0 else { return }
                root = .empty
            } else {
                guard node.count == 1 else { return }
                switch node.children[0] {
                case let .dirty(child): root = .dirty(child)
                case let .stored(address, generation):
                    root = .stored(TreeRoot(address: address, generation: generation, level: node.level - 1))
                }
            }
            pin(-1)
        }
    }

    /// Child `index` of the dirty `parent` is under a quarter full: merge it with a neighbour
    /// (always the right one into the left one) when both fit in one node, else share their items
    /// out evenly. The neighbour is a quarter full, so either way both results are too.
    private func refill(child index: Int, of parent: Step) throws {
        let leftIndex = index + 1 < parent.node.count ? index : index - 1
        guard leftIndex >= 0 else { return }  // an only child; the root collapse deals with it
        let left = try mutableChild(of: parent, at: leftIndex)
        let right = try child(of: parent, at: leftIndex + 1)
        if left.node.usedBytes + right.node.usedBytes <= capacity {
            left.node.append(contentsOf: right.node)
            discard(parent.node.children[leftIndex + 1])
            parent.node.removeItem(at: leftIndex + 1)
            return
        }
        let mutableRight = try mutableChild(of: parent, at: leftIndex + 1)
        left.node.append(contentsOf: mutableRight.node)
        let split = balancedSplit(left.node)
        let tail = left.node.splitOff(from: split)
        // The right node keeps its identity (and its parent slot); only its contents change.
        mutableRight.node.replaceContents(with: tail)
        parent.node.setKey(tail.keys[0], at: leftIndex + 1)
    }

    /// Where to cut an overfull `node`. Inserts running in ascending order
    /// (TreeNode.insertsAscend): right after the newest item, so that what comes before it stays
    /// in a node as full as it got (the run goes on filling the node it is in) and what comes
    /// after it keeps its own; within what keeps both halves a quarter full and fitting.
    /// Otherwise in the middle. Appending keys in order then leaves nodes about three quarters
    /// full instead of half (a quarter must go to the new node), as B-trees that detect
    /// sequential inserts do (InnoDB's page direction, SQLite's append balance).
    func splitPoint(_ node: TreeNode) -> Int {
        let balanced = balancedSplit(node)
        guard node.insertsAscend, let newest = node.lastInsert else { return balanced }
        let total = node.usedBytes
        // Cuts c (items 0..<c stay) whose halves both fit and are a quarter full form one range
        // around the balanced cut: walk out from it while the next cut still qualifies.
        func qualifies(_ cut: Int, leftBytes: Int) -> Bool {
            cut >= 1 && cut <= node.count - 1 && leftBytes >= minimumFill && leftBytes <= capacity
                && total - leftBytes >= minimumFill && total - leftBytes <= capacity
        }
        var leftBytes = 0
        for index in 0..<balanced { leftBytes += node.itemBytes(at: index) }
        var cut = balanced
        let wanted = newest + 1
        while cut < wanted, qualifies(cut + 1, leftBytes: leftBytes + node.itemBytes(at: cut)) {
            leftBytes += node.itemBytes(at: cut)
            cut += 1
        }
        while cut > wanted, qualifies(cut - 1, leftBytes: leftBytes - node.itemBytes(at: cut - 1)) {
            cut -= 1
            leftBytes -= node.itemBytes(at: cut)
        }
        return cut
    }

    /// Where to cut `node` so that the two halves are as even in bytes as possible, both non-empty.
    /// With every item at most a quarter of a node and the whole at most 1.25 nodes, both halves fit
    /// and, when the whole is over one node, both are over a quarter full.
    func balancedSplit(_ node: TreeNode) -> Int {
        let total = node.usedBytes
        var leftBytes = 0
        for index in 0..<node.count {
            let item = node.itemBytes(at: index)
            // Cut before this item if that is nearer the middle than cutting after it.
            if leftBytes + item > total / 2 {
                let cutBefore = total / 2 - leftBytes, cutAfter = leftBytes + item - total / 2
                let cut = cutBefore <= cutAfter ? index : index + 1
                return Swift.min(Swift.max(cut, 1), node.count - 1)
            }
            leftBytes += item
        }
        return Swift.max(node.count - 1, 1)
    }
}
