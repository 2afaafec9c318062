import ExtentFSCore
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
///   (0, nextInodeNumber, 0)           the next inode number (u64)
///   (0, referenceCount, first block)  a run of blocks shared `count` times: block count u64, count u32
/// Object 0 is never an inode (inode numbers start at FileSystem.rootInode). A directory's
/// entries and a file's extents are items of their own, so a change to one entry of a large
/// directory, or to a few blocks of a file of many extents, rewrites those items' leaves, not
/// every entry or extent.
///
/// Not thread-safe: the journal calls it under its checkpointLock only.
final class MetadataTree {
    enum Kind {
        static let nextInodeNumber: UInt8 = 1
        static let referenceCount: UInt8 = 2
        static let inodeImage: UInt8 = 16
        static let directoryEntry: UInt8 = 17
        static let fileExtent: UInt8 = 18
    }

    /// The owner byte in every node of this tree (a node of another tree is refused).
    static let owner: UInt8 = 1
    /// Clean nodes kept in memory between checkpoints (a budget for them comes with issue 9).
    static let cacheBytes = 16 << 20

    let tree: BTree
    let superblock: Superblock

    init(tree: BTree, superblock: Superblock) {
        self.tree = tree
        self.superblock = superblock
    }

    static func imageKey(_ ino: InodeNumber, piece: UInt64) -> TreeKey {
        TreeKey(object: ino, kind: Kind.inodeImage, offset: piece)
    }
    /// Part `part` of entry `cookie` (cookies are below 2^62, so the shift loses nothing).
    static func entryKey(_ directory: InodeNumber, cookie: UInt64, part: UInt64 = 0) -> TreeKey {
        TreeKey(object: directory, kind: Kind.directoryEntry, offset: cookie << 2 | part)
    }
    static let entryParts: UInt64 = 4
    static func extentKey(_ file: InodeNumber, logical: UInt64) -> TreeKey {
        TreeKey(object: file, kind: Kind.fileExtent, offset: logical)
    }

    static let nextInodeKey = TreeKey(object: 0, kind: Kind.nextInodeNumber, offset: 0)
    static func referenceKey(_ block: UInt64) -> TreeKey {
        TreeKey(object: 0, kind: Kind.referenceCount, offset: block)
    }

    // MARK: writing a checkpoint

    /// Brings the tree to `snapshot`: the images of the inodes that changed since the last
    /// checkpoint (nil: the inode is gone), the reference counts over the runs that changed.
    func apply(_ snapshot: CheckpointChanges.Snapshot) throws {
        try tree.insert(Self.nextInodeKey, Self.encodeNextInode(snapshot.nextInode))
        for (ino, image) in snapshot.inodes {
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
            try replaceReferenceCounts(in: run, with: snapshot.referenceCounts.entries(within: run))
        }
    }

