/// Encodes and decodes the checkpoint payload: every inode with its attributes, xattrs, extents,
/// symlink target or directory entries, then the reference counts. Layout in docs/FORMAT.md.
/// Decoding checks structure and ranges and throws on anything malformed; cross-checks between
/// records (overlaps, link counts, reachability) are the Checker's.
package enum CheckpointCodec {
    package static let payloadMagic: [UInt8] = Array("EXCKPT01".utf8)

    package static func encode(nextInode: InodeNumber, inodes: [InodeImage], referenceCounts: ReferenceCounts) -> [UInt8] {
        var writer = ByteWriter(capacity: 4096 + inodes.count * 160)
        writer.raw(payloadMagic)
        writer.u64(nextInode)
        writer.u64(UInt64(inodes.count))
        // Whole checkpoints are versions 2 and 3 only (read for conversion, and made by tests
        // and the fuzzer to exercise that): their images have the layout of then.
        for image in inodes.sorted(by: { $0.ino < $1.ino }) {
            encode(image, into: &writer, layout: .beforeVersion6)
        }
        writer.u64(UInt64(referenceCounts.entries.count))
        for entry in referenceCounts.entries {
            writer.u64(entry.run.start)
            writer.u64(entry.run.count)
            writer.u32(entry.count)
        }
        return writer.bytes
    }

    package static func encode(_ inode: InodeImage, into writer: inout ByteWriter, layout: InodeImageLayout = .current) {
        writer.u64(inode.ino)
        writer.u32(inode.mode)
        writer.u32(inode.nlink)
        writer.u32(inode.uid)
        writer.u32(inode.gid)
        writer.u64(inode.rdev)
        writer.u64(inode.size)
        let times = layout.hasFlags ? [inode.atime, inode.mtime, inode.ctime, inode.btime] : [inode.atime, inode.mtime, inode.ctime]
        for time in times {
            writer.i64(time.seconds)
            writer.u32(UInt32(time.nanoseconds))
        }
        writer.u64(inode.generation)
        writer.u64(inode.parent)
        if layout.hasFlags { writer.u32(inode.flags.rawValue) }
        writer.u64(UInt64(inode.xattrs.count))
        for name in inode.xattrs.sortedNames {
            writer.blob16(name)
            writer.blob32(inode.xattrs[name]!)
        }
        switch inode.type {
        case .regular:
            let durable = inode.extents.extents.filter { $0.state != .delayed }
            writer.u64(UInt64(durable.count))
            for extent in durable {
                writer.u64(extent.logical)
                writer.u64(extent.length)
                writer.u64(extent.physical)
                writer.u8(extent.state.rawValue)
            }
        case .symlink:
            writer.blob16(inode.symlinkTarget)
        case .directory:
            let directory = inode.directory ?? Directory()
            writer.u64(directory.nextCookie)
            // A partial directory is only ever encoded stripped of its entries (none held).
            writer.u64(UInt64(directory.isComplete ? directory.count : 0))
            if directory.isComplete {
                directory.forEach(after: 0) { name, entry in
                    writer.u64(entry.ino)
                    writer.u64(entry.cookie)
                    writer.u8(UInt8(entry.type.rawValue >> 12))
                    writer.blob16(name)
                    return true
                }
            }
            if layout.hasDirectoryTotals {
                writer.u64(UInt64(directory.count))
                writer.u64(UInt64(directory.encodedEntryBytes))
            }
        default:
            break
        }
    }

    /// A whole checkpoint's payload (versions 2 and 3): the next inode number, every inode's image
    /// and the reference counts.
    package static func decode(_ bytes: [UInt8], superblock: Superblock) throws -> (InodeNumber, [InodeImage], ReferenceCounts) {
        var reader = ByteReader(bytes)
        guard try reader.raw(8) == payloadMagic else { throw DecodingError(description: "checkpoint payload has a bad magic number") }
        let nextInode = try validatedNextInode(try reader.u64())
        let inodeCount = try reader.count(minimumItemSize: 96)
        guard UInt64(inodeCount) <= superblock.maxInodes else {
            throw DecodingError(description: "checkpoint lists \(inodeCount) inodes, more than the volume's \(superblock.maxInodes)")
        }
        var inodes: [InodeImage] = []
        inodes.reserveCapacity(inodeCount)
        for _ in 0..<inodeCount {
            let inode = try decodeImage(&reader, superblock: superblock, layout: .beforeVersion6)
            guard inode.ino >= Superblock.rootInode, inode.ino < nextInode else {
                throw DecodingError(description: "inode number \(inode.ino) is not below the next inode number \(nextInode)")
            }
            inodes.append(inode)
        }
        let refcountCount = try reader.count(minimumItemSize: 20)
        var entries: [ReferenceCounts.Entry] = []
        for _ in 0..<refcountCount {
            let run = BlockRun(start: try reader.u64(), count: try reader.u64())
            let count = try reader.u32()
            guard run.count > 0, count >= 2, run.start >= superblock.firstAllocatableBlock, run.start < superblock.blockCount,
                  run.count <= superblock.blockCount - run.start else {
                throw DecodingError(description: "reference count entry \(run) is malformed or out of range")
            }
            if let last = entries.last, last.run.end > run.start {
                throw DecodingError(description: "reference count entries overlap or are out of order at \(run)")
            }
            entries.append(ReferenceCounts.Entry(run: run, count: count))
        }
        guard reader.remaining == 0 else { throw DecodingError(description: "checkpoint payload has \(reader.remaining) trailing bytes") }
        return (nextInode, inodes, ReferenceCounts(validated: entries))
    }

    /// Inode numbers are never reused; far below overflow, and far beyond any real volume.
    package static let maxInodeNumber: UInt64 = 1 << 48

    package static func validatedNextInode(_ value: UInt64) throws -> InodeNumber {
        guard value > Superblock.rootInode, value < maxInodeNumber else {
            throw DecodingError(description: "the next inode number \(value) is out of range")
        }
        return value
    }

    /// An extent read from disk (an image's or a metadata tree item's), in range: within the
    /// largest file and the volume's data area, never delayed.
    package static func validatedExtent(of ino: InodeNumber, logical: UInt64, length: UInt64, physical: UInt64, rawState: UInt8,
                                superblock: Superblock) throws -> FileExtent {
        guard let state = FileExtent.State(rawValue: rawState), state != .delayed else {
            throw DecodingError(description: "inode \(ino) has an extent with invalid state \(rawState)")
        }
        let maxLogical = Superblock.maxFileSize / UInt64(superblock.blockSize)
        guard length > 0, logical <= maxLogical, length <= maxLogical - logical,
              physical >= superblock.firstAllocatableBlock, physical < superblock.blockCount,
              length <= superblock.blockCount - physical else {
            throw DecodingError(description: "inode \(ino) has an extent out of range (logical \(logical), physical \(physical), length \(length))")
        }
        return FileExtent(logical: logical, length: length, physical: physical, state: state)
    }

    /// An image of `layout`. Flags other than InodeFlags.known are damage, not masked: they
    /// come from no extentfs, and a flag dropped silently could be an immutable file made
    /// writable. Of the result, only the fields `layout` holds and the inode's type has are
    /// read; the others are empty (the engine makes its Inode of it: Inode.decoded(_:cache:)).
    package static func decodeImage(_ reader: inout ByteReader, superblock: Superblock, layout: InodeImageLayout) throws -> InodeImage {
        let ino = try reader.u64()
        let mode = try reader.u32()
        guard let type = FileType(mode: mode) else { throw DecodingError(description: "inode \(ino) has an invalid mode \(String(mode, radix: 8))") }
        let nlink = try reader.u32()
        let uid = try reader.u32()
        let gid = try reader.u32()
        let rdev = try reader.u64()
        let size = try reader.u64()
        var times: [Timespec] = []
        for _ in 0..<(layout.hasFlags ? 4 : 3) {
            let seconds = try reader.i64()
            let nanoseconds = try reader.u32()
            guard nanoseconds < 1_000_000_000 else { throw DecodingError(description: "inode \(ino) has an invalid timestamp") }
            times.append(Timespec(seconds: seconds, nanoseconds: Int64(nanoseconds)))
        }
        var inode = InodeImage(ino: ino, mode: mode, nlink: nlink, uid: uid, gid: gid, rdev: rdev, size: size,
                               atime: times[0], mtime: times[1], ctime: times[2],
                               // Before version 6 the birth time was not kept: the epoch says "not known".
                               btime: layout.hasFlags ? times[3] : Timespec(seconds: 0, nanoseconds: 0),
                               flags: [], generation: 0, parent: 0, xattrs: ExtendedAttributes(), extents: ExtentMap(),
                               symlinkTarget: [], directory: nil, changedEntryCookies: nil, changedExtentRange: nil)
        inode.generation = try reader.u64()
        inode.parent = try reader.u64()
        if layout.hasFlags {
            let rawFlags = try reader.u32()
            let flags = InodeFlags(rawValue: rawFlags)
            guard flags.isSubset(of: .known) else {
                throw DecodingError(description: "inode \(ino) has unknown flags 0x\(String(rawFlags & ~InodeFlags.known.rawValue, radix: 16))")
            }
            inode.flags = flags
        }
        guard size <= Superblock.maxFileSize else { throw DecodingError(description: "inode \(ino) has size \(size), past the largest file") }
        let xattrCount = try reader.count(minimumItemSize: 6)
        for _ in 0..<xattrCount {
            let name = try reader.blob16()
            let value = try reader.blob32()
            guard ExtendedAttributes.isValid(name: name), inode.xattrs[name] == nil,
                  inode.xattrs.fits(name: name, valueBytes: value.count),
                  !AccessControlList.isACLName(name) || AccessControlList.isStorable(value, named: name, mode: mode) else {
                throw DecodingError(description: "inode \(ino) has a malformed extended attribute, or more than an inode may hold")
            }
            inode.xattrs[name] = value
        }
        switch type {
        case .regular:
            let count = try reader.count(minimumItemSize: 25)
            var extents: [FileExtent] = []
            extents.reserveCapacity(count)
            for _ in 0..<count {
                let logical = try reader.u64()
                let length = try reader.u64()
                let physical = try reader.u64()
                let rawState = try reader.u8()
                let extent = try validatedExtent(of: ino, logical: logical, length: length, physical: physical,
                                                 rawState: rawState, superblock: superblock)
                if let last = extents.last, last.logicalEnd > logical {
                    throw DecodingError(description: "inode \(ino) has overlapping or unsorted extents at logical block \(logical)")
                }
                extents.append(extent)
            }
            inode.extents = ExtentMap(validated: extents)
        case .symlink:
            inode.symlinkTarget = try reader.blob16()
        case .directory:
            var directory = Directory()
            let nextCookie = try reader.u64()
            guard nextCookie >= Directory.firstEntryCookie, nextCookie < Directory.maxCookie else {
                throw DecodingError(description: "directory \(ino) has an invalid next cookie \(nextCookie)")
            }
            let count = try reader.count(minimumItemSize: 19)
            for _ in 0..<count {
                let child = try reader.u64()
                let cookie = try reader.u64()
                let rawType = try reader.u8()
                let name = try reader.blob16()
                guard let childType = FileType(mode: UInt32(rawType) << 12) else {
                    throw DecodingError(description: "directory \(ino) has an entry of invalid type \(rawType)")
                }
                guard cookie >= Directory.firstEntryCookie, cookie < nextCookie, directory.entry(named: name) == nil else {
                    throw DecodingError(description: "directory \(ino) has a malformed or duplicate entry")
                }
                directory.restore(name: name, entry: Directory.Entry(ino: child, type: childType, cookie: cookie))
            }
            directory.restore(nextCookie: nextCookie)
            if layout.hasDirectoryTotals {
                let total = try reader.u64()
                let bytes = try reader.u64()
                if count > 0 {
                    guard total == UInt64(directory.count), bytes == UInt64(directory.encodedEntryBytes) else {
                        throw DecodingError(description: "directory \(ino)'s entry totals do not match its entries")
                    }
                } else if total > 0 {
                    // The entries are elsewhere (the tree's items, or the log's changes): the
                    // totals must be what some set of valid names could take.
                    // Compared by division: the products of hostile values could overflow.
                    let minimum = UInt64(Directory.encodedEntryOverhead + 1), maximum = UInt64(Directory.encodedEntryOverhead + Superblock.maxNameLength)
                    guard total < nextCookie, bytes <= UInt64(Int.max), total <= bytes / minimum,
                          bytes / maximum + (bytes % maximum == 0 ? 0 : 1) <= total else {
                        throw DecodingError(description: "directory \(ino) has entry totals out of range (\(total) entries, \(bytes) bytes)")
                    }
                    directory = Directory(partialWithNextCookie: nextCookie, count: Int(total), encodedEntryBytes: Int(bytes))
                } else {
                    guard bytes == 0 else { throw DecodingError(description: "directory \(ino) has no entries but \(bytes) bytes of them") }
                }
            }
            inode.directory = directory
        default:
            break
        }
        return inode
    }
}

