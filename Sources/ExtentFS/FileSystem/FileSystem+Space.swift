import ExtentFSCore
import SystemPackage

/// fallocate(2). Every mode that moves or removes blocks holds the inode lock, then the
/// invalidate_lock exclusively, from before its pages go until the extent map has changed
/// (rule 1). Validation follows the VFS and XFS: EOPNOTSUPP for unknown or unsupported mode
/// combinations, EINVAL for bad ranges, EFBIG past the largest file.
extension FileSystem {
    /// `caller`: who changes the file; unless privileged, the set-user-ID and set-group-ID bits
    /// go, in every mode, as XFS's fallocate takes them (FileSystem+Privileges.swift). In-process
    /// callers act as root.
    public func fallocate(_ ino: InodeNumber, offset: UInt64, length: UInt64, mode: FallocateMode,
                          by caller: Credentials = .root) throws {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        let known: FallocateMode = [.keepSize, .punchHole, .collapseRange, .zeroRange, .insertRange, .unshareRange]
        guard mode.isSubset(of: known) else { throw Errno.notSupported }
        let inode = try self.inode(ino)
        switch inode.type {
        case .regular: break
        case .directory: throw Errno.isDirectory
        case .fifo: throw Errno.illegalSeek
        default: throw Errno(rawValue: 19)  // ENODEV
        }
        guard length > 0 else { throw Errno.invalidArgument }
        guard offset <= Superblock.maxFileSize, length <= Superblock.maxFileSize - offset else { throw Errno.fileTooLarge }
        let operation: () throws -> Void
        switch mode.subtracting(.keepSize) {
        case []:
            operation = { try self.preallocate(inode, offset: offset, length: length, keepSize: mode.contains(.keepSize)) }
        case .punchHole:
            guard mode.contains(.keepSize) else { throw Errno.notSupported }
            operation = { try self.punchHole(inode, offset: offset, length: length) }
        case .zeroRange:
            operation = { try self.zeroRange(inode, offset: offset, length: length, keepSize: mode.contains(.keepSize)) }
        case .unshareRange:
            // As XFS: unshare, then preallocate the range (holes become unwritten).
            operation = {
                try self.unshare(inode, offset: offset, length: length)
                try self.preallocate(inode, offset: offset, length: length, keepSize: mode.contains(.keepSize))
            }
        case .collapseRange where !mode.contains(.keepSize):
            operation = { try self.collapse(inode, offset: offset, length: length) }
        case .insertRange where !mode.contains(.keepSize):
            operation = { try self.insert(inode, offset: offset, length: length) }
        default:
            throw mode.contains(.punchHole) && !mode.contains(.keepSize) ? Errno.notSupported : Errno.invalidArgument
        }
        // vfs_fallocate: nothing on an immutable file; on an append-only one, only allocation
        // (mode 0, KEEP_SIZE), which changes no byte that is there. Checked before each
        // operation takes the inode lock: a fallocate that races the setFlags forbidding it
        // may still run, as if it had come first.
        try inode.fieldLock.withLock {
            try refuseIfImmutable(inode)
            if inode.flags.contains(.appendOnly), !mode.isSubset(of: .keepSize) { throw Errno.notPermitted }
        }
        // Once the mode is one the engine serves: before anything changes, and also when the
        // mode's own checks (alignment, range) fail, as XFS does.
        metadata.sharedTransaction(on: inode) { _ = removePrivileges(inode, changedBy: caller) }
        try operation()
    }

    private func blockRange(_ offset: UInt64, _ length: UInt64) -> (first: UInt64, end: UInt64) {
        let shift = UInt64(geometry.blockShift)
        return (offset >> shift, (offset + length - 1) >> shift + 1)
    }

    /// Whole blocks inside [offset, offset + length): [first, end) in blocks, maybe empty.
    private func wholeBlocks(_ offset: UInt64, _ length: UInt64) -> (first: UInt64, end: UInt64) {
        let blockSize = UInt64(geometry.blockSize)
        return ((offset + blockSize - 1) / blockSize, (offset + length) / blockSize)
    }