    /// The entries at `changed` cookies become what `directory` holds there (nil: every entry is
    /// rewritten and stored entries it does not hold go).
    private func writeEntries(of ino: InodeNumber, _ directory: Directory, changed: Set<UInt64>?) throws {
        let cookies: [UInt64]
        if let changed {
            cookies = changed.sorted()
        } else {
            let stored = try tree.items(from: Self.entryKey(ino, cookie: 0), through: TreeKey(object: ino, kind: Kind.directoryEntry, offset: .max))
            for item in stored { _ = try tree.remove(item.key) }
            var all: [UInt64] = []
            directory.forEach(after: 0) { _, entry in
                all.append(entry.cookie)
                return true
            }
            cookies = all
        }
        for cookie in cookies {
            let parts = directory.entry(atCookie: cookie).map { Self.entryParts($0.name, $0.entry, maxPiece: tree.maxValueSize) } ?? []
            for part in 0..<Self.entryParts {
                let key = Self.entryKey(ino, cookie: cookie, part: part)
                if part < parts.count {
                    try tree.insert(key, parts[Int(part)])
                } else {
                    _ = try tree.remove(key)
                }
            }
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

    static func encodeExtent(_ extent: FileExtent) -> [UInt8] {
        var writer = ByteWriter(capacity: 17)
        writer.u64(extent.length)
        writer.u64(extent.physical)
        writer.u8(extent.state.rawValue)
        return writer.bytes
    }

    /// An extent item, checked as an extent inside an image is (CheckpointCodec.validatedExtent).
    private func decodeExtent(_ item: TreeItem) throws -> FileExtent {
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
    static func entryParts(_ name: [UInt8], _ entry: Directory.Entry, maxPiece: Int) -> [[UInt8]] {
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

    /// The stored entries over `run` become `entries` (inside `run`); a stored entry that runs
    /// past either end keeps its outside part. Entries are stored as cut, so two neighbours may
    /// hold the same count: loading joins them.
    private func replaceReferenceCounts(in run: BlockRun, with entries: [ReferenceCounts.Entry]) throws {
        var outside: [ReferenceCounts.Entry] = []
        var overlapping: [TreeItem] = []
        if let before = try tree.lastItem(before: Self.referenceKey(run.start)),
           before.key.object == 0, before.key.kind == Kind.referenceCount {
            overlapping.append(before)
        }
        if run.end > run.start {
            overlapping += try tree.items(from: Self.referenceKey(run.start), through: Self.referenceKey(run.end - 1))
        }
        for item in overlapping {
            let stored = try decodeReference(item)
            guard stored.run.end > run.start, stored.run.start < run.end else { continue }
            _ = try tree.remove(item.key)
            if stored.run.start < run.start {
                outside.append(.init(run: BlockRun(start: stored.run.start, count: run.start - stored.run.start), count: stored.count))
            }
            if stored.run.end > run.end {
                outside.append(.init(run: BlockRun(start: run.end, count: stored.run.end - run.end), count: stored.count))
            }
        }
        for entry in outside + entries {
            try tree.insert(Self.referenceKey(entry.run.start), Self.encodeReference(entry))
        }
    }

    static func encodeReference(_ entry: ReferenceCounts.Entry) -> [UInt8] {
        var writer = ByteWriter(capacity: 12)
        writer.u64(entry.run.count)
        writer.u32(entry.count)
        return writer.bytes
    }

    static func encodeNextInode(_ ino: InodeNumber) -> [UInt8] {
        var writer = ByteWriter(capacity: 8)
        writer.u64(ino)
        return writer.bytes
    }

    /// An inode's image in pieces of at most `maxPiece` bytes, in order.
    static func imagePieces(_ image: InodeImage, maxPiece: Int, layout: InodeImageLayout = .current) -> [[UInt8]] {
        var writer = ByteWriter(capacity: 256)
        var image = image
        // The entries and extents are items of their own.
        if let directory = image.directory { image.directory = Directory(emptyWithNextCookie: directory.nextCookie) }
        if !image.extents.extents.isEmpty { image.extents = ExtentMap() }
        CheckpointCodec.encode(image, into: &writer, layout: layout)
        return pieces(of: writer.bytes, maxPiece: maxPiece)
    }

    // MARK: reading it back

    /// Everything the tree holds, checked as the whole-checkpoint decoder checks it.
    func loadAll(cache: PageCache?) throws -> (nextInode: InodeNumber, inodes: [Inode], referenceCounts: ReferenceCounts) {
        guard let nextItem = try tree.lookup(Self.nextInodeKey) else {
            throw DecodingError(description: "the metadata tree has no next inode number")
        }
        // Exactly one u64, as every value here is exactly what its kind encodes.
        var nextReader = ByteReader(nextItem)
        let nextValue = try nextReader.u64()
        guard nextReader.remaining == 0 else {
            throw DecodingError(description: "the metadata tree's next inode number has \(nextReader.remaining) bytes after it")
        }
        let nextInode = try CheckpointCodec.validatedNextInode(nextValue)
        var referenceEntries: [ReferenceCounts.Entry] = []
        var inodes: [Inode] = []
        // The object being read: its image's pieces, then (a directory) its entries' parts.
        var pending: (ino: InodeNumber, pieces: UInt64, bytes: [UInt8])?
        var current: Inode?
        // The current directory's entries, built up apart from the inode so that each restore
        // changes a uniquely held value (not a copy of the whole directory per entry).
        var currentDirectory: Directory?
        var entry: (cookie: UInt64, parts: UInt64, bytes: [UInt8])?
        // The current file's extents, in order: its map is built once, when the file is done.
        var currentExtents: [FileExtent] = []

        func finishImage() throws {
            guard let image = pending else { return }
            pending = nil
            var reader = ByteReader(image.bytes)
            let inode = try CheckpointCodec.decodeInode(&reader, superblock: superblock,
                                                        layout: InodeImageLayout(version: superblock.version), cache: cache)
            guard inode.ino == image.ino, reader.remaining == 0, inode.directory?.isEmpty ?? true, inode.extents.extents.isEmpty else {
                throw DecodingError(description: "the metadata tree's image of inode \(image.ino) is malformed")
            }
            guard inode.ino >= FileSystem.rootInode, inode.ino < nextInode else {
                throw DecodingError(description: "inode number \(inode.ino) is not below the next inode number \(nextInode)")
            }
            guard UInt64(inodes.count) < superblock.maxInodes else {
                throw DecodingError(description: "the metadata tree holds more inodes than the volume's \(superblock.maxInodes)")
            }
            // What the tree holds of it is what memory holds: the next checkpoint rewrites only
            // the entries that change.
            if inode.type == .directory { inode.checkpointEntryCookies = [] }
            inodes.append(inode)
            current = inode
            currentDirectory = inode.directory
        }
        func finishEntry() throws {
            guard let stored = entry, let directoryInode = current, currentDirectory != nil else { return }
            entry = nil
            var reader = ByteReader(stored.bytes)
            let child = try reader.u64()
            let rawType = try reader.u8()
            let name = try reader.raw(reader.remaining)
            guard FileSystem.isValidEntryName(name), child >= FileSystem.rootInode, child < nextInode,
                  let type = FileType(mode: UInt32(rawType) << 12),
                  stored.cookie >= Directory.firstEntryCookie, stored.cookie < currentDirectory!.nextCookie,
                  currentDirectory!.entry(named: name) == nil else {
                throw DecodingError(description: "directory \(directoryInode.ino) has a malformed or duplicate entry at cookie \(stored.cookie)")
            }
            currentDirectory!.restore(name: name, entry: Directory.Entry(ino: child, type: type, cookie: stored.cookie))
        }
        func finishObject() throws {
            try finishImage()
            try finishEntry()
            if let directory = currentDirectory, let inode = current { inode.directory = directory }
            if let inode = current, inode.type == .regular {
                if !currentExtents.isEmpty { inode.extents = ExtentMap(validated: currentExtents) }
                // The tree holds exactly this map: the next checkpoint rewrites what changes.
                inode.extentsCheckpointed()
            }
            current = nil
            currentDirectory = nil
            currentExtents = []
        }

        var cursor = tree.cursor()
        while let item = try cursor.next() {
            switch (item.key.object, item.key.kind) {
            case (0, Kind.nextInodeNumber) where item.key.offset == 0:
                // Read above; any other offset is an item no checkpoint writes (default).
                continue
            case (0, Kind.referenceCount):
                let reference = try decodeReference(item)
                if let last = referenceEntries.last, last.run.end > reference.run.start {
                    throw DecodingError(description: "reference count entries overlap at block \(reference.run.start)")
                }
                if let last = referenceEntries.last, last.run.end == reference.run.start, last.count == reference.count {
                    referenceEntries[referenceEntries.count - 1].run.count += reference.run.count
                } else {
                    referenceEntries.append(reference)
                }
            case (let ino, Kind.inodeImage) where ino != 0:
                if pending?.ino != ino {
                    try finishObject()
                    pending = (ino, 0, [])
                }
                guard item.key.offset == pending!.pieces else {
                    throw DecodingError(description: "the metadata tree's image of inode \(ino) misses piece \(pending!.pieces)")
                }
                pending!.pieces += 1
                pending!.bytes += item.value
            case (let ino, Kind.directoryEntry) where ino != 0:
                try finishImage()
                guard let directoryInode = current, directoryInode.ino == ino, directoryInode.type == .directory else {
                    throw DecodingError(description: "the metadata tree holds directory entries for inode \(ino), which is not a directory it holds")
                }
                let cookie = item.key.offset >> 2, part = item.key.offset & 3
                if entry?.cookie != cookie {
                    try finishEntry()
                    entry = (cookie, 0, [])
                }
                guard part == entry!.parts else {
                    throw DecodingError(description: "directory \(ino)'s entry at cookie \(cookie) misses part \(entry!.parts)")
                }
                entry!.parts += 1
                entry!.bytes += item.value
            case (let ino, Kind.fileExtent) where ino != 0:
                try finishImage()
                guard let fileInode = current, fileInode.ino == ino, fileInode.type == .regular else {
                    throw DecodingError(description: "the metadata tree holds extents for inode \(ino), which is not a regular file it holds")
                }
                let extent = try decodeExtent(item)
                if let last = currentExtents.last, last.logicalEnd > extent.logical {
                    throw DecodingError(description: "inode \(ino) has overlapping extents at logical block \(extent.logical)")
                }
                currentExtents.append(extent)
            default:
                throw DecodingError(description: "the metadata tree holds an item of unknown kind \(item.key)")
            }
        }
        try finishObject()
        return (nextInode, inodes, ReferenceCounts(validated: referenceEntries))
    }

    private func decodeReference(_ item: TreeItem) throws -> ReferenceCounts.Entry {
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
