import ExtentFSCore

// What of the log record (ExtentFSCore/Journal/LogRecord.swift, which encodes and decodes it in
// InodeImages) works on the engine's Inodes: a record made from the metadata in memory, and
// replay, which applies a record to the Inodes mount builds.

extension LogRecord {
    /// Caller holds Metadata.lock: closes the running transaction and copies what it changed.
    static func close(_ metadata: Metadata) -> (sequence: LogSequence, record: LogRecord) {
        let closed = metadata.changes.close()
        metadata.sinceCheckpoint.add(inodes: closed.inodes, referenceRuns: closed.referenceRuns, fileBlockChanges: closed.fileBlockChanges)
        var inodes: [Change] = []
        inodes.reserveCapacity(closed.inodes.count)
        let entryChangesAllowed = metadata.superblock.version >= directoryChangesVersion
        let extentChangesAllowed = metadata.superblock.version >= extentChangesVersion
        for ino in closed.inodes.sorted() {
            guard let inode = metadata.inodes[ino] else {
                inodes.append(.removed(ino))
                continue
            }
            if inode.type == .directory, entryChangesAllowed, let entryChanges = inode.unloggedEntryChanges,
               let directory = inode.directory {
                var image = InodeImage(inode)
                image.directory = directory.strippedOfEntries
                inodes.append(.directoryChanges(image, entryChanges))
            } else if inode.type == .regular, extentChangesAllowed, let range = inode.unloggedExtentRange {
                var image = InodeImage(inode)
                image.extents = ExtentMap(validated: range.isEmpty ? [] : inode.extents.extents(from: range.lowerBound, to: range.upperBound))
                inodes.append(.extentChanges(image, range: range))
            } else {
                inodes.append(.image(InodeImage(inode)))
            }
            if inode.type == .directory { inode.unloggedEntryChanges = [] }
            if inode.type == .regular { inode.unloggedExtentRange = 0..<0 }
        }
        let ranges = BlockRun.merged(closed.referenceRuns).map { run in (run, metadata.referenceCounts.entries(within: run)) }
        let volume = metadata.superblock.version >= volumeItemsVersion
            ? VolumeChanges(inodeCount: metadata.inodeCount, inodeBytes: UInt64(max(0, metadata.space.inodeBytes)),
                            fileBlockChanges: closed.fileBlockChanges)
            : nil
        return (closed.sequence, LogRecord(nextInode: metadata.nextInode, inodes: inodes, referenceRanges: ranges,
                                           volume: volume, touchesData: closed.touchesData))
    }

