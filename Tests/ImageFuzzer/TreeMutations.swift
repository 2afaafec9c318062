/// The crafted damage to a version 4 image's metadata tree: one header field, slot, child
/// pointer, value or item of a node, with the node's checksum resealed, so that only the value is
/// hostile and what stands between it and the engine is the node decoder's checks (docs/TREES.md)
/// and the loader's (an inode's pieces, the reference counts, the next inode number).
extension Mutator {
    mutating func mutateTree(_ kind: Kind, _ image: inout [UInt8], _ tree: TreeLayout) -> String {
        let parents = tree.nodes.filter { !$0.isLeaf && $0.slotCount > 0 }
        let leaves = tree.nodes.filter { $0.isLeaf && $0.slotCount > 0 }
        switch kind {
        case .nodeHeader:
            return nodeHeader(&image, tree)
        case .slotKey:
            let nodes = tree.nodes.filter { $0.slotCount > 0 }
            guard !nodes.isEmpty else { return nodeHeader(&image, tree) }
            return slotKey(&image, nodes[random.below(nodes.count)])
        case .childPointer:
            // Small images at large blocks have a tree of one leaf: nothing points at a child.
            guard !parents.isEmpty else { return nodeHeader(&image, tree) }
            return childPointer(&image, parents[random.below(parents.count)], tree)
        case .valueSlot:
            guard !leaves.isEmpty else { return nodeHeader(&image, tree) }
            return valueSlot(&image, leaves[random.below(leaves.count)])
        case .inodeField:
            return inodeField(&image, tree)
        case .itemValue:
            return itemValue(&image, tree)
        case .leafItems:
            guard !leaves.isEmpty else { return nodeHeader(&image, tree) }
            return leafItems(&image, leaves[random.below(leaves.count)])
        default:
            return nodeHeader(&image, tree)
        }
    }

    /// A value near `current` (off by one either way), or one of value()'s.
    private mutating func near(_ current: UInt64) -> UInt64 {
        switch random.below(3) {
        case 0: return current &+ 1
        case 1: return current &- 1
        default: return value()
        }
    }

    private mutating func nodeHeader(_ image: inout [UInt8], _ tree: TreeLayout) -> String {
        guard !tree.nodes.isEmpty else { return "no tree node to change" }
        let node = tree.nodes[random.below(tree.nodes.count)]
        let field = TreeLayout.HeaderField.allCases[random.below(TreeLayout.HeaderField.allCases.count)]
        let current = ImageLayout.read(image, node.offset + field.offset, field.width)
        var newValue: UInt64
        switch field {
        case .address, .generation:
            // Another node's, so that only this check (not a neighbour of it) can notice.
            let other = tree.nodes[random.below(tree.nodes.count)]
            newValue = random.chance(0.4) ? (field == .address ? other.address : other.generation) : near(current)
        case .level, .count, .owner:
            newValue = random.chance(0.6) ? near(current) : value()
        default:
            newValue = value()
        }
        ImageLayout.write(newValue, width: field.width, into: &image, at: node.offset + field.offset)
        // A changed checksum stays as changed: that is the damage.
        if field != .checksum { TreeLayout.seal(&image, node) }
        return "node \(node.address) header \(field) = \(newValue) (was \(current))"
    }

    private mutating func slotKey(_ image: inout [UInt8], _ node: TreeLayout.Node) -> String {
        let slot = random.below(node.slotCount)
        let at = node.slot(slot)
        var key = TreeLayout.key(image, at)
        let neighbour = slot + 1 < node.slotCount ? slot + 1 : slot - 1
        let description: String
        switch random.below(5) {
        case 0 where neighbour >= 0:
            key = TreeLayout.key(image, node.slot(neighbour))
            description = "equal to slot \(neighbour)'s"
        case 1 where neighbour >= 0:
            let other = TreeLayout.key(image, node.slot(neighbour))
            TreeLayout.writeKey(key, into: &image, at: node.slot(neighbour))
            key = other
            description = "swapped with slot \(neighbour)'s"
        case 2:
            key.object = near(key.object)
            description = "object"
        case 3:
            key.kind = UInt8(truncatingIfNeeded: random.chance(0.5) ? near(UInt64(key.kind)) : UInt64(random.below(256)))
            description = "kind"
        default:
            key.offset = near(key.offset)
            description = "offset"
        }
        TreeLayout.writeKey(key, into: &image, at: at)
        TreeLayout.seal(&image, node)
        return "node \(node.address) slot \(slot) key \(description): \(key)"
    }

