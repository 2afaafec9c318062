import ExtentFSCore

/// A version 4 superblock's metadata tree, found from the image's bytes as docs/TREES.md and
/// docs/FORMAT.md describe it (not through the engine's BTree, which is what is under test): the
/// nodes reached from the root, and the items of their leaves. What the crafted tree mutations
/// need to change a header field, a slot or a value and reseal the node's checksum.
///
/// The walk trusts nothing: every address, count and offset is bounds-checked against the image,
/// checksums are not required (an earlier mutation of the same case may be why one is wrong), a
/// node is visited once however many slots point at it, and the walk stops at maxNodes nodes and
/// at a depth the level byte could not reach, so a crafted cycle cannot keep it going.
struct TreeLayout {
    static let magic: [UInt8] = [0x45, 0x46, 0x54, 0x4E]  // "EFTN"
    static let headerSize = 32
    static let leafSlotSize = 23
    static let internalSlotSize = 33
    static let maxNodes = 10_000
    static let maxDepth = 42

    /// Node header fields (docs/TREES.md, "Node format"): offset in the node and width.
    enum HeaderField: CaseIterable {
        case magic, checksum, owner, level, count, flags, generation, address

        var offset: Int {
            switch self {
            case .magic: return 0
            case .checksum: return 4
            case .owner: return 8
            case .level: return 9
            case .count: return 10
            case .flags: return 12
            case .generation: return 16
            case .address: return 24
            }
        }

        var width: Int {
            switch self {
            case .owner, .level: return 1
            case .count: return 2
            case .magic, .checksum, .flags: return 4
            case .generation, .address: return 8
            }
        }
    }

    struct Key: Comparable, CustomStringConvertible {
        var object: UInt64
        var kind: UInt8
        var offset: UInt64

        static func < (lhs: Key, rhs: Key) -> Bool {
            (lhs.object, lhs.kind, lhs.offset) < (rhs.object, rhs.kind, rhs.offset)
        }

        var description: String { "(\(object), \(kind), \(offset))" }
    }

    struct Node {
        /// Image offset of the node's first byte; the node is `size` bytes (one block).
        var offset: Int
        var size: Int
        var address: UInt64
        var level: Int
        var generation: UInt64
        /// Slots whose bytes lie inside the node (the header's count, cut to what fits).
        var slotCount: Int
        /// Addresses from the root down to this node's parent.
        var ancestors: [UInt64]

        var isLeaf: Bool { level == 0 }
        var range: Range<Int> { offset..<offset + size }
        var slotSize: Int { isLeaf ? TreeLayout.leafSlotSize : TreeLayout.internalSlotSize }
        /// Image offset of slot `index`.
        func slot(_ index: Int) -> Int { offset + TreeLayout.headerSize + index * slotSize }
    }

    /// One leaf item: its key and where its value lies in the image.
    struct Item {
        var node: Int
        var slot: Int
        var key: Key
        var value: Range<Int>
    }

    var nodes: [Node] = []
    /// Leaf items in walk order (key order, when the tree is intact).
    var items: [Item] = []

    init() {}

