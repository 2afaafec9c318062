/// The payload of a transaction record: the images of the inodes it changed (or that they are
/// gone), a directory's entry changes in place of its entries once its image is on record, and
/// the reference counts over the ranges it changed. Replaying a record makes those objects
/// exactly what they were when the transaction closed; every change is absolute (an image, an
/// entry's value or absence), so replay is idempotent and a record needs nothing from the one
/// before it but the state it was logged over.
///
///     u64 next inode number
///     u64 inode count, per inode: u8 kind (1, 4 or 6 image, 2 removed, 3, 5 or 7 directory
///         changes), then the inode as in a checkpoint (kind 1, 4, 6), u64 inode number (kind 2),
///         or (kind 3, 5, 7; format version 3) the directory as in a checkpoint but with no
///         entries, then u64 change count, per change: u8 (1 set, 2 remove), u16 name length,
///         name, and for a set u64 inode, u64 cookie, u8 type, for a removal of kind 7 the
///         removed entry's u64 cookie. Kinds 4 and 5 (format version 6) are 1 and 3 with the
///         image's version 6 layout (btime and flags), 6 and 7 (format version 7) with layout
///         version 7 (a directory's entry totals); the older kinds are still read, as images of
///         the layout before (InodeImageLayout). Kind 8 (format version 8): u64 range start,
///         u64 range end, then a regular file's image (layout version 7) whose extents are its
///         map's within that range, clipped: its extents outside the range are what they were.
///     u64 range count, per range: u64 first block, u64 block count,
///         u64 entry count, per entry: u64 first block, u64 block count, u32 count (>= 2)
///     (format version 5, when the volume is) u8 1, u64 inode count, u64 inode checkpoint bytes,
///         u64 file block change count, per change: u8 (1 became file blocks, 2 ceased to be),
///         u64 first block, u64 block count. A record without it (an older volume's) changes none
///         of these: it is recognized by ending after the reference ranges.
package struct LogRecord {
    package enum Change {
        case image(InodeImage)
        case removed(InodeNumber)
        /// The directory's image without entries, and the changes to its entries.
        case directoryChanges(InodeImage, [Directory.Change])
        /// A regular file's image whose extents are the map's within `range` (clipped to it):
        /// the file's extents outside it are what they were (format version 8).
        case extentChanges(InodeImage, range: Range<UInt64>)
    }

    /// Format version 8 brings extent changes: a record of a file of many extents costs what
    /// changed in its map, not the map.
    package static let extentChangesVersion: UInt32 = 8

    /// Format version 3 brings directory changes; an image still on version 2 (until its first
    /// checkpoint writes version 3) gets whole images, which version 2 reads.
    package static let directoryChangesVersion: UInt32 = 3

    /// The kinds of an inode change, and the image layout each carries. The layout is tied to
    /// the kind, not to the superblock's version: the older superblock copy of an image
    /// converted at its last checkpoint may replay records written after it. A record of kind 4
    /// or 5 is written only once a checkpoint has made the superblock version 6 (an image of an
    /// older version converts at mount, before anything is logged: FileSystem.mount), so an
    /// older extentfs never finds one in a log it would replay.
    package enum Kind {
        package static let legacyImage: UInt8 = 1
        package static let removed: UInt8 = 2
        package static let legacyDirectoryChanges: UInt8 = 3
        package static let version6Image: UInt8 = 4
        package static let version6DirectoryChanges: UInt8 = 5
        /// Format version 7: images of layout version 7 (a directory's entry totals), and a
        /// removal carries its entry's cookie.
        package static let image: UInt8 = 6
        package static let directoryChanges: UInt8 = 7
        /// Format version 8: u64 range start, u64 range end, then the image (layout version 7)
        /// with the extents in the range.
        package static let extentChanges: UInt8 = 8

        package static func layout(of kind: UInt8) -> InodeImageLayout {
            switch kind {
            case image, directoryChanges, extentChanges: return .version7
            case version6Image, version6DirectoryChanges: return .version6
            default: return .beforeVersion6
            }
        }
    }

    package var nextInode: InodeNumber
    package var inodes: [Change]
    package var referenceRanges: [(run: BlockRun, entries: [ReferenceCounts.Entry])]
    /// What the version 5 part carries (nil: the volume is older, the record has none of it).
    package var volume: VolumeChanges?

    package struct VolumeChanges {
        package var inodeCount: UInt64
        package var inodeBytes: UInt64
        package var fileBlockChanges: [FileBlockChange]

        package init(inodeCount: UInt64, inodeBytes: UInt64, fileBlockChanges: [FileBlockChange]) {
            self.inodeCount = inodeCount
            self.inodeBytes = inodeBytes
            self.fileBlockChanges = fileBlockChanges
        }
    }

    /// Format version 5 keeps the blocks files use, the inode count and orphans in the tree.
    package static let volumeItemsVersion: UInt32 = 5

    /// Changes a block map, a logged size or reference counts (not written: decides the preflush).
    package var touchesData = false

    package var isEmpty: Bool { inodes.isEmpty && referenceRanges.isEmpty }

    package init(nextInode: InodeNumber, inodes: [Change], referenceRanges: [(run: BlockRun, entries: [ReferenceCounts.Entry])],
                 volume: VolumeChanges? = nil, touchesData: Bool = false) {
        self.nextInode = nextInode
        self.inodes = inodes
        self.referenceRanges = referenceRanges
        self.volume = volume
        self.touchesData = touchesData
    }

    /// The payload.
    package func encode() -> [UInt8] {
        var writer = ByteWriter(capacity: 256 + inodes.count * 160)
        writer.u64(nextInode)
        writer.u64(UInt64(inodes.count))
        for change in inodes {
            switch change {
            case .image(let image):
                writer.u8(Kind.image)
                CheckpointCodec.encode(image, into: &writer, layout: .version7)
            case .removed(let ino):
                writer.u8(Kind.removed)
                writer.u64(ino)
            case .extentChanges(let image, let range):
                writer.u8(Kind.extentChanges)
                writer.u64(range.lowerBound)
                writer.u64(range.upperBound)
                CheckpointCodec.encode(image, into: &writer, layout: .version7)
            case .directoryChanges(let image, let entryChanges):
                writer.u8(Kind.directoryChanges)
                CheckpointCodec.encode(image, into: &writer, layout: .version7)
                writer.u64(UInt64(entryChanges.count))
                for change in entryChanges {
                    switch change {
                    case .set(let name, let entry):
                        writer.u8(1)
                        writer.blob16(name)
                        writer.u64(entry.ino)
                        writer.u64(entry.cookie)
                        writer.u8(UInt8(entry.type.rawValue >> 12))
                    case .remove(let name, let cookie):
                        writer.u8(2)
                        writer.blob16(name)
                        writer.u64(cookie ?? 0)
                    }
                }
            }
        }
        writer.u64(UInt64(referenceRanges.count))
        for range in referenceRanges {
            writer.u64(range.run.start)
            writer.u64(range.run.count)
            writer.u64(UInt64(range.entries.count))
            for entry in range.entries {
                writer.u64(entry.run.start)
                writer.u64(entry.run.count)
                writer.u32(entry.count)
            }
        }
        if let volume {
            writer.u8(1)
            writer.u64(volume.inodeCount)
            writer.u64(volume.inodeBytes)
            writer.u64(UInt64(volume.fileBlockChanges.count))
            for change in volume.fileBlockChanges {
                writer.u8(change.allocated ? 1 : 2)
                writer.u64(change.run.start)
                writer.u64(change.run.count)
            }
        }
        return writer.bytes
    }

    /// An encoded record, checked as far as it can be alone (the engine's replay checks the rest
    /// against the state it applies it to). Throws on anything malformed: a record whose checksum
    /// matched but does not decode is damage, not the end of the log.
    package static func decode(_ payload: [UInt8], superblock: Superblock) throws -> LogRecord {
        var reader = ByteReader(payload)
        let nextInode = try CheckpointCodec.validatedNextInode(try reader.u64())
        let count = try reader.count(minimumItemSize: 9)
        var changes: [Change] = []
        for _ in 0..<count {
            let kind = try reader.u8()
            switch kind {
            case Kind.legacyImage, Kind.legacyDirectoryChanges, Kind.version6Image, Kind.version6DirectoryChanges,
                 Kind.image, Kind.directoryChanges:
                let layout = Kind.layout(of: kind)
                let inode = try CheckpointCodec.decodeImage(&reader, superblock: superblock, layout: layout)
                guard inode.ino >= Superblock.rootInode, inode.ino < nextInode else {
                    throw DecodingError(description: "inode number \(inode.ino) is not below the next inode number \(nextInode)")
                }
                if kind == Kind.legacyImage || kind == Kind.version6Image || kind == Kind.image {
                    changes.append(.image(inode))
                    continue
                }
                // Not tied to the superblock's version: the older superblock copy of an image
                // converted at its last checkpoint may replay records written after it.
                guard inode.type == .directory, let directory = inode.directory,
                      layout.hasDirectoryTotals ? !directory.isComplete || directory.isEmpty : directory.isEmpty else {
                    throw DecodingError(description: "log record has entry changes for inode \(inode.ino), which they cannot apply to")
                }
                changes.append(.directoryChanges(inode, try decodeEntryChanges(&reader, nextInode: nextInode, directory: inode.ino,
                                                                               removalsHaveCookies: layout.hasDirectoryTotals)))
            case Kind.extentChanges:
                let start = try reader.u64()
                let end = try reader.u64()
                let maxLogical = Superblock.maxFileSize / UInt64(superblock.blockSize)
                guard start <= end, end <= maxLogical else {
                    throw DecodingError(description: "log record has an extent change range out of range: \(start)..<\(end)")
                }
                let inode = try CheckpointCodec.decodeImage(&reader, superblock: superblock, layout: .version7)
                guard inode.ino >= Superblock.rootInode, inode.ino < nextInode, inode.type == .regular,
                      inode.extents.extents.allSatisfy({ $0.logical >= start && $0.logicalEnd <= end }) else {
                    throw DecodingError(description: "log record has extent changes for inode \(inode.ino) that are not a regular file's within their range")
                }
                changes.append(.extentChanges(inode, range: start..<end))
            case Kind.removed:
                changes.append(.removed(try reader.u64()))
            default:
                throw DecodingError(description: "log record has an inode change of unknown kind \(kind)")
            }
        }
        let rangeCount = try reader.count(minimumItemSize: 24)
        var ranges: [(run: BlockRun, entries: [ReferenceCounts.Entry])] = []
        for _ in 0..<rangeCount {
            let run = BlockRun(start: try reader.u64(), count: try reader.u64())
            guard run.count > 0, run.start >= superblock.firstAllocatableBlock, run.start < superblock.blockCount,
                  run.count <= superblock.blockCount - run.start else {
                throw DecodingError(description: "log record has a reference-count range out of range: \(run)")
            }
            let entryCount = try reader.count(minimumItemSize: 20)
            var entries: [ReferenceCounts.Entry] = []
            for _ in 0..<entryCount {
                let entryRun = BlockRun(start: try reader.u64(), count: try reader.u64())
                let value = try reader.u32()
                guard entryRun.count > 0, value >= 2, entryRun.start >= run.start, entryRun.start < run.end,
                      entryRun.count <= run.end - entryRun.start,
                      entries.last.map({ $0.run.end <= entryRun.start }) ?? true else {
                    throw DecodingError(description: "log record has a malformed reference count in \(run)")
                }
                entries.append(ReferenceCounts.Entry(run: entryRun, count: value))
            }
            ranges.append((run, entries))
        }
        var volume: VolumeChanges?
        if reader.remaining > 0 {
            guard try reader.u8() == 1 else { throw DecodingError(description: "log record has an unknown part after its reference counts") }
            let inodeCount = try reader.u64()
            let inodeBytes = try reader.u64()
            guard inodeCount <= superblock.maxInodes, inodeBytes <= superblock.blockCount &* UInt64(superblock.blockSize) else {
                throw DecodingError(description: "log record has an inode count or size out of range")
            }
            let changeCount = try reader.count(minimumItemSize: 17)
            var fileBlockChanges: [FileBlockChange] = []
            fileBlockChanges.reserveCapacity(changeCount)
            for _ in 0..<changeCount {
                let kind = try reader.u8()
                let run = BlockRun(start: try reader.u64(), count: try reader.u64())
                guard kind == 1 || kind == 2, run.count > 0, run.start >= superblock.firstAllocatableBlock,
                      run.start < superblock.blockCount, run.count <= superblock.blockCount - run.start else {
                    throw DecodingError(description: "log record has a malformed file block change \(run)")
                }
                fileBlockChanges.append(FileBlockChange(allocated: kind == 1, run: run))
            }
            volume = VolumeChanges(inodeCount: inodeCount, inodeBytes: inodeBytes, fileBlockChanges: fileBlockChanges)
        }
        guard reader.remaining == 0 else { throw DecodingError(description: "log record has \(reader.remaining) trailing bytes") }
        return LogRecord(nextInode: nextInode, inodes: changes, referenceRanges: ranges, volume: volume)
    }
}

