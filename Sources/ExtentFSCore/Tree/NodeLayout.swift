/// The byte layout of a node (docs/TREES.md draws it). All integers little-endian.
///
///     0  magic        u32  "EFTN"
///     4  checksum     u32  CRC-32C of bytes 8..<nodeSize
///     8  owner        u8   which tree (the caller's tree id): a node of another tree is misplaced
///     9  level        u8   0 = leaf
///    10  count        u16  items (leaf) or children (internal)
///    12  flags        u32  0; reserved
///    16  generation   u64  the commit that wrote it; must equal what the parent recorded
///    24  address      u64  where it was written; a node read from elsewhere is misplaced
///    32  slots
///
/// Leaf slot (23 bytes): key (17), value offset u32 (from the node's start), value length u16.
/// Values are packed from the end of the node down, slot 0's value last, with no gaps: the decoder
/// insists on exactly that layout, so the offsets are a check, not a degree of freedom.
///
/// Internal slot (33 bytes): key (17), child address u64, child generation u64. Slot i's key is
/// the lower bound of child i's keys (slot 0's is the node's own lower bound, TreeKey.min at the
/// root); child i's keys are below slot i+1's key.
enum NodeLayout {
    static let magic: UInt32 = 0x4E54_4645  // "EFTN" as bytes
    static let headerSize = 32
    static let checksummedFrom = 8
    static let leafSlotSize = TreeKey.encodedSize + 4 + 2
    static let internalSlotSize = TreeKey.encodedSize + 8 + 8
    static let nodeSizes = 512...65536
    /// Far above any real tree (internal nodes hold at least four children), and low enough that
    /// growing a hostile tree by a level cannot overflow the level byte.
    static let maxLevel: UInt8 = 40

    static func usableBytes(nodeSize: Int) -> Int { nodeSize - headerSize }

    /// An item (slot and value) may take at most a quarter of a leaf, so that a leaf holds at least
    /// four and a split of an overfull leaf always gives two halves that fit and are a quarter full.
    static func maxValueSize(nodeSize: Int) -> Int { usableBytes(nodeSize: nodeSize) / 4 - leafSlotSize }

    /// Below this many used bytes a node that is not the root is merged or refilled from a sibling.
    static func minimumFill(nodeSize: Int) -> Int { usableBytes(nodeSize: nodeSize) / 4 }
}