    /// Mode 0 and KEEP_SIZE: unwritten extents over every unmapped block of the range; all or
    /// nothing (ENOSPC before any change). In transactions shared on the file: its map, size and
    /// times, and free space under the allocator's lock.
    private func preallocate(_ inode: Inode, offset: UInt64, length: UInt64, keepSize: Bool) throws {
        inode.lock.lockExclusive()
        defer { inode.lock.unlock() }
        let (first, end) = blockRange(offset, length)
        try retryingAfterFreeing {
            try metadata.sharedTransaction(on: inode) { try allocateUnwritten(inode, holesIn: first, end) }
        }
        metadata.sharedTransaction(on: inode) {
            let newEnd = offset + length
            if !keepSize && newEnd > inode.size { inode.size = newEnd }
            inode.ctime = .now
        }
    }

    /// Maps every hole of [first, end) unwritten. In a transaction, shared on `inode` or not;
    /// ENOSPC changes nothing.
    func allocateUnwritten(_ inode: Inode, holesIn first: UInt64, _ end: UInt64) throws {
        var holes: [(start: UInt64, count: UInt64, hint: UInt64)] = []
        var cursor = first
        for extent in inode.extents.extents(from: first, to: end) {
            if extent.logical > cursor { holes.append((cursor, extent.logical - cursor, 0)) }
            cursor = extent.logicalEnd
        }
        if cursor < end { holes.append((cursor, end - cursor, 0)) }
        // Each hole lies after a mapped extent or at the start: none of this call's runs.
        for index in holes.indices where holes[index].start > 0 {
            if case .mapped(let previous) = inode.extents.lookup(holes[index].start - 1), previous.state != .delayed {
                holes[index].hint = previous.physical + 1
            }
        }
        let needed = holes.reduce(0) { $0 + $1.count }
        // The check, the allocations and the charge in one hold (of a leaf: the map is read
        // before it and changed after it).
        let (allocations, charged) = try metadata.allocatorLock.withLock { () -> ([(logical: UInt64, runs: [BlockRun])], Int) in
            guard needed <= metadata.freeSpace.available else { throw Errno.noSpace }
            let allocations = holes.map { (logical: $0.start, runs: metadata.freeSpace.allocate($0.count, near: $0.hint)) }
            // An extent per run: only now is it known into how many pieces free space cut the holes.
            let bytes = FileExtent.encodedBytes * allocations.reduce(0) { $0 + $1.runs.count }
            do {
                try metadata.chargePending(bytes: bytes)
            } catch {
                for allocation in allocations { for run in allocation.runs { metadata.freeSpace.unallocate(run) } }
                throw error
            }
            return (allocations, bytes)
        }
        defer { metadata.settleCharge(bytes: charged) }
        for allocation in allocations {
            var logical = allocation.logical
            for run in allocation.runs {
                inode.extents.insert(FileExtent(logical: logical, length: run.count, physical: run.start, state: .unwritten))
                logical += run.count
            }
        }
    }

    /// PUNCH_HOLE|KEEP_SIZE: partial blocks at the ends are zeroed, whole blocks unmapped. As a
    /// truncate, in transactions shared on the file (its map and times; counts lowered and
    /// blocks freed under the allocator's lock).
    private func punchHole(_ inode: Inode, offset: UInt64, length: UInt64) throws {
        try withPagesLocked(inode) { space, size in
            let (first, wholeEnd) = wholeBlocks(offset, length)
            let charged = first < wholeEnd ? FileSystem.splitBytes : 0
            try metadata.lock.withShared {
                try metadata.allocatorLock.withLock { try metadata.chargePending(bytes: charged, givesSpaceBack: true) }
            }
            defer { metadata.settleCharge(bytes: charged) }
            try zeroPartialBlocks(inode, space, offset: offset, length: length, upTo: size)
            if first < wholeEnd {
                let blockSize = UInt64(geometry.blockSize)
                dropCached(space, from: first * blockSize, to: wholeEnd * blockSize)
                pausePoint(.punchAfterDroppingPages)
                metadata.sharedTransaction(on: inode) { unmapBlocks(inode, from: first, to: wholeEnd) }
            }
            metadata.sharedTransaction(on: inode) { inode.mtime = .now; inode.ctime = inode.mtime }
        }
    }

