import SystemPackage

/// The checkpoint as one copy-on-write B+tree (ExtentFSCore.BTree; docs/TREES.md): each inode's
/// encoded image (CheckpointCodec) as numbered pieces under its number, a directory's entries and
/// a regular file's extents as items of their own, the reference counts by first block, and the
/// next inode number. A checkpoint rewrites the items of what changed since
/// the last one and writes only the nodes that holds; the rest of the tree is shared with the
/// previous checkpoint. Keys (object, kind, offset):
///   (ino, inodeImage, piece)          a piece of inode `ino`'s image, pieces in order; a
///                                     directory's image holds no entries (its next cookie only)
///   (dir, directoryEntry, cookie << 2 | part)
///                                     entry `cookie` of directory `dir`: part 0 holds u64 ino,
///                                     u8 type (mode >> 12) and the name's first bytes, parts 1-3
///                                     the rest of a name longer than part 0 takes (small nodes)
///   (ino, fileExtent, logical block)  an extent of regular file `ino` (never a delayed one):
///                                     length u64, physical block u64, state u8
///   (dir, nameIndex, name hash)       (version 9) directory `dir`'s entries whose names have
///                                     this hash, ascending by cookie: cookie u64, ino u64, type
///                                     u8, name length u8, name (MetadataTree+Entries.swift;
///                                     versions 7 and 8: the cookies only, u64 each)
///   (0, nextInodeNumber, 0)           the next inode number (u64)
///   (0, referenceCount, first block)  a run of blocks shared `count` times: block count u64, count u32
///   (0, fileBlocks, first block)      (version 5) a run of blocks files use: block count u64
///   (0, volumeCounts, 0)              (version 5) inode count u64, the inodes' checkpoint bytes u64
///   (0, orphan, ino)                  (version 5) inode `ino` has link count 0 (empty value)
///   (0, freeSpace, first block)       (version 10) a run of free blocks: block count u64
///   (2^63 | count, freeBySize, first block)
///                                     (version 10) the same run by size (MetadataTree+FreeSpace)
///   (0, heldNodes, first block)       (version 10) a run of nodes only the older superblock copy's
///                                     tree reaches: block count u64
/// Object 0 is never an inode (inode numbers start at Superblock.rootInode). A directory's
/// entries and a file's extents are items of their own, so a change to one entry of a large
/// directory, or to a few blocks of a file of many extents, rewrites those items' leaves, not
/// every entry or extent.
///
/// Not thread-safe: the journal calls it under its checkpointLock only.
package final class MetadataTree {
    package enum Kind {
        package static let nextInodeNumber: UInt8 = 1
        package static let referenceCount: UInt8 = 2
        package static let fileBlocks: UInt8 = 3
        package static let volumeCounts: UInt8 = 4
        package static let orphan: UInt8 = 5
        package static let freeSpace: UInt8 = 6
        package static let freeBySize: UInt8 = 7
        package static let heldNodes: UInt8 = 8
        package static let inodeImage: UInt8 = 16
        package static let directoryEntry: UInt8 = 17
        package static let fileExtent: UInt8 = 18
        package static let nameIndex: UInt8 = 19
    }

    /// The owner byte in every node of this tree (a node of another tree is refused).
    package static let owner: UInt8 = 1
    /// Clean nodes kept in memory between checkpoints (a budget for them comes with issue 9).
    package static let cacheBytes = 16 << 20

    package let tree: BTree
    package let superblock: Superblock
    /// Keys the name index (format version 7): the hash of a name in this volume.
    package let nameHash: NameHash

    package init(tree: BTree, superblock: Superblock) {
        self.tree = tree
        self.superblock = superblock
        nameHash = NameHash(uuid: superblock.uuid)
    }

    /// How the name index lists a directory's entries: not at all (before version 7), by cookie
    /// (versions 7 and 8), or whole (version 9: IndexRecord).
    package enum NameIndexLayout { case none, cookies, records }

    package var nameIndexLayout: NameIndexLayout {
        if superblock.version >= Self.firstVersionWithIndexRecords { return .records }
        return superblock.version >= InodeImageLayout.firstVersionWithNameIndex ? .cookies : .none
    }

    /// Whether a directory can be read without its entries, looked up by name in the tree: the
    /// current index (version 9). A tree of an older one is read whole and rewritten.
    package var hasNameIndex: Bool { nameIndexLayout == .records }

    package static func imageKey(_ ino: InodeNumber, piece: UInt64) -> TreeKey {
        TreeKey(object: ino, kind: Kind.inodeImage, offset: piece)
    }
    /// Part `part` of entry `cookie` (cookies are below 2^62, so the shift loses nothing).
    package static func entryKey(_ directory: InodeNumber, cookie: UInt64, part: UInt64 = 0) -> TreeKey {
        TreeKey(object: directory, kind: Kind.directoryEntry, offset: cookie << 2 | part)
    }
    package static let entryParts: UInt64 = 4
    package static func extentKey(_ file: InodeNumber, logical: UInt64) -> TreeKey {
        TreeKey(object: file, kind: Kind.fileExtent, offset: logical)
    }

    package static let nextInodeKey = TreeKey(object: 0, kind: Kind.nextInodeNumber, offset: 0)
    package static let volumeCountsKey = TreeKey(object: 0, kind: Kind.volumeCounts, offset: 0)
    package static func fileBlocksKey(_ block: UInt64) -> TreeKey {
        TreeKey(object: 0, kind: Kind.fileBlocks, offset: block)
    }
    package static func orphanKey(_ ino: InodeNumber) -> TreeKey {
        TreeKey(object: 0, kind: Kind.orphan, offset: ino)
    }
    package static func referenceKey(_ block: UInt64) -> TreeKey {
        TreeKey(object: 0, kind: Kind.referenceCount, offset: block)
    }

    // MARK: writing a checkpoint

    /// Brings the tree to `snapshot`: the images of the inodes that changed since the last
    /// checkpoint (nil: the inode is gone), the reference counts over the runs that changed.
    package func apply(_ snapshot: CheckpointChanges.Snapshot) throws {
        try tree.insert(Self.nextInodeKey, Self.encodeNextInode(snapshot.nextInode))
        var counts = ByteWriter(capacity: 16)
        counts.u64(snapshot.inodeCount)
        counts.u64(UInt64(max(0, snapshot.inodeBytes)))
        try tree.insert(Self.volumeCountsKey, counts.bytes)
        for (ino, image) in snapshot.inodes {
            // Orphans (link count 0, kept by an open file) are listed, so that mount finds them
            // without reading every inode.
            if let image, image.nlink == 0 {
                try tree.insert(Self.orphanKey(ino), [])
            } else {
                _ = try tree.remove(Self.orphanKey(ino))
            }
            guard let image else {
                // Everything the inode had: its pieces and, for a directory, its entries.
                let stale = try tree.items(from: TreeKey(object: ino, kind: 0, offset: 0), through: TreeKey(object: ino, kind: .max, offset: .max))
                for item in stale { _ = try tree.remove(item.key) }
                continue
            }
            var pieceCount: UInt64 = 0
            for piece in Self.imagePieces(image, maxPiece: tree.maxValueSize) {
                try tree.insert(Self.imageKey(ino, piece: pieceCount), piece)
                pieceCount += 1
            }
            // Pieces past the new image's last go.
            let stale = try tree.items(from: Self.imageKey(ino, piece: pieceCount), through: Self.imageKey(ino, piece: .max))
            for item in stale { _ = try tree.remove(item.key) }
            if let directory = image.directory { try writeEntries(of: ino, directory, changed: image.changedEntryCookies) }
            if image.type == .regular { try writeExtents(of: ino, image.extents, changed: image.changedExtentRange) }
        }
        for run in snapshot.referenceRuns {
            try replaceRunItems(kind: Kind.referenceCount, in: run, with: snapshot.referenceCounts.entries(within: run),
                                decode: decodeReference, runOf: \.run,
                                cut: { ReferenceCounts.Entry(run: $1, count: $0.count) }, encode: Self.encodeReference)
        }
        for run in snapshot.fileBlockRuns {
            try replaceRunItems(kind: Kind.fileBlocks, in: run, with: snapshot.fileBlocks.runs(within: run),
                                decode: decodeFileBlocks, runOf: { $0 }, cut: { $1 }, encode: Self.encodeRun)
        }
    }

    /// The stored extents over `changed` become `map`'s there (nil: all of them, and stored
    /// extents the map does not hold go). The range is first widened until no extent, stored or
    /// in the map, crosses either end (a stored one may have been cut or merged, a new one may
    /// reach past the change; widening one end can bring in another extent crossing it, hence
    /// the loop, which ends: the range only grows, to the ends of extents that exist). Then
    /// every stored extent starting in it goes and every extent of the map starting in it is
    /// inserted, so outside it nothing stored changes and inside it the tree holds the map.
    private func writeExtents(of file: InodeNumber, _ map: ExtentMap, changed: Range<UInt64>?) throws {
        var range = changed ?? 0..<UInt64.max
        guard !range.isEmpty else { return }
        while changed != nil {
            var lower = range.lowerBound, upper = range.upperBound
            if let before = try storedExtent(of: file, before: range.lowerBound), before.logicalEnd > lower {
                lower = before.logical
            }
            if let last = try storedExtent(of: file, before: range.upperBound), last.logicalEnd > upper {
                upper = last.logicalEnd
            }
            let first = map.firstIndex(endingAfter: range.lowerBound)
            if first < map.extents.count, map.extents[first].logical < lower { lower = map.extents[first].logical }
            let crossing = map.firstIndex(endingAfter: range.upperBound - 1)
            if crossing < map.extents.count, map.extents[crossing].logical < range.upperBound,
               map.extents[crossing].logicalEnd > upper {
                upper = map.extents[crossing].logicalEnd
            }
            if lower..<upper == range { break }
            range = lower..<upper
        }
        let stale = try tree.items(from: Self.extentKey(file, logical: range.lowerBound), through: Self.extentKey(file, logical: range.upperBound - 1))
        for item in stale { _ = try tree.remove(item.key) }
        var index = map.firstIndex(endingAfter: range.lowerBound)
        while index < map.extents.count, map.extents[index].logical < range.upperBound {
            let extent = map.extents[index]
            if extent.state != .delayed { try tree.insert(Self.extentKey(file, logical: extent.logical), Self.encodeExtent(extent)) }
            index += 1
        }
    }

    /// The stored extent of `file` starting last before `block`, if any.
    private func storedExtent(of file: InodeNumber, before block: UInt64) throws -> FileExtent? {
        guard let item = try tree.lastItem(before: Self.extentKey(file, logical: block)),
              item.key.object == file, item.key.kind == Kind.fileExtent else { return nil }
        return try decodeExtent(item)
    }

    package static func encodeExtent(_ extent: FileExtent) -> [UInt8] {
        var writer = ByteWriter(capacity: 17)
        writer.u64(extent.length)
        writer.u64(extent.physical)
        writer.u8(extent.state.rawValue)
        return writer.bytes
    }

    /// An extent item, checked as an extent inside an image is (CheckpointCodec.validatedExtent).
    package func decodeExtent(_ item: TreeItem) throws -> FileExtent {
        var reader = ByteReader(item.value)
        let length = try reader.u64()
        let physical = try reader.u64()
        let state = try reader.u8()
        guard reader.remaining == 0 else {
            throw DecodingError(description: "inode \(item.key.object)'s extent at logical block \(item.key.offset) has \(reader.remaining) bytes after it")
        }
        return try CheckpointCodec.validatedExtent(of: item.key.object, logical: item.key.offset, length: length,
                                                   physical: physical, rawState: state, superblock: superblock)
    }

    /// An entry's value, in as many parts as the node size needs (part 0: ino, type, the name's
    /// first bytes).
    package static func entryParts(_ name: [UInt8], _ entry: Directory.Entry, maxPiece: Int) -> [[UInt8]] {
        var writer = ByteWriter(capacity: 9 + name.count)
        writer.u64(entry.ino)
        writer.u8(UInt8(entry.type.rawValue >> 12))
        writer.raw(name)
        return pieces(of: writer.bytes, maxPiece: maxPiece)
    }

    /// `bytes` cut into values of at most `maxPiece` bytes, in order; at least one, so that an
    /// empty value is still stored.
    private static func pieces(of bytes: [UInt8], maxPiece: Int) -> [[UInt8]] {
        var pieces: [[UInt8]] = []
        var start = 0
        repeat {
            let end = min(bytes.count, start + maxPiece)
            pieces.append(Array(bytes[start..<end]))
            start = end
        } while start < bytes.count
        return pieces
    }

    /// The stored run items of `kind` over `run` become `entries` (inside `run`); a stored one
    /// that runs past either end keeps its outside part (`cut` to it). Items are stored as cut,
    /// so two neighbours may hold the same value: loading joins them.
    private func replaceRunItems<Entry>(kind: UInt8, in run: BlockRun, with entries: [Entry],
                                        decode: (TreeItem) throws -> Entry, runOf: (Entry) -> BlockRun,
                                        cut: (Entry, BlockRun) -> Entry, encode: (Entry) -> [UInt8]) throws {
        func key(_ block: UInt64) -> TreeKey { TreeKey(object: 0, kind: kind, offset: block) }
        var outside: [Entry] = []
        var overlapping: [TreeItem] = []
        if let before = try tree.lastItem(before: key(run.start)), before.key.object == 0, before.key.kind == kind {
            overlapping.append(before)
        }
        if run.end > run.start {
            overlapping += try tree.items(from: key(run.start), through: key(run.end - 1))
        }
        for item in overlapping {
            let stored = try decode(item)
            let storedRun = runOf(stored)
            guard storedRun.end > run.start, storedRun.start < run.end else { continue }
            _ = try tree.remove(item.key)
            if storedRun.start < run.start {
                outside.append(cut(stored, BlockRun(start: storedRun.start, count: run.start - storedRun.start)))
            }
            if storedRun.end > run.end {
                outside.append(cut(stored, BlockRun(start: run.end, count: storedRun.end - run.end)))
            }
        }
        for entry in outside + entries {
            try tree.insert(key(runOf(entry).start), encode(entry))
        }
    }

    /// A run item's value (file blocks, free space, held nodes): its block count.
    package static func encodeRun(_ run: BlockRun) -> [UInt8] {
        var writer = ByteWriter(capacity: 8)
        writer.u64(run.count)
        return writer.bytes
    }

    /// A file block item: a run inside the volume's data blocks.
    package func decodeFileBlocks(_ item: TreeItem) throws -> BlockRun {
        try decodeRun(item, named: "file block")
    }

    /// An item whose key's offset is a run's first block and whose value is its block count: a
    /// run inside the volume's data blocks.
    func decodeRun(_ item: TreeItem, named what: String) throws -> BlockRun {
        var reader = ByteReader(item.value)
        let run = BlockRun(start: item.key.offset, count: try reader.u64())
        guard reader.remaining == 0, run.count > 0, run.start >= superblock.firstAllocatableBlock,
              run.start < superblock.blockCount, run.count <= superblock.blockCount - run.start else {
            throw DecodingError(description: "\(what) entry \(run) is malformed or out of range")
        }
        return run
    }

    package static func encodeReference(_ entry: ReferenceCounts.Entry) -> [UInt8] {
        var writer = ByteWriter(capacity: 12)
        writer.u64(entry.run.count)
        writer.u32(entry.count)
        return writer.bytes
    }

    package static func encodeNextInode(_ ino: InodeNumber) -> [UInt8] {
        var writer = ByteWriter(capacity: 8)
        writer.u64(ino)
        return writer.bytes
    }

    /// An inode's image in pieces of at most `maxPiece` bytes, in order.
    package static func imagePieces(_ image: InodeImage, maxPiece: Int, layout: InodeImageLayout = .current) -> [[UInt8]] {
        var writer = ByteWriter(capacity: 256)
        var image = image
        // The entries and extents are items of their own.
        if let directory = image.directory { image.directory = directory.strippedOfEntries }
        if !image.extents.extents.isEmpty { image.extents = ExtentMap() }
        CheckpointCodec.encode(image, into: &writer, layout: layout)
        return pieces(of: writer.bytes, maxPiece: maxPiece)
    }

    package func decodeReference(_ item: TreeItem) throws -> ReferenceCounts.Entry {
        var reader = ByteReader(item.value)
        let run = BlockRun(start: item.key.offset, count: try reader.u64())
        let count = try reader.u32()
        guard reader.remaining == 0, run.count > 0, count >= 2, run.start >= superblock.firstAllocatableBlock,
              run.start < superblock.blockCount, run.count <= superblock.blockCount - run.start else {
            throw DecodingError(description: "reference count entry \(run) is malformed or out of range")
        }
        return ReferenceCounts.Entry(run: run, count: count)
    }
}
