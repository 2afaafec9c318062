import CFuse
import ExtentFS
import ExtentFSCore
import SystemPackage

/// fallocate and copy_file_range as the kernel passes them, run on a space worker
/// (SpaceWorkers.swift). (lseek is with the file ops; the space operations the kernel keeps to
/// itself arrive as extentfs ioctls, IoctlOps.swift.)
func installSpaceOps(_ ops: inout fuse_lowlevel_ops) {
    ops.fallocate = { req, ino, rawMode, offset, length, _ in
        // The kernel checks both, but nothing else stands between a raw /dev/fuse client and us.
        guard offset >= 0, length > 0 else { return replyError(req, Errno.invalidArgument) }
        let mode = FallocateMode(rawValue: rawMode)
        // Today's kernels pass only KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE; every mode the engine
        // knows is served, so a kernel that passes more needs nothing new here.
        guard FallocateMode.engineModes.isSuperset(of: mode) else { return replyError(req, Errno.notSupported) }
        // The kernel's file_modified takes the file's privileges first, unless it marked the
        // inode S_NOSEC (with FUSE_HANDLE_KILLPRIV_V2 it then leaves them to us): the engine
        // takes whatever is left, as the caller's privileges allow.
        let changedBy = caller(req)
        handleOnSpaceWorker(req) { _ in
            try allocateSpace(Server.of(req), ino, offset: UInt64(offset), length: UInt64(length), mode: mode, by: changedBy)
            replyOK(req)
        }
    }
    ops.copy_file_range = { req, sourceIno, sourceOffset, _, destinationIno, destinationOffset, _, length, flags in
        // The kernel has checked the access modes and that both files are ours.
        guard flags == 0, sourceOffset >= 0, destinationOffset >= 0 else {
            return replyError(req, Errno.invalidArgument)
        }
        // The reply carries the count in 32 bits; callers loop on a short copy.
        let length = UInt64(min(length, maxCopyLength))
        handleOnSpaceWorker(req) { fs in
            let destination = KernelRange(ino: destinationIno, offset: UInt64(destinationOffset), length: length)
            let source = KernelRange(ino: sourceIno, offset: UInt64(sourceOffset), length: length)
            let copied = try Server.of(req).changingKernelCache(destination, source: source) {
                try fs.copyFileRange(from: sourceIno, sourceOffset: source.offset, to: destinationIno,
                                     destinationOffset: destination.offset, length: length)
            }
            fuse_reply_write(req, Int(min(copied, length)))
        }
    }
}

/// fallocate(2) in any mode, from the FUSE request or a range ioctl, by `caller` (whose
/// privileges decide whether the file keeps its set-user-ID bits). Modes that change what the
/// file reads as go through the kernel-cache protocol (KernelCache.swift); preallocation and
/// unshare leave every byte as it was, and after a FUSE fallocate that grows the file the
/// kernel sets the new size itself. But not the mode: after a FUSE fallocate the kernel drops
/// only the size and times it caches, so a preallocation that took the set-ID bits drops the
/// rest of the attributes here, or stat showed 6666 for a second where XFS shows 666 (xfstests
/// generic/683).
func allocateSpace(_ server: Server, _ ino: InodeNumber, offset: UInt64, length: UInt64, mode: FallocateMode,
                   by caller: Credentials) throws {
    let fs = server.fileSystem
    let operation = { try fs.fallocate(ino, offset: offset, length: length, mode: mode, by: caller) }
    if !mode.isDisjoint(with: [.collapseRange, .insertRange]) {
        // Everything from offset on moves. Insert grows the file behind the kernel's back
        // (KernelSize.swift); collapse shrinks it, which the caller's extentfs_refresh_size
        // tells the kernel.
        try server.changingKernelCache(.toEnd(of: ino, from: offset), mayGrow: mode.contains(.insertRange), operation)
    } else if !mode.isDisjoint(with: [.punchHole, .zeroRange]) {
        try server.changingKernelCache(KernelRange(ino: ino, offset: offset, length: length), operation)
    } else {
        defer { server.invalidateKernelAttributes(ino) }
        try operation()
    }
}

extension FallocateMode {
    /// Every flag FallocateMode names; the engine rejects combinations it does not serve.
    static let engineModes: FallocateMode = [.keepSize, .punchHole, .collapseRange, .zeroRange,
                                             .insertRange, .unshareRange]
}

/// The largest count a copy_file_range reply can carry, page-aligned as the kernel limits it.
private let maxCopyLength = Int(UInt32.max) & ~4095