    /// The tree whose root the superblock records (`address` 0: the tree is empty).
    init(_ image: [UInt8], blockSize: Int, rootAddress: UInt64) {
        guard rootAddress != 0 else { return }
        var seen: Set<UInt64> = []
        // Depth first, leftmost child first, so that leaves come out in key order.
        var stack: [(address: UInt64, ancestors: [UInt64])] = [(rootAddress, [])]
        while let (address, ancestors) = stack.popLast(), nodes.count < TreeLayout.maxNodes {
            guard ancestors.count < TreeLayout.maxDepth, seen.insert(address).inserted,
                  address < UInt64(image.count / blockSize) else { continue }
            let offset = Int(address) * blockSize
            guard Array(image[offset..<offset + 4]) == TreeLayout.magic else { continue }
            let level = Int(image[offset + 9])
            let count = Int(ImageLayout.read(image, offset + 10, 2))
            let slotSize = level == 0 ? TreeLayout.leafSlotSize : TreeLayout.internalSlotSize
            let fitting = min(count, (blockSize - TreeLayout.headerSize) / slotSize)
            let node = Node(offset: offset, size: blockSize, address: address, level: level,
                            generation: ImageLayout.read(image, offset + 16, 8), slotCount: fitting, ancestors: ancestors)
            let index = nodes.count
            nodes.append(node)
            if level == 0 {
                for slot in 0..<fitting {
                    let at = node.slot(slot)
                    let valueOffset = Int(ImageLayout.read(image, at + 17, 4))
                    let length = Int(ImageLayout.read(image, at + 21, 2))
                    guard valueOffset >= TreeLayout.headerSize, valueOffset + length <= blockSize else { continue }
                    items.append(Item(node: index, slot: slot, key: TreeLayout.key(image, at),
                                      value: offset + valueOffset..<offset + valueOffset + length))
                }
            } else {
                for slot in (0..<fitting).reversed() {
                    stack.append((ImageLayout.read(image, node.slot(slot) + 17, 8), ancestors + [address]))
                }
            }
        }
    }

    static func key(_ image: [UInt8], _ offset: Int) -> Key {
        Key(object: ImageLayout.read(image, offset, 8), kind: image[offset + 8], offset: ImageLayout.read(image, offset + 9, 8))
    }

    static func writeKey(_ key: Key, into image: inout [UInt8], at offset: Int) {
        ImageLayout.write(key.object, width: 8, into: &image, at: offset)
        image[offset + 8] = key.kind
        ImageLayout.write(key.offset, width: 8, into: &image, at: offset + 9)
    }

    /// The node holding image byte `offset`, if any.
    func node(containing offset: Int) -> Node? { nodes.first { $0.range.contains(offset) } }

    /// The node's checksum over bytes 8 to its end, after a change to anything in it.
    static func seal(_ image: inout [UInt8], _ node: Node) {
        let checksum = CRC32C.checksum(Array(image[node.offset + 8..<node.offset + node.size]))
        ImageLayout.write(UInt64(checksum), width: 4, into: &image, at: node.offset + 4)
    }

    // MARK: - What the engine's schema puts in the tree (docs/FORMAT.md, "The metadata tree")

    static let nextInodeKind: UInt8 = 1
    static let referenceCountKind: UInt8 = 2
    /// Version 5's volume items: file block runs, the counts, orphans.
    static let fileBlocksKind: UInt8 = 3
    static let volumeCountsKind: UInt8 = 4
    static let orphanKind: UInt8 = 5
    static let inodeImageKind: UInt8 = 16
    static let fileExtentKind: UInt8 = 18

    /// Each inode's image as the image ranges of its pieces, in order.
    var inodeImages: [(ino: UInt64, pieces: [Range<Int>])] {
        var images: [(ino: UInt64, pieces: [Range<Int>])] = []
        for item in items where item.key.kind == TreeLayout.inodeImageKind && item.key.object != 0 {
            if images.last?.ino == item.key.object {
                images[images.count - 1].pieces.append(item.value)
            } else {
                images.append((item.key.object, [item.value]))
            }
        }
        return images
    }

    /// A regular file's extents: length u64, physical u64, state u8 under (ino, 18, logical).
    var fileExtentItems: [Item] {
        items.filter { $0.key.object != 0 && $0.key.kind == TreeLayout.fileExtentKind }
    }

    var referenceCountItems: [Item] {
        items.filter { $0.key.object == 0 && $0.key.kind == TreeLayout.referenceCountKind }
    }

    /// Version 5: file block runs (u64 count), the counts item (u64 inodes, u64 bytes), orphans.
    var volumeItems: [Item] {
        items.filter { $0.key.object == 0 && [TreeLayout.fileBlocksKind, TreeLayout.volumeCountsKind, TreeLayout.orphanKind].contains($0.key.kind) }
    }
}
