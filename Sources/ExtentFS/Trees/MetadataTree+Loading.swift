import ExtentFSCore

/// Reading the metadata tree back: one inode on demand (the mounted volume's inode cache), or
/// every inode in number order (mount's scan, fsck). Every value is checked as the log's and the
/// whole checkpoint's decoders check it: a damaged tree gives an error, never a trap.
extension MetadataTree {
    /// The stored next inode number: exactly one u64, as every value is exactly what its kind encodes.
    func storedNextInode() throws -> InodeNumber {
        guard let value = try tree.lookup(Self.nextInodeKey) else {
            throw DecodingError(description: "the metadata tree has no next inode number")
        }
        var reader = ByteReader(value)
        let next = try reader.u64()
        guard reader.remaining == 0 else {
            throw DecodingError(description: "the metadata tree's next inode number has \(reader.remaining) bytes after it")
        }
        return try CheckpointCodec.validatedNextInode(next)
    }

    /// Everything the tree holds, checked as the whole-checkpoint decoder checks it.
    func loadAll(cache: PageCache?) throws -> (nextInode: InodeNumber, inodes: [Inode], referenceCounts: ReferenceCounts) {
        var inodes: [Inode] = []
        var volume: StoredVolumeItems?
        let (nextInode, referenceCounts) = try forEachInode(cache: cache, volume: &volume) { inodes.append($0) }
        return (nextInode, inodes, referenceCounts)
    }

    /// Object 0, the volume's own items, checked as `forEachInode` checks them: the reference
    /// counts, and format version 5's volume items (the blocks files use, the counts, the orphans;
    /// nil: a version 4 tree, which has none). Reads no inode.
    func loadVolumeObject(nextInode: InodeNumber) throws -> (referenceCounts: ReferenceCounts, volume: StoredVolumeItems?) {
        var builder = VolumeItemsBuilder()
        var cursor = tree.cursor(from: TreeKey(object: 0, kind: 0, offset: 0), through: TreeKey(object: 0, kind: .max, offset: .max))
        while let item = try cursor.next() { try builder.add(item, tree: self, nextInode: nextInode) }
        return (ReferenceCounts(validated: builder.references), try builder.finish(version: superblock.version))
    }

    /// Calls `body` with every inode, whole (its entries or extents in it), in number order, and
    /// returns the next inode number and the reference counts. Holds one inode's items at a time.
    @discardableResult
    func forEachInode(cache: PageCache?, volume: inout StoredVolumeItems?,
                      _ body: (Inode) throws -> Void) throws -> (nextInode: InodeNumber, referenceCounts: ReferenceCounts) {
        let nextInode = try storedNextInode()
        var volumeItems = VolumeItemsBuilder()
        volumeItems.bySize = []
        var objectItems: [TreeItem] = []
        var inodeCount: UInt64 = 0
        func finishObject() throws {
            guard let first = objectItems.first else { return }
            guard inodeCount < superblock.maxInodes else {
                throw DecodingError(description: "the metadata tree holds more inodes than the volume's \(superblock.maxInodes)")
            }
            inodeCount += 1
            try body(try decodeObject(first.key.object, items: objectItems, nextInode: nextInode, cache: cache))
            objectItems.removeAll(keepingCapacity: true)
        }
        var cursor = tree.cursor()
        while let item = try cursor.next() {
            switch (item.key.object, item.key.kind) {
            case (0, _):
                try volumeItems.add(item, tree: self, nextInode: nextInode)
            case (let object, Kind.freeBySize) where object >= Self.freeBySizeObjectBase:
                volumeItems.bySize?.append(try decodeFreeBySize(item))
            case (let ino, _) where ino != 0:
                if objectItems.first.map({ $0.key.object != ino }) ?? false { try finishObject() }
                objectItems.append(item)
            default:
                throw DecodingError(description: "the metadata tree holds an item of unknown kind \(item.key)")
            }
        }
        try finishObject()
        volume = try volumeItems.finish(version: superblock.version)
        return (nextInode, ReferenceCounts(validated: volumeItems.references))
    }