    /// Runs `body` with the inode's lock and its invalidate_lock held exclusively (the order of
    /// Support/Locks.swift), passing the page cache and the size: every operation that drops
    /// pages because their blocks change.
    private func withPagesLocked(_ inode: Inode, _ body: (AddressSpace, UInt64) throws -> Void) throws {
        guard let space = inode.pages else { throw Errno.invalidArgument }
        inode.lock.lockExclusive()
        defer { inode.lock.unlock() }
        inode.invalidateLock.lockExclusive()
        defer { inode.invalidateLock.unlock() }
        try body(space, inode.fieldLock.withLock { inode.size })
    }

    /// Zeros, through the cache, the parts of [offset, offset + length) that only partly cover a
    /// block (the whole range when it lies inside one block), not past `limit`.
    private func zeroPartialBlocks(_ inode: Inode, _ space: AddressSpace, offset: UInt64, length: UInt64, upTo limit: UInt64) throws {
        let end = offset + length
        let (first, wholeEnd) = wholeBlocks(offset, length)
        let blockSize = UInt64(geometry.blockSize)
        if first > wholeEnd {
            try zeroCached(inode, space, from: offset, to: min(end, limit))
        } else {
            try zeroCached(inode, space, from: offset, to: min(first * blockSize, limit))
            try zeroCached(inode, space, from: max(wholeEnd * blockSize, offset), to: min(end, limit))
        }
    }

    /// ZERO_RANGE: partial blocks zeroed through the cache; whole blocks become unwritten (in
    /// place when the file owns them alone, else newly allocated), so they read as zeros and stay
    /// allocated. Space is reserved before any change. As a punched hole, in transactions shared
    /// on the file: the counts it reads and lowers, the space it reserves, charges and allocates,
    /// under the allocator's lock. A block it finds owned stays owned until it is done: a count
    /// goes up only in a clone or dedupe from a file that maps the block, under that file's
    /// inode lock, and only this one maps it, under the inode lock held here.
    private func zeroRange(_ inode: Inode, offset: UInt64, length: UInt64, keepSize: Bool) throws {
        try withPagesLocked(inode) { space, _ in try zeroRange(inode, space, offset: offset, length: length, keepSize: keepSize) }
    }

    private func zeroRange(_ inode: Inode, _ space: AddressSpace, offset: UInt64, length: UInt64, keepSize: Bool) throws {
        let end = offset + length
        let (first, wholeEnd) = wholeBlocks(offset, length)
        let blockSize = UInt64(geometry.blockSize)

        // Reserve what the whole blocks need beyond what they own alone.
        var reserved: UInt64 = 0
        var charged = 0
        defer { metadata.settleCharge(bytes: charged) }
        if first < wholeEnd {
            (reserved, charged) = try retryingAfterFreeing { try metadata.sharedTransaction(on: inode) { () -> (UInt64, Int) in
                let extents = inode.extents.extents(from: first, to: wholeEnd)
                return try metadata.allocatorLock.withLock { () -> (UInt64, Int) in
                    var owned: UInt64 = 0
                    var delayed: UInt64 = 0
                    // Each extent may split where sharing changes, and at both ends; new blocks
                    // come in runs (allocateUnwritten charges those itself).
                    var pieces = 0
                    for extent in extents {
                        if extent.state == .delayed {
                            delayed += extent.length
                            pieces += 1
                        } else {
                            let sharing = metadata.referenceCounts.pieces(of: extent.physicalRun)
                            owned += sharing.filter { $0.count == 1 }.reduce(0) { $0 + $1.run.count }
                            pieces += sharing.count
                        }
                    }
                    let needed = (wholeEnd - first) - owned
                    let fromFree = needed > delayed ? needed - delayed : 0
                    let bytes = FileExtent.encodedBytes * pieces + FileSystem.splitBytes
                    try metadata.chargeMetadata(bytes: bytes)
                    guard metadata.freeSpace.reserve(fromFree) else { throw Errno.noSpace }
                    metadata.space.addPendingBytes(bytes)
                    return (fromFree, bytes)
                }
            } }
        }
        try zeroPartialBlocks(inode, space, offset: offset, length: length, upTo: end)
        if first < wholeEnd {
            dropCached(space, from: first * blockSize, to: wholeEnd * blockSize)
            metadata.sharedTransaction(on: inode) {
                let extents = inode.extents.extents(from: first, to: wholeEnd)  // cut to the range
                // Which blocks stay (owned) and which go (shared, or delayed), in one hold.
                let (keep, released) = metadata.allocatorLock.withLock { () -> ([FileExtent], [FileExtent]) in
                    metadata.freeSpace.unreserve(reserved)
                    let keep = extents.flatMap { sharing($0, shared: false) }.map {
                        FileExtent(logical: $0.logical, length: $0.length, physical: $0.physical, state: .unwritten)
                    }
                    return (keep, extents.flatMap { $0.state == .delayed ? [$0] : sharing($0, shared: true) })
                }
                // Owned blocks stay where they are; the rest are released and allocated anew.
                inode.extents.remove(from: first, to: wholeEnd)
                releaseCowReservations(inode, from: first, to: wholeEnd)
                releaseExtents(released)
                for extent in keep { inode.extents.insert(extent) }
                try? allocateUnwritten(inode, holesIn: first, wholeEnd)
            }
        }
        metadata.sharedTransaction(on: inode) {
            if !keepSize && end > inode.size { inode.size = end }
            inode.mtime = .now
            inode.ctime = inode.mtime
        }
    }