    /// Applies an encoded record to the state being loaded. Throws on anything malformed: a
    /// record whose checksum matched but does not decode is damage, not the end of the log.
    static func apply(_ payload: [UInt8], to state: inout ReplayState, superblock: Superblock, cache: PageCache?) throws {
        let record = try decode(payload, superblock: superblock)
        state.nextInode = record.nextInode
        for change in record.inodes {
            let (ino, inode, entryChanges, extentRange): (InodeNumber, Inode?, [Directory.Change]?, Range<UInt64>?) = switch change {
            case .image(let image): (image.ino, Inode.decoded(image, cache: cache), nil, nil)
            case .removed(let removed): (removed, nil, nil, nil)
            case .directoryChanges(let image, let changes): (image.ino, Inode.decoded(image, cache: cache), changes, nil)
            case .extentChanges(let image, let range): (image.ino, Inode.decoded(image, cache: cache), nil, range)
            }
            if let extentRange, let inode {
                guard let base = try state.inode(ino), base.type == .regular else {
                    throw DecodingError(description: "log record changes the extents of file \(ino), which the metadata it applies to does not have")
                }
                var map = base.extents
                map.remove(from: extentRange.lowerBound, to: extentRange.upperBound)
                for extent in inode.extents.extents { map.insert(extent) }
                inode.extents = map
                // The tree's extents differ from the result where they differed from the base's
                // and within this change (unknown stays unknown: rewritten whole).
                inode.checkpointExtentRange = base.checkpointExtentRange.map { Inode.joined($0, extentRange) }
                inode.followedExtentStamp = inode.extents.stamp
            }
            if let entryChanges, let inode {
                guard let base = try state.inode(ino), var directory = base.directory else {
                    throw DecodingError(description: "log record changes the entries of directory \(ino), which the metadata it applies to does not have")
                }
                let logged = inode.directory!
                for change in entryChanges { try directory.apply(change) }
                directory.raiseNextCookie(to: logged.nextCookie)
                if directory.isComplete {
                    // A version 7 image's totals must be what the changes leave.
                    guard logged.isComplete || (logged.count == directory.count && logged.encodedEntryBytes == directory.encodedEntryBytes) else {
                        throw DecodingError(description: "log record's entry totals for directory \(ino) do not match its entries")
                    }
                } else {
                    directory.setTotals(count: logged.count, encodedEntryBytes: logged.encodedEntryBytes)
                    // Not written whole: the next checkpoint rewrites what changed since the tree's.
                    var cookies = base.checkpointEntryCookies ?? []
                    for change in entryChanges {
                        switch change {
                        case .set(_, let entry): cookies.insert(entry.cookie)
                        case .remove(_, let cookie): if let cookie { cookies.insert(cookie) }
                        }
                    }
                    inode.checkpointEntryCookies = cookies
                }
                inode.directory = directory
            }
            state.set(ino, inode)
        }
        for (run, entries) in record.referenceRanges {
            state.referenceCounts.replace(run, with: entries)
            state.changedReferenceRuns.append(run)
        }
        if let volume = record.volume {
            state.inodeCount = volume.inodeCount
            state.inodeBytes = volume.inodeBytes
            for change in volume.fileBlockChanges {
                if change.allocated { state.fileBlocks.insert(change.run) } else { state.fileBlocks.remove(change.run) }
            }
            state.fileBlockChanges += volume.fileBlockChanges
        }
    }
}

/// The metadata as replay builds it: a checkpoint, then each record applied in order.
struct ReplayState {
    var nextInode: InodeNumber
    /// The inodes replay holds: every inode when the checkpoint was loaded whole, else those the
    /// records changed (and the ones they needed).
    var inodes: [InodeNumber: Inode]
    var referenceCounts: ReferenceCounts
    /// What replay changed: the next checkpoint writes it into the metadata tree.
    var changed = Set<InodeNumber>()
    var changedReferenceRuns: [BlockRun] = []
    /// Inodes a record removed (so not to be read from the checkpoint again).
    var removed = Set<InodeNumber>()
    /// Format version 5: the blocks files use, the inode count and bytes, as the tree holds them
    /// and the records change them (meaningful only when the tree holds them).
    var fileBlocks = BlockRunSet()
    var fileBlockChanges: [FileBlockChange] = []
    var inodeCount: UInt64?
    var inodeBytes: UInt64?
    /// Reads an inode the checkpoint holds and `inodes` does not (nil: `inodes` is everything).
    var loadFromCheckpoint: ((InodeNumber) throws -> Inode?)?

    init(nextInode: InodeNumber, inodes: [InodeNumber: Inode], referenceCounts: ReferenceCounts,
         loadFromCheckpoint: ((InodeNumber) throws -> Inode?)? = nil) {
        self.nextInode = nextInode
        self.inodes = inodes
        self.referenceCounts = referenceCounts
        self.loadFromCheckpoint = loadFromCheckpoint
    }

    /// Inode `ino` as the records so far leave it.
    mutating func inode(_ ino: InodeNumber) throws -> Inode? {
        if let inode = inodes[ino] { return inode }
        guard !removed.contains(ino), let load = loadFromCheckpoint, let inode = try load(ino) else { return nil }
        inodes[ino] = inode
        return inode
    }

    /// A record leaves inode `ino` as `inode` (nil: gone).
    mutating func set(_ ino: InodeNumber, _ inode: Inode?) {
        if let inode {
            inodes[ino] = inode
            removed.remove(ino)
        } else {
            inodes.removeValue(forKey: ino)
            removed.insert(ino)
        }
        changed.insert(ino)
    }
}
