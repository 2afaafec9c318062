import CFuse
import ExtentFS
import ExtentFSCore
import SystemPackage

/// Bytes of one file as the kernel caches them. A length of 0 reaches to the end of the file.
struct KernelRange {
    var ino: InodeNumber
    var offset: UInt64
    var length: UInt64

    static func toEnd(of ino: InodeNumber, from offset: UInt64) -> KernelRange {
        KernelRange(ino: ino, offset: offset, length: 0)
    }
}

extension Server {
    /// Runs an engine operation that changes what `changed` reads as, keeping the kernel's page
    /// cache honest around it (DESIGN.md, "The kernel in between"):
    ///
    /// - before: the kernel writes back what mmap dirtied in `changed` and in `source` (a range
    ///   the operation reads or compares), so the engine moves, shares or compares current data
    ///   rather than leaving stale dirty pages to land on the new layout later;
    /// - after, whether or not the operation succeeded (it may have got part of the way): the
    ///   kernel drops `changed` and the file's attributes, so no read or fault through the mount
    ///   shows pre-operation data or size.
    ///
    /// After an operation that may make the file larger (`mayGrow`: insert, clone), the kernel
    /// is told the new size, also when the operation got only part of the way (KernelSize.swift).
    ///
    /// Must be called with no engine lock held, never from inside `FileSystem.read`'s closure:
    /// writing back sends WRITE requests that other loop threads serve while this one waits.
    func changingKernelCache<R>(_ changed: KernelRange, source: KernelRange? = nil, mayGrow: Bool = false,
                                _ operation: () throws -> R) throws -> R {
        invalidateKernelCache(changed)
        if let source { invalidateKernelCache(source) }
        defer { invalidateKernelCache(changed) }
        defer { if mayGrow { raiseKernelSize(changed.ino) } }
        return try operation()
    }

    /// Drops the kernel's cached attributes of `ino` (mode, size, times), leaving its pages: for
    /// a change that leaves every byte as it was.
    func invalidateKernelAttributes(_ ino: InodeNumber) {
        guard let session else { return }
        // A negative offset asks the kernel for the attributes alone.
        let result = fuse_lowlevel_notify_inval_inode(session, ino, -1, 0)
        if result != 0 && -result != ENOENT {
            log.warning("cannot invalidate the kernel's attributes of inode \(ino): \(Errno(rawValue: -result))")
        }
    }

    /// Writes back the kernel's dirty pages in `range` (as WRITE requests to us), then drops its
    /// pages there and the file's cached attributes. The kernel invalidates attributes on every
    /// inode notification, so a size change needs nothing more.
    func invalidateKernelCache(_ range: KernelRange) {
        // Nothing is cached past the largest offset a file can have.
        guard let session, range.offset <= UInt64(Int64.max) else { return }
        let offset = off_t(range.offset)
        // The kernel reads a length of 0 as "through the end of the file".
        let length = range.length > UInt64(Int64.max) - range.offset ? 0 : off_t(range.length)
        let result = fuse_lowlevel_notify_inval_inode(session, range.ino, offset, length)
        switch -result {
        case 0:
            break
        case ENOENT:
            break  // the kernel holds no inode for it, so it caches nothing of it either
        default:
            log.warning("cannot invalidate the kernel's cache of inode \(range.ino): \(Errno(rawValue: -result))")
        }
    }
}
