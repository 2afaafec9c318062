import ExtentFSCore
import SystemPackage

/// Lookup, creation, links, removal and rename.
extension FileSystem {
    /// Takes a lookup reference on what `name` names in `parent`. The VFS resolves "." and ".."
    /// itself; the kernel sends them only to reconnect an NFS or open_by_handle_at file handle
    /// whose inode it no longer caches (FUSE export support): "." with any inode's number, to
    /// find that inode, ".." with a directory's, to find its parent. An inode with no name left
    /// (deleted) is ENOENT, which the kernel turns into ESTALE; inode numbers are never reused,
    /// and the handle's generation tells a number reused after a crash from the old one.
    public func lookup(parent: InodeNumber, name: [UInt8]) throws -> FileAttributes {
        try journal.shutdown.check()
        guard name.count <= FileSystem.maxNameLength else { throw Errno.fileNameTooLong }
        if let attributes = try lookupInMemory(parent: parent, name: name) { return attributes }
        // Deferrable: it changes nothing but the table. A change of the name may come between
        // the read and the lookup reference, under the inodes' transactionLocks, as it may
        // between two requests: a name removed with the last link is ENOENT.
        let inode = try readingTreeOutsideTheLock {
            let ino: InodeNumber
            if name == [0x2E] {
                ino = parent
            } else if name == [0x2E, 0x2E] {
                let directory = try directoryUnderTableLock(parent)
                ino = directory.fieldLock.withLock { directory.parent }
            } else {
                guard let entry = try metadata.entryUnderTableLock(in: directoryUnderTableLock(parent), named: name) else { throw Errno.noSuchFileOrDirectory }
                ino = entry.ino
            }
            return try metadata.inodeUnderTableLock(ino)
        }
        guard let attributes = inode.takeLookupReference(blockSize: blockSize) else { throw Errno.noSuchFileOrDirectory }
        return attributes
    }

    /// A lookup answered by the inode table and the directory's entries in memory, under the
    /// inodes' own locks (Inode.fieldLock) with no Metadata.lock, so that no transaction holds it
    /// up: the directory and the inode are held, and the directory's entries in memory know the
    /// name (a complete directory, or a partial one's changes). nil when they cannot answer
    /// alone: the caller looks under Metadata.lock, which also meets every error but ENOENT.
    private func lookupInMemory(parent: InodeNumber, name: [UInt8]) throws -> FileAttributes? {
        guard let directory = metadata.inodes[parent] else { return nil }
        enum Answer { case inode(InodeNumber), absent, unknown }
        let answer = directory.fieldLock.withLock { () -> Answer in
            guard let entries = directory.directory else { return .unknown }
            if name == [0x2E] { return .inode(parent) }
            if name == [0x2E, 0x2E] { return .inode(directory.parent) }
            switch entries.heldLookup(name) {
            case .found(let entry): return .inode(entry.ino)
            case .absent: return .absent
            case .unknown: return .unknown
            }
        }
        switch answer {
        case .unknown: return nil
        case .absent: throw Errno.noSuchFileOrDirectory
        case .inode(let ino): return metadata.inodes[ino]?.takeLookupReference(blockSize: blockSize)
        }
    }

    public func forget(_ ino: InodeNumber, count: UInt64) {
        // A member of the table drops its count under its own lock: the sweep that would let it
        // go finds it referenced meanwhile (InodeTable.swift), and counts it after.
        if let inode = metadata.inodes[ino] {
            if inode.dropReferences(lookups: count) { reapIfDead(inode) }
            return
        }
        // Let go by the table: its kept count is the table's bookkeeping, tableLock's in a shared
        // hold, as a read back that takes it is (the two meet in one order: a count read back
        // is dropped from the member).
        let inode: Inode? = metadata.lock.withShared {
            metadata.tableLock.withLock {
                guard let inode = metadata.inodes[ino] else {
                    // Only its lookup count is held (a held inode with link count 0 is never let
                    // go, so nothing is left to reap).
                    metadata.cacheState.forget(ino, count: count)
                    return nil
                }
                return inode.dropReferences(lookups: count) ? inode : nil
            }
        }
        if let inode { reapIfDead(inode) }
    }

    public func getattr(_ ino: InodeNumber) throws -> FileAttributes {
        try journal.shutdown.check()
        return try readingFields(of: ino) { $0.attributes(blockSize: blockSize) }
    }

    public func mknod(parent: InodeNumber, name: [UInt8], mode: UInt32, rdev: UInt64, owner: Credentials) throws -> FileAttributes {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        guard let type = FileType(mode: mode), type != .directory, type != .symlink else { throw Errno.invalidArgument }
        let directory = try inode(parent)
        entryReadAhead(name, in: directory)
        let attributes = try metadata.sharedTransaction(on: directory) {
            try makeNode(in: directory, name: name, mode: mode, owner: owner) { $0.rdev = rdev }.attributes(blockSize: blockSize)
        }
        try commitIfDirectoriesSynchronous()
        return attributes
    }