extension LogRecord {
    /// A kind 3 record's entry changes, each checked as a checkpoint's entries are.
    fileprivate static func decodeEntryChanges(_ reader: inout ByteReader, nextInode: InodeNumber,
                                               directory: InodeNumber, removalsHaveCookies: Bool) throws -> [Directory.Change] {
        let count = try reader.count(minimumItemSize: 3)
        var result: [Directory.Change] = []
        result.reserveCapacity(count)
        for _ in 0..<count {
            let kind = try reader.u8()
            let name = try reader.blob16()
            guard Directory.isValidEntryName(name) else {
                throw DecodingError(description: "log record has an invalid entry name in directory \(directory)")
            }
            switch kind {
            case 1:
                let ino = try reader.u64()
                let cookie = try reader.u64()
                let rawType = try reader.u8()
                guard ino >= Superblock.rootInode, ino < nextInode, let type = FileType(mode: UInt32(rawType) << 12) else {
                    throw DecodingError(description: "log record has a malformed entry in directory \(directory)")
                }
                result.append(.set(name: name, entry: Directory.Entry(ino: ino, type: type, cookie: cookie)))
            case 2:
                guard removalsHaveCookies else {
                    result.append(.remove(name: name, cookie: nil))
                    continue
                }
                let cookie = try reader.u64()
                guard Directory.isEntryCookie(cookie) else {
                    throw DecodingError(description: "log record removes an entry with an invalid cookie in directory \(directory)")
                }
                result.append(.remove(name: name, cookie: cookie))
            default:
                throw DecodingError(description: "log record has an entry change of unknown kind \(kind) in directory \(directory)")
            }
        }
        return result
    }
}
