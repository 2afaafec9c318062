/// What a parent (or, for the root, the superblock) says about a child before it is read. Every
/// read node is checked against it, so a misplaced, stale or foreign node is an error.
struct NodeExpectation {
    var owner: UInt8
    var level: UInt8
    var generation: UInt64
    /// Inclusive; an internal node's first key must equal it.
    var lowerBound: TreeKey
    /// Exclusive; nil for the rightmost path.
    var upperBound: TreeKey?
}

enum NodeCodec {
    static func encode(_ node: TreeNode, owner: UInt8, generation: UInt64, address: UInt64, nodeSize: Int,
                       childLocation: (NodeRef) -> (address: UInt64, generation: UInt64)) -> [UInt8] {
        precondition(NodeLayout.headerSize + node.usedBytes <= nodeSize, "an overfull node reached the encoder")
        var bytes = [UInt8](repeating: 0, count: nodeSize)
        put(NodeLayout.magic, at: 0, in: &bytes)
        bytes[8] = owner
        bytes[9] = node.level
        put(UInt16(node.count), at: 10, in: &bytes)
        put(generation, at: 16, in: &bytes)
        put(address, at: 24, in: &bytes)
        var slot = NodeLayout.headerSize
        if node.isLeaf {
            var valueEnd = nodeSize
            for index in 0..<node.count {
                let value = node.values[index]
                let valueStart = valueEnd - value.count
                putKey(node.keys[index], at: slot, in: &bytes)
                put(UInt32(valueStart), at: slot + 17, in: &bytes)
                put(UInt16(value.count), at: slot + 21, in: &bytes)
                bytes.replaceSubrange(valueStart..<valueEnd, with: value)
                valueEnd = valueStart
                slot += NodeLayout.leafSlotSize
            }
        } else {
            for index in 0..<node.count {
                let child = childLocation(node.children[index])
                putKey(node.keys[index], at: slot, in: &bytes)
                put(child.address, at: slot + 17, in: &bytes)
                put(child.generation, at: slot + 25, in: &bytes)
                slot += NodeLayout.internalSlotSize
            }
        }
        put(checksum(bytes), at: 4, in: &bytes)
        return bytes
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[NodeLayout.checksummedFrom...])) }
    }

    /// Checks everything before building anything: the caller gets a node that satisfies every
    /// invariant the tree relies on when reading, or a `TreeError.corruptNode`. No value read from
    /// the bytes reaches an index or an arithmetic operation before it has been range-checked.
    static func decode(_ bytes: [UInt8], at address: UInt64, nodeSize: Int, expecting expected: NodeExpectation) throws -> TreeNode {
        func corrupt(_ reason: String) -> TreeError { .corruptNode(address: address, reason: reason) }
        guard bytes.count == nodeSize else { throw corrupt("read \(bytes.count) bytes, not \(nodeSize)") }
        guard u32(bytes, 0) == NodeLayout.magic else { throw corrupt("bad magic") }
        guard u32(bytes, 4) == checksum(bytes) else { throw corrupt("checksum mismatch") }
        let owner = bytes[8], level = bytes[9], count = Int(u16(bytes, 10))
        let generation = u64(bytes, 16)
        guard owner == expected.owner else { throw corrupt("belongs to tree \(owner), not \(expected.owner)") }
        guard level == expected.level else { throw corrupt("level \(level), expected \(expected.level)") }
        guard level <= NodeLayout.maxLevel else { throw corrupt("level \(level) is beyond any real tree") }
        guard u32(bytes, 12) == 0 else { throw corrupt("unknown flags") }
        guard generation == expected.generation else {
            throw corrupt("generation \(generation), expected \(expected.generation) (stale or misplaced)")
        }
        guard u64(bytes, 24) == address else { throw corrupt("written for address \(u64(bytes, 24))") }

        let slotSize = level == 0 ? NodeLayout.leafSlotSize : NodeLayout.internalSlotSize
        let slotsEnd = NodeLayout.headerSize + count * slotSize  // count <= 65535: no overflow
        guard slotsEnd <= nodeSize else { throw corrupt("\(count) slots do not fit") }
        // The tree never leaves an empty leaf (an empty tree has no root) nor an internal node
        // with one child (the root collapses, and other nodes stay a quarter full).
        guard count >= (level == 0 ? 1 : 2) else { throw corrupt("\(count) items at level \(level)") }

        var keys: [TreeKey] = []
        keys.reserveCapacity(count)
        for index in 0..<count {
            let key = readKey(bytes, NodeLayout.headerSize + index * slotSize)
            if let previous = keys.last, !(previous < key) { throw corrupt("keys out of order at slot \(index)") }
            keys.append(key)
        }
        if let upper = expected.upperBound, let last = keys.last, !(last < upper) {
            throw corrupt("key \(last) at or above the parent's bound \(upper)")
        }

        let node: TreeNode
        if level == 0 {
            guard let first = keys.first, !(first < expected.lowerBound) else {
                throw corrupt("key below the parent's bound \(expected.lowerBound)")
            }
            let maxValue = NodeLayout.maxValueSize(nodeSize: nodeSize)
            var values: [[UInt8]] = []
            values.reserveCapacity(count)
            var valueEnd = nodeSize
            for index in 0..<count {
                let slot = NodeLayout.headerSize + index * slotSize
                let offset = Int(u32(bytes, slot + 17)), length = Int(u16(bytes, slot + 21))
                guard length <= maxValue else { throw corrupt("value \(index) of \(length) bytes exceeds \(maxValue)") }
                guard offset == valueEnd - length, offset >= slotsEnd else {
                    throw corrupt("value \(index) at \(offset)+\(length) is not packed after \(valueEnd)")
                }
                values.append(Array(bytes[offset..<valueEnd]))
                valueEnd = offset
            }
            node = TreeNode(leafKeys: keys, values: values)
        } else {
            guard keys.first == expected.lowerBound else {
                throw corrupt("first key is not the parent's bound \(expected.lowerBound)")
            }
            var children: [NodeRef] = []
            children.reserveCapacity(count)
            for index in 0..<count {
                let slot = NodeLayout.headerSize + index * slotSize
                let childGeneration = u64(bytes, slot + 25)
                guard childGeneration <= generation else {
                    throw corrupt("child \(index) has generation \(childGeneration), newer than its parent's")
                }
                children.append(.stored(address: u64(bytes, slot + 17), generation: childGeneration))
            }
            node = TreeNode(level: level, keys: keys, children: children)
        }
        node.location = (address, generation)
        node.owner = owner
        return node
    }

    /// The same checks against a node already decoded (a cache hit), as far as they depend on who
    /// asks: O(1), since the node's own order was checked when it was decoded.
    static func check(_ node: TreeNode, at address: UInt64, expecting expected: NodeExpectation) throws {
        func corrupt(_ reason: String) -> TreeError { .corruptNode(address: address, reason: reason) }
        guard node.owner == expected.owner else { throw corrupt("belongs to tree \(node.owner), not \(expected.owner)") }
        guard node.level == expected.level else { throw corrupt("level \(node.level), expected \(expected.level)") }
        guard node.location?.generation == expected.generation else { throw corrupt("generation differs from the parent's record") }
        guard let first = node.keys.first, let last = node.keys.last else { throw corrupt("empty") }
        if node.isLeaf {
            guard !(first < expected.lowerBound) else { throw corrupt("key below the parent's bound") }
        } else {
            guard first == expected.lowerBound else { throw corrupt("first key is not the parent's bound") }
        }
        if let upper = expected.upperBound, !(last < upper) { throw corrupt("key at or above the parent's bound") }
    }

    // MARK: little-endian fields
    // Concrete and unaligned loads rather than a generic byte loop: decoding is on every cache
    // miss, and unspecialized generic arithmetic is slow in debug builds. The preconditions are the
    // last line of defence; callers have range-checked every offset that came from the disk.

    private static func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout [UInt8]) {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= bytes.count)
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self) }
    }

    private static func putKey(_ key: TreeKey, at offset: Int, in bytes: inout [UInt8]) {
        put(key.object, at: offset, in: &bytes)
        bytes[offset + 8] = key.kind
        put(key.offset, at: offset + 9, in: &bytes)
    }

    private static func u16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        precondition(offset >= 0 && offset + 2 <= bytes.count)
        return bytes.withUnsafeBytes { UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt16.self)) }
    }

    private static func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        precondition(offset >= 0 && offset + 4 <= bytes.count)
        return bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    }

    private static func u64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        precondition(offset >= 0 && offset + 8 <= bytes.count)
        return bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    }

    private static func readKey(_ bytes: [UInt8], _ offset: Int) -> TreeKey {
        TreeKey(object: u64(bytes, offset), kind: bytes[offset + 8], offset: u64(bytes, offset + 9))
    }
}
