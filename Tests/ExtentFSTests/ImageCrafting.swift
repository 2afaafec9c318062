import XCTest
import ExtentFSCore
import SystemPackage
@testable import ExtentFS

/// Rewrites an unmounted image's newest checkpoint with chosen contents, checksums and all, so
/// that only the values are what a test makes them: as the metadata tree (version 4) or as a
/// whole checkpoint of version 3. New blocks come from the end of the volume, which the tests'
/// small files never reach.
struct ImageCrafting {
    struct Contents {
        var nextInode: InodeNumber
        var inodes: [InodeImage]
        var referenceCounts: ReferenceCounts
    }

    let store: BackingStore
    var superblock: Superblock

    init(image: String) throws {
        store = try BackingStore(path: image, writable: true)
        superblock = try VolumeLoader.readSuperblock(store).superblock
    }

    func contents() throws -> Contents {
        let loaded = superblock.version >= Superblock.treeVersion
            ? try VolumeLoader.openTree(store, superblock: superblock).tree.loadAll(cache: nil)
            : try { let whole = try VolumeLoader.loadCheckpoint(store, superblock: superblock, cache: nil)
                    return (whole.nextInode, whole.inodes, whole.referenceCounts) }()
        return Contents(nextInode: loaded.nextInode, inodes: loaded.inodes.map { InodeImage($0) }, referenceCounts: loaded.referenceCounts)
    }

    /// Blocks counted down from the end of the volume.
    private final class TopDownBlocks: NodeDevice, NodeAllocator {
        let store: BackingStore
        let nodeSize: Int
        var next: UInt64
        init(store: BackingStore, superblock: Superblock) {
            self.store = store
            nodeSize = Int(superblock.blockSize)
            next = superblock.blockCount - 1
        }
        func readNode(at address: UInt64) throws -> [UInt8] { try store.read(nodeSize, at: address * UInt64(nodeSize)) }
        func writeNode(_ bytes: [UInt8], at address: UInt64) throws { try store.write(bytes, at: address * UInt64(nodeSize)) }
        func allocateNode() throws -> UInt64 {
            defer { next -= 1 }
            return next
        }
        func releaseNode(_ address: UInt64) {}
        func take(_ count: UInt64) -> BlockRun {
            next -= count
            return BlockRun(start: next + 1, count: count)
        }
    }

    /// The newest superblock now points at a new tree holding exactly `contents` (values as
    /// they are: nothing is checked on the way in), as format `version` (4 or later) has it.
    mutating func writeTree(_ contents: Contents, version: UInt32 = Superblock.currentVersion) throws {
        var items = [TreeItem(key: MetadataTree.nextInodeKey, value: MetadataTree.encodeNextInode(contents.nextInode))]
        let maxPiece = BTree.maxValueSize(nodeSize: Int(superblock.blockSize))
        for image in contents.inodes {
            for (piece, bytes) in MetadataTree.imagePieces(image, maxPiece: maxPiece, layout: InodeImageLayout(version: version)).enumerated() {
                items.append(TreeItem(key: MetadataTree.imageKey(image.ino, piece: UInt64(piece)), value: bytes))
            }
            // A cookie at or past 2^62 cannot be a key; it wraps, and the image's next cookie
            // (restored past it) is what gives it away.
            var index: [UInt64: [MetadataTree.IndexRecord]] = [:]
            image.directory?.forEach(after: 0) { name, entry in
                for (part, bytes) in MetadataTree.entryParts(name, entry, maxPiece: maxPiece).enumerated() {
                    items.append(TreeItem(key: TreeKey(object: image.ino, kind: MetadataTree.Kind.directoryEntry,
                                                       offset: entry.cookie &<< 2 | UInt64(part)), value: bytes))
                }
                index[NameHash(uuid: superblock.uuid)(name), default: []]
                    .append(MetadataTree.IndexRecord(cookie: entry.cookie, child: entry.ino, type: entry.type, name: name))
                return true
            }
            // The name index, as a checkpoint of `version` writes it: records from version 9,
            // ascending cookies (u64 each) in versions 7 and 8.
            for (hash, records) in index where version >= InodeImageLayout.firstVersionWithNameIndex {
                let value = version >= MetadataTree.firstVersionWithIndexRecords
                    ? try XCTUnwrap(MetadataTree.encodeIndex(records, maxValueSize: maxPiece))
                    : Self.cookieIndex(records.map(\.cookie))
                items.append(TreeItem(key: MetadataTree.nameIndexKey(image.ino, hash: hash), value: value))
            }
            // Every extent under its own key: two at one logical block keep the later.
            for extent in image.extents.extents where image.type == .regular {
                items.append(TreeItem(key: MetadataTree.extentKey(image.ino, logical: extent.logical), value: MetadataTree.encodeExtent(extent)))
            }
        }
        for entry in contents.referenceCounts.entries {
            items.append(TreeItem(key: MetadataTree.referenceKey(entry.run.start), value: MetadataTree.encodeReference(entry)))
        }
        try writeItems(items, version: version)
    }