/// The index of a checkpoint: the runs of blocks holding its payload, in order.
package enum CheckpointIndex {
    package static let magic: [UInt8] = Array("EXINDX01".utf8)

    package static func encode(payloadRuns: [BlockRun]) -> [UInt8] {
        var writer = ByteWriter()
        writer.raw(magic)
        writer.u64(UInt64(payloadRuns.count))
        for run in payloadRuns {
            writer.u64(run.start)
            writer.u64(run.count)
        }
        return writer.bytes
    }

    package static func decode(_ bytes: [UInt8], superblock: Superblock) throws -> [BlockRun] {
        var reader = ByteReader(bytes)
        guard try reader.raw(8) == magic else { throw DecodingError(description: "checkpoint index has a bad magic number") }
        let count = try reader.count(minimumItemSize: 16)
        var runs: [BlockRun] = []
        // A checkpoint never takes more blocks than the volume has: this also keeps the sum of
        // the runs (the payload's capacity) from overflowing.
        var total: UInt64 = 0
        for _ in 0..<count {
            let run = BlockRun(start: try reader.u64(), count: try reader.u64())
            guard run.count > 0, run.start >= superblock.firstAllocatableBlock, run.start < superblock.blockCount,
                  run.count <= superblock.blockCount - run.start, run.count <= superblock.blockCount - total else {
                throw DecodingError(description: "checkpoint index run \(run) is out of range")
            }
            total += run.count
            runs.append(run)
        }
        return runs
    }
}