    /// Inode `ino` as the tree holds it, or nil when the tree holds nothing of it.
    func loadInode(_ ino: InodeNumber, nextInode: InodeNumber, cache: PageCache?) throws -> Inode? {
        guard ino != 0 else { return nil }
        let start = TreeKey(object: ino, kind: 0, offset: 0), end = TreeKey(object: ino, kind: .max, offset: .max)
        guard hasNameIndex else {
            let items = try tree.items(from: start, through: end)
            return items.isEmpty ? nil : try decodeObject(ino, items: items, nextInode: nextInode, cache: cache)
        }
        // One scan, stopped after the image: a directory is read without its entries (the tree
        // looks them up by name), anything else goes on to its extents.
        var cursor = tree.cursor(from: start, through: end)
        var image: [TreeItem] = []
        var afterImage: TreeItem?
        while let item = try cursor.next() {
            guard item.key.kind <= Kind.inodeImage else {
                afterImage = item
                break
            }
            image.append(item)
        }
        func rest() throws -> [TreeItem] {
            var items = afterImage.map { [$0] } ?? []
            while let item = try cursor.next() { items.append(item) }
            return items
        }
        guard !image.isEmpty else {
            // No image: nothing, or items of an inode the tree does not hold (refused there).
            let items = try rest()
            return items.isEmpty ? nil : try decodeObject(ino, items: items, nextInode: nextInode, cache: cache)
        }
        return try decodeObject(ino, items: image, nextInode: nextInode, cache: cache, restIfNotDirectory: rest)
    }

    /// A directory read without its entries has no extents and no item of a kind it cannot
    /// have, as reading it whole would check: two paths of the tree, not its entries.
    private func refuseStrayItems(ofDirectory ino: InodeNumber) throws {
        for (below, allowed) in [(Kind.fileExtent, Kind.directoryEntry), (UInt8.max, Kind.nameIndex)] {
            guard let item = try tree.lastItem(atOrBelow: TreeKey(object: ino, kind: below, offset: .max)), item.key.object == ino,
                  item.key.kind > allowed else { continue }
            throw DecodingError(description: item.key.kind == Kind.fileExtent
                                ? "the metadata tree holds extents for inode \(ino), which is not a regular file it holds"
                                : "the metadata tree holds an item of unknown kind \(item.key)")
        }
    }

    /// One inode from its items (in key order: image pieces, then entries and name index, or
    /// extents). With `restIfNotDirectory`, the items are the image only: a directory stays
    /// partial (its entries are read from the tree when asked for), anything else reads the
    /// rest of its items from it. Otherwise a directory's entries are all read, checked against
    /// its totals and name index, and it is complete.
    private func decodeObject(_ ino: InodeNumber, items: [TreeItem], nextInode: InodeNumber, cache: PageCache?,
                              restIfNotDirectory: (() throws -> [TreeItem])? = nil) throws -> Inode {
        var items = items
        var index = 0
        var image: [UInt8] = []
        var pieces: UInt64 = 0
        while index < items.count, items[index].key.kind == Kind.inodeImage {
            guard items[index].key.offset == pieces else {
                throw DecodingError(description: "the metadata tree's image of inode \(ino) misses piece \(pieces)")
            }
            pieces += 1
            image += items[index].value
            index += 1
        }
        guard pieces > 0 else {
            switch items[index].key.kind {
            case Kind.directoryEntry:
                throw DecodingError(description: "the metadata tree holds directory entries for inode \(ino), which is not a directory it holds")
            case Kind.fileExtent:
                throw DecodingError(description: "the metadata tree holds extents for inode \(ino), which is not a regular file it holds")
            default:
                throw DecodingError(description: "the metadata tree holds an item of unknown kind \(items[index].key)")
            }
        }
        var reader = ByteReader(image)
        let inode = try CheckpointCodec.decodeInode(&reader, superblock: superblock,
                                                    layout: InodeImageLayout(version: superblock.version), cache: cache)
        guard inode.ino == ino, reader.remaining == 0, inode.directory.map({ !$0.isComplete || $0.isEmpty }) ?? true,
              inode.extents.extents.isEmpty else {
            throw DecodingError(description: "the metadata tree's image of inode \(ino) is malformed")
        }
        guard inode.ino >= FileSystem.rootInode, inode.ino < nextInode else {
            throw DecodingError(description: "inode number \(inode.ino) is not below the next inode number \(nextInode)")
        }
        var entriesInTree = false
        if let restIfNotDirectory {
            if inode.type == .directory {
                try refuseStrayItems(ofDirectory: ino)
                entriesInTree = true
            } else {
                items += try restIfNotDirectory()
            }
        }
        if inode.type == .directory, !entriesInTree {
            try readEntries(of: inode, items: items, index: &index, nextInode: nextInode)
        } else if index < items.count, items[index].key.kind == Kind.directoryEntry || items[index].key.kind == Kind.nameIndex {
            throw DecodingError(description: "the metadata tree holds directory entries for inode \(ino), which is not a directory it holds")
        }
        if index < items.count, items[index].key.kind == Kind.fileExtent {
            guard inode.type == .regular else {
                throw DecodingError(description: "the metadata tree holds extents for inode \(ino), which is not a regular file it holds")
            }
            var extents: [FileExtent] = []
            while index < items.count, items[index].key.kind == Kind.fileExtent {
                let extent = try decodeExtent(items[index])
                if let last = extents.last, last.logicalEnd > extent.logical {
                    throw DecodingError(description: "inode \(ino) has overlapping extents at logical block \(extent.logical)")
                }
                extents.append(extent)
                index += 1
            }
            inode.extents = ExtentMap(validated: extents)
        }
        guard index == items.count else {
            throw DecodingError(description: "the metadata tree holds an item of unknown kind \(items[index].key)")
        }
        // What the tree holds of it is what memory holds: the next checkpoint rewrites only the
        // entries and extents that change (and a tree without a name index is rewritten whole
        // by its first checkpoint, its conversion).
        if inode.type == .directory, hasNameIndex { inode.checkpointEntryCookies = [] }
        if inode.type == .regular {
            inode.extentsCheckpointed()
            // What the tree holds is also what the log's records leave (a checkpoint holds every
            // closed transaction), so the next record can carry a change of the map.
            inode.unloggedExtentRange = 0..<0
        }
        return inode
    }
}