    /// A name index value of format versions 7 and 8.
    static func cookieIndex(_ cookies: [UInt64]) -> [UInt8] {
        cookies.sorted().flatMap { cookie in (0..<8).map { UInt8(truncatingIfNeeded: cookie >> ($0 * 8)) } }
    }

    /// The items of the newest superblock's tree, in key order.
    func items() throws -> [TreeItem] {
        try VolumeLoader.openTree(store, superblock: superblock).tree.tree.items()
    }

    /// The newest superblock now points at a new tree holding exactly `items`, whatever they
    /// are (a later item with the key of an earlier one replaces it).
    /// A tree of version 10 or later is written as version 9, without free space and held nodes
    /// (kinds 6 to 8, MetadataTree+FreeSpace): its new nodes come from the end of the volume, which
    /// the lists say is free, and the nodes of the tree it replaces are listed as held. So mount
    /// finds the nodes by reading them, as for version 9, and the first checkpoint lists free
    /// space anew. `keepingSpaceLists` keeps them and the version, for tests of those lists.
    mutating func writeItems(_ items: [TreeItem], version: UInt32 = Superblock.currentVersion, keepingSpaceLists: Bool = false) throws {
        let blocks = TopDownBlocks(store: store, superblock: superblock)
        let tree = try BTree(root: nil, owner: MetadataTree.owner, device: blocks, allocator: blocks, cache: NodeCache(budgetBytes: 1 << 20))
        let spaceKinds: Set<UInt8> = [MetadataTree.Kind.freeSpace, MetadataTree.Kind.freeBySize, MetadataTree.Kind.heldNodes]
        let version = keepingSpaceLists ? version : min(version, Superblock.freeSpaceVersion - 1)
        for item in items where keepingSpaceLists || !spaceKinds.contains(item.key.kind) { try tree.insert(item.key, item.value) }
        superblock.version = version
        superblock.checkpoint = .tree(try tree.commit(generation: superblock.sequence))
        try store.flush()
        try Journal.writeSuperblock(superblock, store: store)
    }

    /// The node at `address` changed by `change`, its checksum (CRC-32C of bytes 8 to the end,
    /// at byte 4: docs/TREES.md) resealed, so that only the change is hostile.
    func changeNode(at address: UInt64, _ change: (inout [UInt8]) -> Void) throws {
        let nodeSize = Int(superblock.blockSize)
        var node = try store.read(nodeSize, at: address * UInt64(nodeSize))
        change(&node)
        let checksum = CRC32C.checksum(Array(node[8...]))
        withUnsafeBytes(of: checksum.littleEndian) { node.replaceSubrange(4..<8, with: $0) }
        try store.write(node, at: address * UInt64(nodeSize))
        try store.flush()
    }

    /// The newest superblock becomes a version 3 (or 2) one whose whole checkpoint holds
    /// `contents`.
    mutating func writeVersion3(_ contents: Contents, version: UInt32 = 3) throws {
        let blocks = TopDownBlocks(store: store, superblock: superblock)
        let blockSize = UInt64(superblock.blockSize)
        let payload = CheckpointCodec.encode(nextInode: contents.nextInode, inodes: contents.inodes, referenceCounts: contents.referenceCounts)
        let payloadRun = blocks.take((UInt64(payload.count) + blockSize - 1) / blockSize)
        let index = CheckpointIndex.encode(payloadRuns: [payloadRun])
        let indexRun = blocks.take((UInt64(index.count) + blockSize - 1) / blockSize)
        try store.write(payload, at: payloadRun.start * blockSize)
        try store.write(index, at: indexRun.start * blockSize)
        superblock.version = version
        superblock.checkpoint = .whole(CheckpointRoot(
            indexBlock: indexRun.start, indexBlockCount: indexRun.count, indexBytes: UInt64(index.count),
            indexChecksum: CRC32C.checksum(index), payloadBytes: UInt64(payload.count), payloadChecksum: CRC32C.checksum(payload)))
        try store.flush()
        try Journal.writeSuperblock(superblock, store: store)
    }

    /// The version 3 superblock's whole checkpoint root, changed by `change`, written back.
    mutating func changeWholeRoot(_ change: (inout CheckpointRoot) -> Void) throws {
        guard case .whole(var root) = superblock.checkpoint else { throw Errno.invalidArgument }
        change(&root)
        superblock.checkpoint = .whole(root)
        try Journal.writeSuperblock(superblock, store: store)
    }
}