    /// A child address at the node itself or an ancestor (a cycle), at another node of the tree,
    /// outside the volume, or anywhere; sometimes with the generation the target really has, so
    /// that the level and key-range checks are what must catch it.
    private mutating func childPointer(_ image: inout [UInt8], _ node: TreeLayout.Node, _ tree: TreeLayout) -> String {
        let slot = random.below(node.slotCount)
        let at = node.slot(slot)
        let blocks = UInt64(image.count / node.size)
        var target: TreeLayout.Node?
        var address: UInt64
        var what: String
        switch random.below(6) {
        case 0:
            target = node
            address = node.address
            what = "itself"
        case 1 where !node.ancestors.isEmpty:
            address = node.ancestors[random.below(node.ancestors.count)]
            target = tree.nodes.first { $0.address == address }
            what = "an ancestor"
        case 2:
            let other = tree.nodes[random.below(tree.nodes.count)]
            target = other
            address = other.address
            what = "another node"
        case 3:
            address = blocks &+ UInt64(random.below(3))
            what = "past the volume's end"
        case 4:
            address = UInt64(random.below(16))
            what = "the superblocks or the log"
        default:
            address = value()
            what = "anywhere"
        }
        if random.chance(0.2) {
            // The address stays; the generation changes.
            let generation = near(ImageLayout.read(image, at + 25, 8))
            ImageLayout.write(generation, width: 8, into: &image, at: at + 25)
            TreeLayout.seal(&image, node)
            return "node \(node.address) child \(slot) generation = \(generation)"
        }
        ImageLayout.write(address, width: 8, into: &image, at: at + 17)
        if let target, random.chance(0.7) {
            ImageLayout.write(target.generation, width: 8, into: &image, at: at + 25)
        }
        TreeLayout.seal(&image, node)
        return "node \(node.address) child \(slot) address = \(address) (\(what))"
    }

    private mutating func valueSlot(_ image: inout [UInt8], _ node: TreeLayout.Node) -> String {
        let slot = random.below(node.slotCount)
        let at = node.slot(slot)
        let (offset, width, name) = random.chance(0.5) ? (17, 4, "offset") : (21, 2, "length")
        let current = ImageLayout.read(image, at + offset, width)
        let newValue = random.chance(0.6) ? near(current) : value()
        ImageLayout.write(newValue, width: width, into: &image, at: at + offset)
        TreeLayout.seal(&image, node)
        return "node \(node.address) slot \(slot) value \(name) = \(newValue) (was \(current))"
    }

    /// One field of an inode's encoded image, across its pieces, each node it touches resealed.
    private mutating func inodeField(_ image: inout [UInt8], _ tree: TreeLayout) -> String {
        let images = tree.inodeImages
        guard !images.isEmpty else { return itemValue(&image, tree) }
        let (ino, pieces) = images[random.below(images.count)]
        let bytes = pieces.flatMap { image[$0] }
        let fields = InodeFields.parse(bytes)
        guard !fields.isEmpty else { return itemValue(&image, tree) }
        let field = fields[random.below(fields.count)]
        let current = ImageLayout.read(bytes, field.offset, field.width)
        let newValue = random.chance(0.3) ? near(current) : value()
        var touched: [Int: TreeLayout.Node] = [:]
        for index in 0..<field.width {
            guard let offset = Self.imageOffset(of: field.offset + index, in: pieces) else { continue }
            image[offset] = UInt8(truncatingIfNeeded: newValue >> (8 * UInt64(index)))
            if let node = tree.node(containing: offset) { touched[node.offset] = node }
        }
        for node in touched.values { TreeLayout.seal(&image, node) }
        return "inode \(ino) \(field.name) = \(newValue) (was \(current))"
    }

    static func imageOffset(of position: Int, in pieces: [Range<Int>]) -> Int? {
        var skipped = 0
        for piece in pieces {
            if position < skipped + piece.count { return piece.lowerBound + position - skipped }
            skipped += piece.count
        }
        return nil
    }