    /// What cutting a range out of a file's map may add to the metadata: the extent at each end
    /// split in two, and the reference counts split at each end too.
    static let splitBytes = 2 * FileExtent.encodedBytes + 2 * ReferenceCounts.encodedEntryBytes

    /// The parts of an allocated extent whose blocks are shared (or, with `shared` false, owned
    /// by this extent alone). Delayed extents have no blocks: none. Caller holds Metadata.lock
    /// exclusively, or the allocator's lock (in a transaction shared on the extent's file).
    private func sharing(_ extent: FileExtent, shared: Bool) -> [FileExtent] {
        guard extent.state != .delayed else { return [] }
        var result: [FileExtent] = []
        var logical = extent.logical
        for piece in metadata.referenceCounts.pieces(of: extent.physicalRun) {
            if (piece.count > 1) == shared {
                result.append(FileExtent(logical: logical, length: piece.run.count, physical: piece.run.start, state: extent.state))
            }
            logical += piece.run.count
        }
        return result
    }

    /// COLLAPSE_RANGE: removes [offset, offset + length) and shifts the rest down. Block-aligned,
    /// and the range must end before EOF (EINVAL otherwise), as on XFS.
    private func collapse(_ inode: Inode, offset: UInt64, length: UInt64) throws {
        let blockSize = UInt64(geometry.blockSize)
        guard offset % blockSize == 0, length % blockSize == 0 else { throw Errno.invalidArgument }
        try shiftingOperation(inode) { space, size in
            guard offset + length < size else { throw Errno.invalidArgument }
            try metadata.lock.withShared {
                try metadata.allocatorLock.withLock { try metadata.chargePending(bytes: FileSystem.splitBytes, givesSpaceBack: true) }
            }
            defer { metadata.settleCharge(bytes: FileSystem.splitBytes) }
            dropCached(space, from: offset, to: UInt64.max)
            metadata.sharedTransaction(on: inode) {
                let first = offset / blockSize
                let count = length / blockSize
                unmapBlocks(inode, from: first, to: first + count)
                inode.extents.shift(from: first + count, by: -Int64(count))
                inode.size = size - length
            }
        }
    }

    /// INSERT_RANGE: a hole of `length` at `offset`, the rest shifted up. Block-aligned, offset
    /// below EOF (EINVAL otherwise), the new size within the largest file (EFBIG).
    private func insert(_ inode: Inode, offset: UInt64, length: UInt64) throws {
        let blockSize = UInt64(geometry.blockSize)
        guard offset % blockSize == 0, length % blockSize == 0 else { throw Errno.invalidArgument }
        try shiftingOperation(inode) { space, size in
            guard offset < size else { throw Errno.invalidArgument }
            guard length <= Superblock.maxFileSize - size else { throw Errno.fileTooLarge }
            // One more extent where the split is: repeated, inserts could add them without end.
            try metadata.lock.withShared {
                try metadata.allocatorLock.withLock { try metadata.chargePending(bytes: FileExtent.encodedBytes) }
            }
            defer { metadata.settleCharge(bytes: FileExtent.encodedBytes) }
            dropCached(space, from: offset, to: UInt64.max)
            metadata.sharedTransaction(on: inode) {
                let first = offset / blockSize
                inode.extents.split(at: first)
                inode.extents.shift(from: first, by: Int64(length / blockSize))
                inode.size = size + length
            }
        }
    }

