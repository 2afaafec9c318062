import ExtentFSCore
import SystemPackage

/// Inode creation shared by every operation that makes a name (Directory.validate checks names).
extension FileSystem {
    /// Caller holds Metadata.lock. The directory `ino`, or ENOTDIR / ENOENT.
    func directoryInode(_ ino: InodeNumber) throws -> Inode {
        let inode = try metadata.inode(ino)
        guard inode.type == .directory else { throw Errno.notDirectory }
        return inode
    }

    /// Creates an inode named `name` in `parent`, inheriting the group of a set-group-ID parent
    /// as ext4 and XFS do, and its default ACL or else the owner's umask (FileSystem+ACL.swift);
    /// takes one lookup reference. `contentBytes` is what `configure` adds to the inode (a
    /// symlink's target), charged to space with it. Caller is inside a transaction.
    func makeNode(parent: InodeNumber, name: [UInt8], mode: UInt32, owner: Credentials, contentBytes: Int = 0,
                  configure: (Inode) throws -> Void = { _ in }) throws -> Inode {
        try Directory.validate(name: name)
        let directory = try directoryInode(parent)
        guard directory.nlink > 0 else { throw Errno.noSuchFileOrDirectory }
        // may_create: no new entry in an immutable directory (an append-only one takes them).
        try refuseIfImmutable(directory)
        if try Directory.isDotOrDotDot(name) || metadata.entry(in: directory, named: name) != nil { throw Errno.fileExists }
        guard let type = FileType(mode: mode) else { throw Errno.invalidArgument }
        let (inheritedMode, aclXattrs) = try inheritedPermissions(in: directory, mode: mode, umask: owner.umask)
        let aclBytes = aclXattrs.reduce(0) { $0 + $1.0.count + $1.1.count + 6 }
        try checkRoomForNode(named: name, in: directory, contentBytes: contentBytes + aclBytes)
        if type == .directory, directory.nlink >= FileSystem.maxLinks { throw Errno.tooManyLinks }
        var mode = inheritedMode
        var gid = owner.gid
        if directory.mode & UInt32(0o2000) != 0 {
            gid = directory.gid
            if type == .directory { mode |= 0o2000 }
        }
        let now = Timespec.now
        let inode = Inode(ino: metadata.nextInode, mode: mode, uid: owner.uid, gid: gid, time: now, cache: cache)
        inode.unloggedEntryChanges = nil  // no image of it on record yet: the first is whole
        metadata.nextInode += 1
        inode.generation = UInt64(now.nanoseconds)
        try configure(inode)
        for (aclName, value) in aclXattrs { inode.xattrs[aclName] = value }
        metadata.insert(inode)
        directory.addEntry(name: name, ino: inode.ino, type: type)
        if type == .directory {
            inode.parent = parent
            directory.nlink += 1
        }
        directory.mtime = now
        directory.ctime = now
        inode.lookupCount = 1
        return inode
    }

    /// ENOSPC unless a new inode named `name` fits in `directory`: an inode number, a cookie,
    /// and the metadata space for the inode, its directory entry and `contentBytes` (a symlink's
    /// target) in the checkpoints to come. In a transaction.
    func checkRoomForNode(named name: [UInt8], in directory: Inode, contentBytes: Int = 0) throws {
        guard metadata.inodeCount < geometry.maxInodes else { throw Errno.noSpace }
        // Numbers are never reused and an image may start near the end of them: past it, the
        // image would be one that no mount accepts.
        guard metadata.nextInode + 1 < CheckpointCodec.maxInodeNumber, !directory.directory!.isOutOfCookies else { throw Errno.noSpace }
        try metadata.chargeMetadata(bytes: 160 + 2 * name.count + contentBytes)
    }

    /// Frees an inode nobody can reach any more: no name, no kernel reference, not open. Drops
    /// its pages under the invalidate_lock, then its extents in one transaction.
    func reapIfDead(_ inode: Inode) {
        let dead = metadata.withLock { inode.nlink == 0 && !inode.isInUse && metadata.inodes[inode.ino] === inode }
        guard dead else { return }
        inode.lock.withExclusive {
            inode.invalidateLock.withExclusive {
                let stillDead = metadata.withLock { inode.nlink == 0 && !inode.isInUse && metadata.inodes[inode.ino] === inode }
                guard stillDead else { return }
                inode.pages?.removePages(from: 0)
                metadata.transaction {
                    unmapBlocks(inode, from: 0, to: UInt64.max)
                    metadata.remove(inode)
                }
            }
        }
        if let pages = inode.pages { cache.forget(pages) }
    }

    /// Returns unmapped extents' space: delayed reservations now; blocks, once no other extent
    /// shares them, after the next commit. Caller is inside a transaction.
    func releaseExtents(_ extents: [FileExtent]) {
        // Under allocatorLock: a truncate releases in a shared transaction (a count's decrement,
        // the blocks it unshares and the frees it gives in one hold).
        metadata.allocatorLock.withLock {
            for extent in extents {
                switch extent.state {
                case .delayed:
                    metadata.freeSpace.unreserve(extent.length)
                case .written, .unwritten:
                    for run in metadata.referenceCounts.decrement(extent.physicalRun) {
                        metadata.freeSpace.freeAfterCommit(run)
                    }
                }
            }
        }
    }

    /// Unmaps [from, to) of a file and drops its copy-on-write reservations there. In a
    /// transaction, shared on `inode` or not.
    func unmapBlocks(_ inode: Inode, from: UInt64, to: UInt64) {
        releaseExtents(inode.extents.remove(from: from, to: to))
        releaseCowReservations(inode, from: from, to: to)
    }

    func releaseCowReservations(_ inode: Inode, from: UInt64, to: UInt64) {
        guard !inode.cowReserved.isEmpty else { return }
        let gone = inode.cowReserved.filter { $0 >= from && $0 < to }
        inode.cowReserved.subtract(gone)
        metadata.allocatorLock.withLock { metadata.freeSpace.unreserve(UInt64(gone.count)) }
    }

    /// Inodes with no name: at mount, those a crash left behind (open-but-unlinked files); at
    /// unmount, those the kernel still referenced, since its references end with the mount.
    func freeOrphans() throws {
        let orphans = metadata.withLock {
            metadata.inodes.values.filter { $0.nlink == 0 }.map { inode in
                inode.lookupCount = 0
                inode.openCount = 0
                return inode
            }
        }
        for inode in orphans { reapIfDead(inode) }
        if !orphans.isEmpty {
            logger.info("freed \(orphans.count) orphaned inodes")
            try journal.force()
        }
    }
}