    /// A value's bytes: mostly a reference count's, a file extent's or a volume item's fields or
    /// the next inode number, which have no decoder of their own to stop them.
    private mutating func itemValue(_ image: inout [UInt8], _ tree: TreeLayout) -> String {
        let references = tree.referenceCountItems
        let next = tree.items.filter { $0.key.object == 0 && $0.key.kind == TreeLayout.nextInodeKind }
        let extents = tree.fileExtentItems
        let fielded = references + next + extents + tree.volumeItems.filter { !$0.value.isEmpty }
        let pool = random.chance(0.6) && !fielded.isEmpty ? fielded : tree.items
        guard !pool.isEmpty else { return "no item to change" }
        let item = pool[random.below(pool.count)]
        guard !item.value.isEmpty, let node = tree.node(containing: item.value.lowerBound) else { return "an empty value" }
        let (position, width): (Int, Int)
        if item.key.kind == TreeLayout.referenceCountKind, item.key.object == 0, item.value.count == 12 {
            (position, width) = random.chance(0.5) ? (0, 8) : (8, 4)
        } else if item.key.kind == TreeLayout.fileExtentKind, item.key.object != 0, item.value.count == 17 {
            (position, width) = [(0, 8), (8, 8), (16, 1)][random.below(3)]
        } else if item.key.kind == TreeLayout.volumeCountsKind, item.key.object == 0, item.value.count == 16 {
            (position, width) = random.chance(0.5) ? (0, 8) : (8, 8)
        } else if item.key.kind == TreeLayout.fileBlocksKind, item.key.object == 0, item.value.count == 8 {
            (position, width) = (0, 8)
        } else {
            position = random.below(item.value.count)
            width = min(self.width(), item.value.count - position)
        }
        let current = ImageLayout.read(image, item.value.lowerBound + position, width)
        let newValue = random.chance(0.4) ? near(current) : value()
        ImageLayout.write(newValue, width: width, into: &image, at: item.value.lowerBound + position)
        TreeLayout.seal(&image, node)
        return "item \(item.key) value byte \(position) = \(newValue) (\(width) bytes, was \(current))"
    }

    /// A leaf rewritten with one item dropped, duplicated under the next key, moved to another
    /// key or kind, or with its value longer or shorter; packed as the format requires and
    /// resealed, so that every node check passes and the loader's checks are what must catch it:
    /// a missing next inode number, a gap in an inode's pieces or bytes after its image,
    /// overlapping reference counts, an item of unknown kind.
    private mutating func leafItems(_ image: inout [UInt8], _ node: TreeLayout.Node) -> String {
        var items: [(key: TreeLayout.Key, value: [UInt8])] = []
        for slot in 0..<node.slotCount {
            let at = node.slot(slot)
            let offset = Int(ImageLayout.read(image, at + 17, 4)), length = Int(ImageLayout.read(image, at + 21, 2))
            guard offset >= TreeLayout.headerSize, offset + length <= node.size else { return "leaf \(node.address) is not intact" }
            items.append((TreeLayout.key(image, at), Array(image[node.offset + offset..<node.offset + offset + length])))
        }
        let index = random.below(items.count)
        let description: String
        switch random.below(6) {
        case 0:
            description = "item \(items[index].key) dropped"
            items.remove(at: index)
        case 1:
            var copy = items[index]
            copy.key.offset &+= 1
            items.insert(copy, at: index + 1)
            description = "item \(items[index].key) duplicated at \(copy.key)"
        case 2:
            items[index].key.offset = near(items[index].key.offset)
            description = "item \(index) moved to \(items[index].key)"
        case 3:
            items[index].key.kind = UInt8(truncatingIfNeeded: random.below(256))
            description = "item \(index) is now \(items[index].key)"
        case 4:
            let extra = 1 + random.below(16)
            items[index].value += (0..<extra).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            description = "item \(items[index].key) value \(extra) bytes longer"
        default:
            let cut = min(items[index].value.count, 1 + random.below(16))
            items[index].value.removeLast(cut)
            description = "item \(items[index].key) value \(cut) bytes shorter"
        }
        guard Self.rewriteLeaf(&image, node, items) else { return "leaf \(node.address): \(description) did not fit" }
        return "leaf \(node.address): \(description)"
    }

    /// The leaf's slots and values replaced by `items` as docs/TREES.md packs them (values from
    /// the node's end down, slot 0's last), its header kept but the count, and resealed.
    static func rewriteLeaf(_ image: inout [UInt8], _ node: TreeLayout.Node, _ items: [(key: TreeLayout.Key, value: [UInt8])]) -> Bool {
        let used = items.reduce(TreeLayout.headerSize) { $0 + TreeLayout.leafSlotSize + $1.value.count }
        guard used <= node.size, items.count <= Int(UInt16.max) else { return false }
        image.replaceSubrange(node.offset + TreeLayout.headerSize..<node.offset + node.size,
                              with: repeatElement(0, count: node.size - TreeLayout.headerSize))
        ImageLayout.write(UInt64(items.count), width: 2, into: &image, at: node.offset + 10)
        var valueEnd = node.size
        for (slot, item) in items.enumerated() {
            let at = node.offset + TreeLayout.headerSize + slot * TreeLayout.leafSlotSize
            let valueStart = valueEnd - item.value.count
            TreeLayout.writeKey(item.key, into: &image, at: at)
            ImageLayout.write(UInt64(valueStart), width: 4, into: &image, at: at + 17)
            ImageLayout.write(UInt64(item.value.count), width: 2, into: &image, at: at + 21)
            image.replaceSubrange(node.offset + valueStart..<node.offset + valueEnd, with: item.value)
            valueEnd = valueStart
        }
        TreeLayout.seal(&image, node)
        return true
    }
}
