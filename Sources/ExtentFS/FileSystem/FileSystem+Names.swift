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

    /// Creates an inode named `name` in `directory`, inheriting the group of a set-group-ID
    /// directory as ext4 and XFS do, and its default ACL or else the owner's umask
    /// (FileSystem+ACL.swift); takes `kernelReferences` lookup references (the kernel's entry
    /// reply takes one). `contentBytes` is what `configure` adds to the inode (a symlink's
    /// target), charged to space with it; `configure` runs before the inode has a name, so nobody
    /// sees it half made.
    ///
    /// A rename's whiteout takes the name the rename frees (`replacing`): the rename's changes
    /// are `beforeNaming`, run once all that could refuse the whiteout has passed (the checks,
    /// the charge, the inode's number), so that a refused whiteout leaves the rename undone.
    ///
    /// Caller is in a transaction shared on `directory` (create, mknod, mkdir, symlink: names made
    /// in different directories are made together; a rename with a whiteout) or holds
    /// Metadata.lock exclusively. Beyond the directory's fields and the new inode's it touches only what has a
    /// lock of its own: the metadata charge (the allocator's lock, pending until the inode and
    /// its entry count themselves), the inode's number and the table (Metadata.tableLock, under
    /// which it also reads the committed tree to look the name up in a directory that holds only
    /// some of its entries) and the running transaction's noting.
    func makeNode(in directory: Inode, name: [UInt8], mode: UInt32, owner: Credentials, contentBytes: Int = 0,
                  kernelReferences: UInt64 = 1, replacing: Bool = false,
                  configure: (Inode) -> Void = { _ in }, beforeNaming: () -> Void = {}) throws -> Inode {
        try Directory.validate(name: name)
        guard directory.type == .directory else { throw Errno.notDirectory }
        guard directory.nlink > 0 else { throw Errno.noSuchFileOrDirectory }
        // may_create: no new entry in an immutable directory (an append-only one takes them).
        try refuseIfImmutable(directory)
        if try Directory.isDotOrDotDot(name) || (!replacing && metadata.entry(in: directory, named: name) != nil) {
            throw Errno.fileExists
        }
        guard let type = FileType(mode: mode) else { throw Errno.invalidArgument }
        let (inheritedMode, aclXattrs) = try inheritedPermissions(in: directory, mode: mode, umask: owner.umask)
        let aclBytes = aclXattrs.reduce(0) { $0 + $1.0.count + $1.1.count + 6 }
        guard !directory.directory!.isOutOfCookies else { throw Errno.noSpace }
        return try metadata.withMetadataCharged(bytes: Self.nodeBytes(named: name, contentBytes: contentBytes + aclBytes)) {
            if type == .directory, directory.nlink >= FileSystem.maxLinks { throw Errno.tooManyLinks }
            var mode = inheritedMode
            var gid = owner.gid
            if directory.mode & UInt32(0o2000) != 0 {
                gid = directory.gid
                if type == .directory { mode |= 0o2000 }
            }
            let now = Timespec.now
            let inode = Inode(ino: try metadata.claimInodeNumber(), mode: mode, uid: owner.uid, gid: gid, time: now, cache: cache)
            inode.unloggedEntryChanges = nil  // no image of it on record yet: the first is whole
            inode.generation = UInt64(now.nanoseconds)
            configure(inode)
            for (aclName, value) in aclXattrs { inode.xattrs[aclName] = value }
            if type == .directory { inode.parent = directory.ino }
            inode.lookupCount = kernelReferences
            beforeNaming()
            metadata.insert(inode)
            directory.addEntry(name: name, ino: inode.ino, type: type)
            if type == .directory { directory.nlink += 1 }
            directory.mtime = now
            directory.ctime = now
            return inode
        }
    }

    /// Removes `name` from directory `parent` with `change` (which removes the entry and lowers
    /// the link counts), after the checks every removal makes; returns the inode it named. In a
    /// transaction shared on the directory and that inode (their transactionLocks, lower number
    /// first) when both were found ahead with no lock held exclusively and the name still names
    /// that inode, the table's member (or shared on the directory alone when the name was not
    /// found: ENOENT); else (the name changed meanwhile, or the inode found is no longer the
    /// table's member) in an exclusive one, read ahead as before.
    func removeName(_ name: [UInt8], in parent: InodeNumber,
                    _ change: (_ directory: Inode, _ inode: Inode, Directory.Entry) throws -> Void) throws -> Inode {
        let directory = try inode(parent)
        let found = entryReadAhead(name, in: directory)
        let named = found.flatMap { try? inode($0.ino) }
        // Found neither: shared on the directory alone, to learn that the name is not there.
        if found == nil || named != nil {
            let removed = try metadata.sharedTransaction(on: [directory, named ?? directory]) { () -> Bool in
                try Directory.validate(name: name)
                guard directory.type == .directory else { throw Errno.notDirectory }
                guard let entry = try metadata.entry(in: directory, named: name) else { throw Errno.noSuchFileOrDirectory }
                guard let named, entry.ino == named.ino, metadata.inodes[named.ino] === named else { return false }
                try refuseRemoval(of: named, from: directory)
                try change(directory, named, entry)
                return true
            }
            if removed, let named { return named }
        }
        readAheadOfChange([(parent, name)])
        return try metadata.transaction {
            try Directory.validate(name: name)
            let directory = try directoryInode(parent)
            guard let entry = try metadata.entry(in: directory, named: name) else { throw Errno.noSuchFileOrDirectory }
            let inode = try metadata.inode(entry.ino)
            try refuseRemoval(of: inode, from: directory)
            try change(directory, inode, entry)
            return inode
        }
    }

    /// The metadata a new inode named `name` adds to the checkpoints: its image, its entry, and
    /// `contentBytes` (a symlink's target, inherited ACLs).
    static func nodeBytes(named name: [UInt8], contentBytes: Int) -> Int { 160 + 2 * name.count + contentBytes }

    /// Frees an inode nobody can reach any more: no name, no kernel reference, not open. Drops
    /// its pages under the invalidate_lock, then its extents and its place in the table in one
    /// transaction shared on it (a truncate's unmapping; the table's change under tableLock).
    /// Dead stays dead: no name can be made for it again (a lookup or a link wants a link count
    /// above zero), so nothing but a stale request finds it in the table, and whatever changes
    /// it holds its transactionLock, which the transaction takes.
    func reapIfDead(_ inode: Inode) {
        // Most inodes a removal names live on (another name, a kernel reference, an open file):
        // that is learnt under their own lock, so that a name removed in a shared transaction
        // waits for no other transaction here either.
        guard inode.looksDead else { return }
        func isDead() -> Bool { inode.nlink == 0 && !inode.isInUse && metadata.inodes[inode.ino] === inode }
        inode.lock.withExclusive {
            inode.invalidateLock.withExclusive {
                // Pages are dropped with no Metadata.lock held (page locks come before it).
                guard metadata.sharedTransaction(on: inode, isDead) else { return }
                inode.pages?.removePages(from: 0)
                metadata.sharedTransaction(on: inode) {
                    guard isDead() else { return }
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
