import CFuse
import ExtentFS
import SystemPackage

/// Open files and their data. The engine pins the inode from open/create until release, and
/// every call names the inode; the handle only remembers the open flags (for ioctls).
func installFileOps(_ ops: inout fuse_lowlevel_ops) {
    ops.open = { req, ino, fi in
        handle(req) { fs in
            try fs.open(ino, flags: cfuse_fi_flags(fi))
            // Pages the kernel cached stay valid across opens: every change it does not make
            // itself is followed by an explicit invalidation (DESIGN.md, "The kernel in between").
            cfuse_fi_set_keep_cache(fi, 1)
            OpenFlags.remember(in: fi)
            if fuse_reply_open(req, fi) != 0 {
                fs.release(ino)  // the kernel never saw the open, so no RELEASE will come
            }
        }
    }
    ops.create = { req, parent, name, mode, fi in
        handle(req) { fs in
            let attributes = try fs.create(parent: parent, name: nameBytes(name), mode: mode,
                                           flags: cfuse_fi_flags(fi), owner: caller(req))
            cfuse_fi_set_keep_cache(fi, 1)
            OpenFlags.remember(in: fi)
            var entry = entryParam(attributes)
            if fuse_reply_create(req, &entry, fi) != 0 {
                fs.release(attributes.ino)
                fs.forget(attributes.ino, count: 1)
            }
        }
    }
    ops.read = { req, ino, size, offset, fi in
        guard offset >= 0 else { return replyError(req, Errno.invalidArgument) }
        var replied = false
        do {
            // The reply goes out while the engine still holds the invalidate_lock shared, so no
            // truncate or punch can slip in between reading the pages and the kernel getting them.
            // O_DIRECT: the kernel's own direct path for FUSE writes back and invalidates its cache
            // and sends the request here; the engine then bypasses its cache too. (Not direct_io on
            // the open file: that would forbid mmap of an O_DIRECT descriptor, which XFS allows.)
            let direct = OpenFlags(handleOf: fi).isDirect
            try Server.of(req).fileSystem.readSegments(ino, offset: UInt64(offset), count: size, direct: direct) { segments in
                guard !replied else { return }
                replied = true
                // Straight from the cached pages: libfuse writes the iovec to the device.
                withUnsafeTemporaryAllocation(of: iovec.self, capacity: max(1, segments.count)) { vector in
                    for (slot, segment) in segments.enumerated() {
                        vector.initializeElement(at: slot, to: iovec(iov_base: UnsafeMutableRawPointer(mutating: segment.baseAddress),
                                                                     iov_len: segment.count))
                    }
                    fuse_reply_iov(req, vector.baseAddress, Int32(segments.count))
                }
            }
            if !replied { fuse_reply_buf(req, nil, 0) }
        } catch {
            if replied {
                log.error("read of inode \(ino) failed after its reply was sent: \(error)")
            } else {
                replyError(req, error)
            }
        }
    }
    ops.write = { req, ino, buffer, size, offset, fi in
        guard offset >= 0 else { return replyError(req, Errno.invalidArgument) }
        handle(req) { fs in
            let result = try fs.write(ino, offset: UInt64(offset), direct: OpenFlags(handleOf: fi).isDirect,
                                      UnsafeRawBufferPointer(start: buffer, count: size), by: writer(req))
            // The kernel keeps the mode it cached: with FUSE_HANDLE_KILLPRIV_V2 it does not
            // know we cleared a set-ID bit.
            if result.removedPrivileges { Server.of(req).invalidateKernelAttributes(ino) }
            Server.of(req).replyToWrite(req, fi, ino: ino, offset: UInt64(offset), count: result.count)
        }
    }
    ops.flush = { req, ino, _ in
        handle(req) { fs in
            try fs.flush(ino)
            replyOK(req)
        }
    }
    ops.fsync = { req, ino, dataOnly, _ in
        handle(req) { fs in
            try fs.fsync(ino, dataOnly: dataOnly != 0)
            replyOK(req)
        }
    }
    ops.release = { req, ino, _ in
        Server.of(req).fileSystem.release(ino)
        replyOK(req)
    }
    ops.lseek = { req, ino, offset, whence, _ in
        // The kernel answers SEEK_SET/CUR/END itself; only SEEK_DATA and SEEK_HOLE reach us.
        let target: SeekTarget
        switch whence {
        case seekData: target = .data
        case seekHole: target = .hole
        default: return replyError(req, Errno.invalidArgument)
        }
        guard offset >= 0 else { return replyError(req, Errno.noSuchAddressOrDevice) }
        handle(req) { fs in
            let found = try fs.seek(ino, offset: UInt64(offset), to: target)
            fuse_reply_lseek(req, off_t(clamping: found))
        }
    }
}

// Linux values; <unistd.h> hides the names without _GNU_SOURCE.
private let seekData: Int32 = 3
private let seekHole: Int32 = 4
