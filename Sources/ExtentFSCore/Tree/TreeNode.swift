/// A child pointer: on disk (checked against the child's header when read) or a dirty node that
/// exists only in memory until the next commit.
enum NodeRef {
    case stored(address: UInt64, generation: UInt64)
    case dirty(TreeNode)
}

/// A node decoded. Invariants:
/// - a clean node (`location != nil`) is exactly what is on disk at that address and is never
///   mutated: the cache and any cursor may share it. Changing it means copying it (copy-on-write);
/// - a dirty node (`location == nil`) is reachable only through its parent's `.dirty` reference
///   (or the tree's root) and is mutated in place;
/// - leaves use `keys` and `values`, internal nodes `keys` and `children`, index for index.
final class TreeNode {
    let level: UInt8
    private(set) var keys: [TreeKey]
    private(set) var values: [[UInt8]]
    var children: [NodeRef]
    /// Sum of the leaf's value lengths, so that `usedBytes` costs nothing.
    private(set) var valueBytes: Int
    /// Address and generation once on disk; nil while dirty.
    var location: (address: UInt64, generation: UInt64)?
    /// The tree it was read for or written by, so that a cache shared by several trees still
    /// notices one tree's pointer into another's node.
    var owner: UInt8 = 0
    /// Where the newest insert into this dirty node went, and whether inserts run in ascending
    /// key order here: it went right after the one before it, or to the node's end. New inodes
    /// (at the tree's end) and a directory's new entries (cookies in order) arrive that way; a
    /// split then cuts right after the run (`BTree.splitPoint`), so the nodes behind the run stay
    /// full instead of half full. In memory only: a copy, a merge or a refill starts without it.
    private(set) var lastInsert: Int?
    private(set) var insertsAscend = false

    var isLeaf: Bool { level == 0 }
    var count: Int { keys.count }

    /// Slot and value bytes, the quantity that overflow and underflow are measured in.
    var usedBytes: Int {
        isLeaf ? keys.count * NodeLayout.leafSlotSize + valueBytes : keys.count * NodeLayout.internalSlotSize
    }

    init(leafKeys keys: [TreeKey], values: [[UInt8]]) {
        level = 0
        self.keys = keys
        self.values = values
        children = []
        valueBytes = values.reduce(0) { $0 + $1.count }
    }

    init(level: UInt8, keys: [TreeKey], children: [NodeRef]) {
        self.level = level
        self.keys = keys
        values = []
        self.children = children
        valueBytes = 0
    }

    /// A dirty copy, the copy-on-write step.
    func copy() -> TreeNode {
        isLeaf ? TreeNode(leafKeys: keys, values: values) : TreeNode(level: level, keys: keys, children: children)
    }

    /// Leaf: the index of `key`, or where it would go.
    func search(_ key: TreeKey) -> (index: Int, found: Bool) {
        var low = 0, high = keys.count
        while low < high {
            let middle = (low + high) / 2
            if keys[middle] < key { low = middle + 1 } else { high = middle }
        }
        return (low, low < keys.count && keys[low] == key)
    }

    /// Internal: the child whose range holds `key`, the last whose lower bound is <= key. Slot 0's
    /// bound is the node's own, so a key within the node's range always has one.
    func childIndex(for key: TreeKey) -> Int {
        let (index, found) = search(key)
        return found ? index : Swift.max(index - 1, 0)
    }

    // MARK: mutation of dirty nodes

    func insertItem(at index: Int, key: TreeKey, value: [UInt8]) {
        keys.insert(key, at: index)
        values.insert(value, at: index)
        valueBytes += value.count
        noteInsert(at: index)
    }

    private func noteInsert(at index: Int) {
        insertsAscend = index == keys.count - 1 || lastInsert.map { index == $0 + 1 } ?? false
        lastInsert = index
    }

    func replaceValue(at index: Int, with value: [UInt8]) {
        valueBytes += value.count - values[index].count
        values[index] = value
    }

    func removeItem(at index: Int) {
        keys.remove(at: index)
        if isLeaf { valueBytes -= values.remove(at: index).count } else { children.remove(at: index) }
    }

    func insertChild(at index: Int, key: TreeKey, child: NodeRef) {
        keys.insert(key, at: index)
        children.insert(child, at: index)
        noteInsert(at: index)
    }

    func setKey(_ key: TreeKey, at index: Int) { keys[index] = key }

    /// Moves items from `index` on into a new node, which is returned (with the insert history,
    /// if the newest insert moved with them).
    func splitOff(from index: Int) -> TreeNode {
        let right = isLeaf
            ? TreeNode(leafKeys: Array(keys[index...]), values: Array(values[index...]))
            : TreeNode(level: level, keys: Array(keys[index...]), children: Array(children[index...]))
        if let lastInsert, lastInsert >= index {
            right.lastInsert = lastInsert - index
            right.insertsAscend = insertsAscend
            self.lastInsert = nil
            insertsAscend = false
        }
        keys.removeSubrange(index...)
        if isLeaf {
            values.removeSubrange(index...)
            valueBytes -= right.valueBytes
        } else {
            children.removeSubrange(index...)
        }
        return right
    }

    /// Appends every item of `right` (the next sibling, whose keys are all greater).
    func append(contentsOf right: TreeNode) {
        keys += right.keys
        if isLeaf {
            values += right.values
            valueBytes += right.valueBytes
        } else {
            children += right.children
        }
    }

    /// Takes over another dirty node's items (which it then must not be used for anything else).
    func replaceContents(with other: TreeNode) {
        precondition(other.level == level)
        keys = other.keys
        values = other.values
        children = other.children
        valueBytes = other.valueBytes
        lastInsert = nil
        insertsAscend = false
    }

    /// The bytes item `index` takes in a node, for choosing where to split.
    func itemBytes(at index: Int) -> Int {
        isLeaf ? NodeLayout.leafSlotSize + values[index].count : NodeLayout.internalSlotSize
    }
}