extension MetadataTree {
    /// A directory's entry items from `index` on, then (version 7) its name index, into the
    /// inode's directory, which becomes complete: the entries must match the image's totals
    /// and the index must list exactly the entries' cookies under their names' hashes.
    fileprivate func readEntries(of inode: Inode, items: [TreeItem], index: inout Int, nextInode: InodeNumber) throws {
        let ino = inode.ino
        let stored = inode.directory ?? Directory()
        // Built apart from the inode, so that each restore changes a uniquely held value.
        var directory = Directory(emptyWithNextCookie: stored.nextCookie)
        var expectedIndex: [UInt64: [IndexRecord]] = [:]
        let layout = nameIndexLayout
        while index < items.count, items[index].key.kind == Kind.directoryEntry {
            let cookie = items[index].key.offset >> 2
            var parts: [TreeItem] = []
            while index < items.count, items[index].key.kind == Kind.directoryEntry, items[index].key.offset >> 2 == cookie {
                parts.append(items[index])
                index += 1
            }
            let (name, entry) = try decodeEntry(of: ino, cookie: cookie, parts: parts)
            guard entry.ino < nextInode, cookie < directory.nextCookie, directory.entry(named: name) == nil else {
                throw DecodingError(description: "directory \(ino) has a malformed or duplicate entry at cookie \(cookie)")
            }
            directory.restore(name: name, entry: entry)
            if layout != .none {
                expectedIndex[nameHash(name), default: []].append(IndexRecord(cookie: cookie, child: entry.ino, type: entry.type, name: name))
            }
        }
        if index < items.count, items[index].key.kind == Kind.fileExtent {
            throw DecodingError(description: "the metadata tree holds extents for inode \(ino), which is not a regular file it holds")
        }
        if layout != .none {
            guard directory.count == stored.count, directory.encodedEntryBytes == stored.encodedEntryBytes else {
                throw DecodingError(description: "directory \(ino) holds \(directory.count) entries, its image says \(stored.count)")
            }
            while index < items.count, items[index].key.kind == Kind.nameIndex {
                let hash = items[index].key.offset
                let expected = expectedIndex.removeValue(forKey: hash) ?? []
                let matches: Bool
                if layout == .cookies {
                    matches = try decodeCookieIndex(items[index].value, directory: ino, hash: hash) == expected.map(\.cookie)
                } else {
                    // Decoded for what a malformed value says; then it must be exactly what a
                    // checkpoint writes for these entries.
                    _ = try decodeIndex(items[index].value, directory: ino, hash: hash)
                    matches = encodeIndex(expected) == items[index].value
                }
                guard matches else {
                    throw DecodingError(description: "directory \(ino)'s name index at hash \(hash) does not match its entries")
                }
                index += 1
            }
            if let (hash, _) = expectedIndex.first {
                throw DecodingError(description: "directory \(ino)'s name index misses hash \(hash) of its entries")
            }
        }
        directory.markComplete()
        inode.directory = directory
    }
}

/// Format version 5's items of object 0 beyond the next inode number and reference counts.
struct StoredVolumeItems {
    var fileBlocks: BlockRunSet
    /// Version 10: the free runs (by position; checked against those by size when those were read).
    var free: BlockRunSet?
    /// Version 10: the older copy's nodes this tree no longer reaches.
    var held: [BlockRun] = []
    var inodeCount: UInt64
    var inodeBytes: UInt64
    var orphans: [InodeNumber]
}