    /// Collapse and insert move data between pages: write back everything first (so no dirty
    /// page or delayed block needs moving), then drop pages from the offset on under the
    /// invalidate_lock and shift the map. In transactions shared on the file: they change its
    /// map, size and times, lower counts and free under the allocator's lock (as a punched hole).
    private func shiftingOperation(_ inode: Inode, _ body: (AddressSpace, UInt64) throws -> Void) throws {
        guard let space = inode.pages else { throw Errno.invalidArgument }
        inode.lock.lockExclusive()
        defer { inode.lock.unlock() }
        try writeback(inode)
        inode.invalidateLock.lockExclusive()
        defer { inode.invalidateLock.unlock() }
        let size = metadata.sharedTransaction(on: inode) { () -> UInt64 in
            // After a full writeback no copy-on-write reservation is needed any more.
            releaseCowReservations(inode, from: 0, to: UInt64.max)
            return inode.size
        }
        try body(space, size)
        metadata.sharedTransaction(on: inode) {
            inode.mtime = .now
            inode.ctime = inode.mtime
        }
    }

    /// UNSHARE_RANGE: every shared block of the range gets a private copy; contents unchanged.
    /// In transactions shared on the file: counts read, space allocated and counts lowered under
    /// the allocator's lock. A block found shared that another file stops sharing meanwhile is
    /// copied all the same, and its old copy freed when this file lets go of it.
    private func unshare(_ inode: Inode, offset: UInt64, length: UInt64) throws {
        inode.lock.lockExclusive()
        defer { inode.lock.unlock() }
        try writeback(inode)
        inode.invalidateLock.lockExclusive()
        defer { inode.invalidateLock.unlock() }
        let size = inode.fieldLock.withLock { inode.size }
        guard offset < size else { return }
        let (first, end) = blockRange(offset, min(length, size - offset))
        let shift = UInt64(geometry.blockShift)
        let shared = metadata.sharedTransaction(on: inode) { () -> [FileExtent] in
            let extents = inode.extents.extents(from: first, to: end)
            return metadata.allocatorLock.withLock { extents.flatMap { sharing($0, shared: true) } }
        }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: geometry.blockSize, alignment: Page.size)
        defer { buffer.deallocate() }
        for extent in shared {
            let runs = try retryingAfterFreeing { try metadata.lock.withShared { try metadata.allocatorLock.withLock { () -> [BlockRun] in
                guard extent.length <= metadata.freeSpace.available else { throw Errno.noSpace }
                // Mapped run by run below, once each run's copy is written.
                let runs = metadata.freeSpace.allocate(extent.length, near: extent.physical, mappedNow: false)
                // An extent per run, and the old extent and its reference counts split at both ends.
                do {
                    try metadata.chargePending(bytes: FileExtent.encodedBytes * runs.count + FileSystem.splitBytes)
                } catch {
                    for run in runs { metadata.freeSpace.free(run) }
                    throw error
                }
                return runs
            } } }
            defer { metadata.settleCharge(bytes: FileExtent.encodedBytes * runs.count + FileSystem.splitBytes) }
            var logical = extent.logical
            for (index, run) in runs.enumerated() {
                do {
                    if extent.state == .written {
                        for block in 0..<run.count {
                            let source = extent.physical + (logical - extent.logical) + block
                            try store.read(into: buffer, count: geometry.blockSize, at: source << shift)
                            try store.write(from: buffer, count: geometry.blockSize, at: (run.start + block) << shift)
                        }
                    }
                } catch {
                    // The runs not mapped yet go back; the file keeps what it shared there.
                    metadata.lock.withShared {
                        metadata.allocatorLock.withLock { for unmapped in runs[index...] { metadata.freeSpace.free(unmapped) } }
                    }
                    throw error
                }
                metadata.sharedTransaction(on: inode) {
                    metadata.allocatorLock.withLock { metadata.freeSpace.noteMapped(run) }
                    releaseExtents(inode.extents.replace(with: FileExtent(logical: logical, length: run.count, physical: run.start, state: extent.state)))
                }
                logical += run.count
            }
        }
    }
}
