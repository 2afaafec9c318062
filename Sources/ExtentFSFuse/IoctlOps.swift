import CExtentFSIoctl
import CFuse
import ExtentFS
import ExtentFSCore
import SystemPackage

/// The extentfs ioctls (extentfs_ioctl.h): the space operations the kernel does not pass to a
/// FUSE filesystem, and the daemon's counters (StatsIoctl.swift). They are restricted ioctls:
/// the kernel copies in the _IOC_SIZE bytes of the argument and, for _IOWR and _IOR, copies
/// back as many as we reply with.
func installIoctlOps(_ ops: inout fuse_lowlevel_ops) {
    ops.ioctl = { req, ino, command, _, fi, flags, input, inputSize, outputSize in
        // Copies of the argument and the open flags: a space operation runs after this handler
        // has returned, on a space worker (SpaceWorkers.swift).
        let call = IoctlCall(req: req, ino: ino, openFlags: OpenFlags(handleOf: fi),
                             onDirectory: flags & UInt32(FUSE_IOCTL_DIR) != 0,
                             input: input.map { Array(UnsafeRawBufferPointer(start: $0, count: inputSize)) } ?? [],
                             outputSize: outputSize)
        switch command {
        case ExtentFSIoctl.collapseRange, ExtentFSIoctl.insertRange, ExtentFSIoctl.unshareRange,
             ExtentFSIoctl.cloneRange, ExtentFSIoctl.dedupeRange:
            handleOnSpaceWorker(req) { _ in try call.changeSpace(command) }
        case ExtentFSIoctl.map:
            handle(req) { _ in try call.map() }
        case ExtentFSIoctl.stats:
            replyStatistics(req, outputSize: outputSize)
        case ExtentFSIoctl.stats2:
            replyStatisticsVersion2(req, outputSize: outputSize)
        case let standard where AttributeIoctl.all.contains(standard):
            AttributeIoctl.answer(standard, req: req, ino: ino, input: call.input, outputSize: outputSize)
        default:
            replyError(req, Errno.inappropriateIOCTLForDevice)  // ENOTTY: "not ours", as any filesystem says
        }
    }
}

/// One ioctl request: its file (the destination of every operation), argument and reply.
private struct IoctlCall {
    var req: fuse_req_t?
    var ino: InodeNumber
    /// The flags the file was opened with (`fi` itself is gone once the handler returns).
    var openFlags: OpenFlags
    var onDirectory: Bool
    var input: [UInt8]
    var outputSize: Int

    /// The operations that change data. Each is done, and the kernel told, before the reply:
    /// the caller may append or map as soon as it has it.
    func changeSpace(_ command: UInt32) throws {
        switch command {
        case ExtentFSIoctl.collapseRange: try changeRange(.collapseRange); replyDone()
        case ExtentFSIoctl.insertRange: try changeRange(.insertRange); replyDone()
        // The ioctl unshares only; the size change of an unshare without KEEP_SIZE is the
        // preload's following mode-0 fallocate, as the header says.
        case ExtentFSIoctl.unshareRange: try changeRange([.unshareRange, .keepSize]); replyDone()
        case ExtentFSIoctl.cloneRange: try clone(); replyDone()
        case ExtentFSIoctl.dedupeRange: try dedupe()
        default: throw Errno.inappropriateIOCTLForDevice
        }
    }

    var server: Server { Server.of(req) }

    /// COLLAPSE_RANGE, INSERT_RANGE, UNSHARE_RANGE: fallocate(2) with that mode. Replying is
    /// the caller's (`replyDone`), as for `clone`.
    func changeRange(_ mode: FallocateMode) throws {
        let range = try argument(extentfs_range_args.self)
        try requireWritable()
        // fallocate(2) rejects an empty range before anything else.
        guard range.length > 0 else { throw Errno.invalidArgument }
        try checkRange(offset: range.offset, length: range.length)
        // An unshare leaves every byte as it was, so nothing tells the kernel of the file's
        // change otherwise; but like any fallocate it may take the set-user-ID bits (collapse and
        // insert drop the kernel's attributes with its pages).
        defer { if mode.contains(.unshareRange) { server.invalidateKernelAttributes(ino) } }
        try allocateSpace(server, ino, offset: range.offset, length: range.length, mode: mode, by: caller(req))
    }

    /// CLONE_RANGE: src_fd's blocks shared into this file.
    func clone() throws {
        let clone = try argument(extentfs_clone_args.self)
        let changedBy = caller(req)
        try withCallerSource(clone.src_fd, of: req, server: server) { source in
            // As FICLONERANGE: an appending descriptor may not write anywhere but the end.
            guard openFlags.isWritable, !openFlags.isAppend else { throw Errno.badFileDescriptor }
            try checkRange(offset: clone.src_offset, length: clone.length)
            try checkRange(offset: clone.dest_offset, length: clone.length)
            let fs = server.fileSystem
            // A clone past the end grows the file behind the kernel's back (KernelSize.swift).
            try server.changingKernelCache(KernelRange(ino: ino, offset: clone.dest_offset, length: clone.length),
                                           source: KernelRange(ino: source, offset: clone.src_offset, length: clone.length),
                                           mayGrow: true) {
                _ = try fs.clone(from: source, sourceOffset: clone.src_offset, to: ino,
                                 destinationOffset: clone.dest_offset, length: clone.length, by: changedBy)
            }
        }
    }

