import SystemPackage

/// A volume mounted read-only (`MountOptions.readOnly`, `-o ro`) changes nothing in its image:
/// every request that would change something fails with EROFS before it touches anything, and
/// mount and unmount write nothing (the log is replayed in memory only, orphans stay for the
/// next read-write mount, no checkpoint is written). The kernel refuses most changes on a
/// read-only mount itself, but not all of them: the extentfs ioctls reach the daemon whatever
/// the mount flags, and in-process callers have no kernel in front of them.
///
/// A read-only volume can become writable while mounted (`mount -o remount,rw`: the kernel lets
/// changes through again, and the adapter then calls `makeWritable`), when its image could be
/// opened for writing. The other way needs nothing here: after `remount,ro` the kernel stops
/// every change itself, and what was dirty is committed as usual.
extension FileSystem {
    public var isReadOnly: Bool { writeAccess.isReadOnly }

    /// Throws EROFS on a read-only volume. Every public method that changes anything calls it
    /// first.
    func refuseIfReadOnly() throws {
        if writeAccess.isReadOnly { throw Errno.readOnlyFileSystem }
    }

    /// Lets changes through from now on: frees what a crash left orphaned, and the flusher
    /// (running since mount) writes back and commits from its next pass, as on a read-write mount. EROFS when the image itself is read-only (a
    /// read-only file or device), in which case the volume stays as it was.
    public func makeWritable() throws {
        let madeWritable = try writeAccess.mutex.withLock { () -> Bool in
            guard writeAccess.readOnly else { return false }
            guard store.isWritable else { throw Errno.readOnlyFileSystem }
            writeAccess.readOnly = false
            return true
        }
        guard madeWritable else { return }
        logger.info("\(store.path): now read-write")
        convertIfOlder()
        try freeOrphans()
    }
}

/// Whether a volume may change now: read-only from mount until `makeWritable`, never the other
/// way. Read by every change, so a lock of its own (a leaf, like PageCache.lock).
final class WriteAccess: @unchecked Sendable {
    let mutex = Mutex()
    /// Guarded by `mutex`.
    var readOnly: Bool

    init(readOnly: Bool) {
        self.readOnly = readOnly
    }

    var isReadOnly: Bool { mutex.withLock { readOnly } }
}