/// Gathers and checks object 0's items in key order: the next inode number (read apart), reference
/// counts and file block runs sorted and disjoint (joined where cut), free runs and held nodes
/// (version 10) sorted and never touching, one counts item in range, orphans in range with empty
/// values; any other kind is refused. And the free runs by size, when the caller reads those too.
private struct VolumeItemsBuilder {
    var references: [ReferenceCounts.Entry] = []
    var fileBlocks: [BlockRun] = []
    var free: [BlockRun] = []
    var held: [BlockRun] = []
    /// The free runs by size, in key order, when the caller reads those items (nil: not read).
    var bySize: [BlockRun]?
    var counts: (UInt64, UInt64)?
    var orphans: [InodeNumber] = []

    mutating func add(_ item: TreeItem, tree: MetadataTree, nextInode: InodeNumber) throws {
        let superblock = tree.superblock
        switch item.key.kind {
        case MetadataTree.Kind.nextInodeNumber where item.key.offset == 0:
            // Read by storedNextInode; any other offset is an item no checkpoint writes (default).
            break
        case MetadataTree.Kind.referenceCount:
            let reference = try tree.decodeReference(item)
            if let last = references.last, last.run.end > reference.run.start {
                throw DecodingError(description: "reference count entries overlap at block \(reference.run.start)")
            }
            if let last = references.last, last.run.end == reference.run.start, last.count == reference.count {
                references[references.count - 1].run.count += reference.run.count
            } else {
                references.append(reference)
            }
        case MetadataTree.Kind.fileBlocks:
            let run = try tree.decodeFileBlocks(item)
            if let last = fileBlocks.last, last.end > run.start {
                throw DecodingError(description: "file block entries overlap at block \(run.start)")
            }
            if let last = fileBlocks.last, last.end == run.start {
                fileBlocks[fileBlocks.count - 1].count += run.count
            } else {
                fileBlocks.append(run)
            }
        case MetadataTree.Kind.freeSpace where superblock.version >= Superblock.freeSpaceVersion:
            let run = try tree.decodeFreeSpace(item)
            // Stored maximal: two runs never touch.
            if let last = free.last, last.end >= run.start {
                throw DecodingError(description: "free space entries overlap or touch at block \(run.start)")
            }
            free.append(run)
        case MetadataTree.Kind.heldNodes where superblock.version >= Superblock.freeSpaceVersion:
            let run = try tree.decodeHeldNodes(item)
            if let last = held.last, last.end >= run.start {
                throw DecodingError(description: "held nodes entries overlap or touch at block \(run.start)")
            }
            held.append(run)
        case MetadataTree.Kind.volumeCounts:
            var reader = ByteReader(item.value)
            let count = try reader.u64(), bytes = try reader.u64()
            guard item.key.offset == 0, reader.remaining == 0, count >= 1, count <= superblock.maxInodes,
                  bytes <= superblock.blockCount &* UInt64(superblock.blockSize) else {
                throw DecodingError(description: "the metadata tree's inode count item is malformed or out of range")
            }
            counts = (count, bytes)
        case MetadataTree.Kind.orphan:
            guard item.value.isEmpty, item.key.offset >= FileSystem.rootInode, item.key.offset < nextInode else {
                throw DecodingError(description: "the metadata tree's orphan item \(item.key.offset) is malformed or out of range")
            }
            orphans.append(item.key.offset)
        default:
            throw DecodingError(description: "the metadata tree holds an item of unknown kind \(item.key)")
        }
    }

    /// Nil when the tree has no counts item (version 4); then it must hold no other volume item.
    func finish(version: UInt32) throws -> StoredVolumeItems? {
        guard let counts else {
            guard fileBlocks.isEmpty, orphans.isEmpty, free.isEmpty, held.isEmpty, bySize?.isEmpty ?? true else {
                throw DecodingError(description: "the metadata tree has file block or orphan items but no inode count")
            }
            return nil
        }
        var set = BlockRunSet()
        for run in fileBlocks { set.insert(run) }
        if let bySize {
            // By size then position: the same runs, each once.
            guard bySize.count == free.count, bySize.sorted(by: { $0.start < $1.start }) == free else {
                throw DecodingError(description: "free space by size (\(bySize.count) runs) does not match free space by position (\(free.count) runs)")
            }
        }
        let stored = version >= Superblock.freeSpaceVersion ? BlockRunSet(free) : nil
        return StoredVolumeItems(fileBlocks: set, free: stored, held: held, inodeCount: counts.0, inodeBytes: counts.1, orphans: orphans)
    }
}