    /// DEDUPE_RANGE. Like FIDEDUPERANGE, whose source is the file the ioctl is issued on: a
    /// problem with the source fails the ioctl; everything about this destination and the
    /// ranges, the engine's errors included, comes back in `status` of a successful ioctl.
    func dedupe() throws {
        var dedupe = try argument(extentfs_dedupe_args.self, returned: true)
        try withCallerSource(dedupe.src_fd, of: req, server: server) { source in
            dedupe.bytes_deduped = 0
            do {
                // As FIDEDUPERANGE: reserved fields must be 0, so they can gain a meaning later.
                guard dedupe.reserved == 0 else { throw Errno.invalidArgument }
                try requireMayDedupe()
                try checkRange(offset: dedupe.src_offset, length: dedupe.length)
                try checkRange(offset: dedupe.dest_offset, length: dedupe.length)
                let fs = server.fileSystem
                let (sourceOffset, destinationOffset, length) = (dedupe.src_offset, dedupe.dest_offset, dedupe.length)
                let result = try server.changingKernelCache(KernelRange(ino: ino, offset: destinationOffset, length: length),
                                                            source: KernelRange(ino: source, offset: sourceOffset, length: length)) {
                    try server.followingRemount {
                        try fs.dedupe(from: source, sourceOffset: sourceOffset, length: length, to: ino,
                                      destinationOffset: destinationOffset)
                    }
                }
                switch result {
                case .same(let bytes):
                    dedupe.status = EXTENTFS_DEDUPE_SAME
                    dedupe.bytes_deduped = bytes
                case .differs:
                    dedupe.status = EXTENTFS_DEDUPE_DIFFERS
                }
            } catch {
                dedupe.status = -errnoValue(for: error)
            }
        }
        reply(&dedupe)
    }

    /// MAP: up to EXTENTFS_MAP_MAX extents from `offset`; the caller continues after the last.
    func map() throws {
        var map = try argument(extentfs_map_args.self, returned: true)
        let extents = try server.fileSystem.extentMap(ino, offset: map.offset, length: map.length, limit: Int(EXTENTFS_MAP_MAX))
        let filled = min(extents.count, Int(EXTENTFS_MAP_MAX))
        withUnsafeMutableBytes(of: &map.extents) { raw in
            let slots = raw.bindMemory(to: extentfs_extent.self)
            for (slot, extent) in zip(slots.indices, extents.prefix(filled)) {
                slots[slot] = extentfs_extent(logical: extent.logical, physical: extent.physical,
                                              length: extent.length, flags: extent.flags.rawValue, reserved: 0)
            }
        }
        map.count = UInt32(filled)
        reply(&map)
    }

    /// The argument struct, once its size is checked; `returned` when the kernel copies it back.
    private func argument<Argument>(_: Argument.Type, returned: Bool = false) throws -> Argument {
        // Every extentfs operation needs a regular file.
        guard !onDirectory else { throw Errno.isDirectory }
        let size = MemoryLayout<Argument>.size
        guard input.count == size, !returned || outputSize >= size else { throw Errno.invalidArgument }
        return input.withUnsafeBytes { $0.loadUnaligned(as: Argument.self) }
    }

    /// The file the ioctl is issued on must be open for writing, as for fallocate(2).
    private func requireWritable() throws {
        guard openFlags.isWritable else { throw Errno.badFileDescriptor }
    }

    /// FIDEDUPERANGE's rule (allow_file_dedupe): the destination open for writing, or the caller
    /// owns it or is root. duperemove dedupes through read-only descriptors.
    private func requireMayDedupe() throws {
        guard !openFlags.isWritable else { return }
        // mnt_want_write_file comes first: a read-only mount lets a read-only descriptor through
        // to us, but no change (Remount.swift).
        if server.kernelMountIsReadOnly() == true { throw Errno.readOnlyFileSystem }
        let uid = caller(req).uid
        guard uid != 0 else { return }
        guard try server.fileSystem.getattr(ino).uid == uid else { throw Errno.notPermitted }
    }

    /// Offsets and lengths travel unsigned; as the signed loff_t of the standard calls, a
    /// negative one is EINVAL and a range past the largest file offset EFBIG.
    private func checkRange(offset: UInt64, length: UInt64) throws {
        let limit = UInt64(Int64.max)
        guard offset <= limit, length <= limit else { throw Errno.invalidArgument }
        guard offset + length <= limit else { throw Errno.fileTooLarge }
    }

    func replyDone() {
        _ = fuse_reply_ioctl(req, 0, nil, 0)
    }

    private func reply<Argument>(_ argument: inout Argument) {
        withUnsafeBytes(of: &argument) { bytes in
            _ = fuse_reply_ioctl(req, 0, bytes.baseAddress, bytes.count)
        }
    }
}