    public func mkdir(parent: InodeNumber, name: [UInt8], mode: UInt32, owner: Credentials) throws -> FileAttributes {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        let directory = try inode(parent)
        entryReadAhead(name, in: directory)
        let attributes = try metadata.sharedTransaction(on: directory) {
            try makeNode(in: directory, name: name, mode: ExtentFSCore.FileType.directory.rawValue | (mode & 0o7777), owner: owner)
                .attributes(blockSize: blockSize)
        }
        try commitIfDirectoriesSynchronous()
        return attributes
    }

    public func symlink(parent: InodeNumber, name: [UInt8], target: [UInt8], owner: Credentials) throws -> FileAttributes {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        guard !target.isEmpty else { throw Errno.noSuchFileOrDirectory }
        guard target.count <= FileSystem.maxSymlinkLength else { throw Errno.fileNameTooLong }
        let directory = try inode(parent)
        entryReadAhead(name, in: directory)
        let attributes = try metadata.sharedTransaction(on: directory) {
            try makeNode(in: directory, name: name, mode: FileType.symlink.rawValue | 0o777, owner: owner, contentBytes: target.count) {
                $0.symlinkTarget = target
            }.attributes(blockSize: blockSize)
        }
        try commitIfDirectoriesSynchronous()
        return attributes
    }

    public func readlink(_ ino: InodeNumber) throws -> [UInt8] {
        try journal.shutdown.check()
        return try readingFields(of: ino) { inode in
            guard inode.type == .symlink else { throw Errno.invalidArgument }
            return inode.symlinkTarget
        }
    }

    public func link(_ ino: InodeNumber, newParent: InodeNumber, newName: [UInt8]) throws -> FileAttributes {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        try Directory.validate(name: newName)
        let inode = try self.inode(ino)
        let directory = try self.inode(newParent)
        entryReadAhead(newName, in: directory)
        // Shared on the directory and the inode (FileSystem+Names.swift).
        let attributes = try metadata.sharedTransaction(on: [directory, inode]) {
            guard inode.type != .directory else { throw Errno.notPermitted }
            guard inode.nlink > 0 else { throw Errno.noSuchFileOrDirectory }
            guard inode.nlink < FileSystem.maxLinks else { throw Errno.tooManyLinks }
            guard directory.type == .directory else { throw Errno.notDirectory }
            guard directory.nlink > 0 else { throw Errno.noSuchFileOrDirectory }
            try refuseIfImmutable(directory)
            try refuseIfImmutableOrAppendOnly(inode)
            if try Directory.isDotOrDotDot(newName) || metadata.entry(in: directory, named: newName) != nil { throw Errno.fileExists }
            guard !directory.directory!.isOutOfCookies else { throw Errno.noSpace }
            return try metadata.withMetadataCharged(bytes: Directory.encodedEntryOverhead + newName.count) {
                let now = Timespec.now
                inode.lookupCount += 1
                directory.addEntry(name: newName, ino: ino, type: inode.type)
                directory.mtime = now
                directory.ctime = now
                inode.nlink += 1
                inode.ctime = now
                return inode.attributes(blockSize: blockSize)
            }
        }
        try commitIfDirectoriesSynchronous()
        return attributes
    }

    public func unlink(parent: InodeNumber, name: [UInt8]) throws {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        let victim = try removeName(name, in: parent) { directory, inode, entry in
            guard inode.type != .directory else { throw Errno.isDirectory }
            directory.removeEntry(name: name, entry: entry)
            let now = Timespec.now
            directory.mtime = now
            directory.ctime = now
            inode.nlink -= 1
            inode.ctime = now
        }
        reapIfDead(victim)
        try commitIfDirectoriesSynchronous()
    }

    public func rmdir(parent: InodeNumber, name: [UInt8]) throws {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        if name == [0x2E] { throw Errno.invalidArgument }
        if name == [0x2E, 0x2E] { throw Errno.directoryNotEmpty }
        let victim = try removeName(name, in: parent) { directory, inode, entry in
            guard inode.type == .directory else { throw Errno.notDirectory }
            guard inode.directory!.isEmpty else { throw Errno.directoryNotEmpty }
            directory.removeEntry(name: name, entry: entry)
            let now = Timespec.now
            directory.mtime = now
            directory.ctime = now
            directory.nlink -= 1
            inode.nlink = 0
            inode.ctime = now
        }
        reapIfDead(victim)
        try commitIfDirectoriesSynchronous()
    }
}
