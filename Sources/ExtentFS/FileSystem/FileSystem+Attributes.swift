import ExtentFSCore
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// setattr, open/release and access.
extension FileSystem {
    public func setattr(_ ino: InodeNumber, _ changes: AttributeChanges) throws -> FileAttributes {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        let inode = try self.inode(ino)
        // Before the truncate takes the inode lock: one racing the setFlags that forbids it may
        // still run, as if it had come first.
        try inode.fieldLock.withLock { try refuseChange(of: inode, by: changes) }
        if let size = changes.size {
            switch inode.type {
            case .regular: break
            case .directory: throw Errno.isDirectory
            default: throw Errno.invalidArgument
            }
            guard size <= Superblock.maxFileSize else { throw Errno.fileTooLarge }
            if let remover = changes.privilegesRemovedBy {
                metadata.sharedTransaction(on: inode) { _ = removePrivileges(inode, changedBy: remover) }
            }
            try truncate(inode, to: size)
        }
        // This inode's fields alone (an access ACL's xattr keeps its size): shared.
        let attributes = metadata.sharedTransaction(on: inode) { () -> FileAttributes in
            let now = Timespec.now
            if let mode = changes.mode {
                inode.mode = (inode.mode & FileType.mask) | (mode & 0o7777)
                updateAccessACLAfterChmod(inode)
            }
            if let uid = changes.uid { inode.uid = uid }
            if let gid = changes.gid { inode.gid = gid }
            switch changes.atime {
            case .now: inode.atime = now
            case .set(let time): inode.atime = time
            case nil: break
            }
            switch changes.mtime {
            case .now: inode.mtime = now
            case .set(let time): inode.mtime = time
            case nil: break
            }
            if changes.size != nil && changes.mtime == nil { inode.mtime = now }
            if changes.uid != nil || changes.gid != nil, inode.type != .directory, let remover = changes.privilegesRemovedBy {
                removePrivileges(inode, changedBy: remover)
            }
            inode.ctime = changes.ctime ?? now
            return inode.attributes(blockSize: blockSize)
        }
        try commitIfAttributesSynchronous()
        return attributes
    }

    /// EPERM for a setattr the VFS's notify_change and truncate refuse: any change of an
    /// immutable file; of an append-only one, anything but setting its times to now. Caller holds
    /// the inode's fieldLock or is in a transaction on it.
    private func refuseChange(of inode: Inode, by changes: AttributeChanges) throws {
        try refuseIfImmutable(inode)
        guard inode.flags.contains(.appendOnly) else { return }
        let setsTime = [changes.atime, changes.mtime].contains { if case .set = $0 { return true } else { return false } }
        if changes.size != nil || changes.mode != nil || changes.uid != nil || changes.gid != nil || setsTime {
            throw Errno.notPermitted
        }
    }

    public func open(_ ino: InodeNumber, flags: Int32) throws {
        try journal.shutdown.check()
        // Opening for writing or truncating is a change to come, refused as open(2) refuses it.
        if flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0 { try refuseIfReadOnly() }
        // Opens under the inode's own lock: no transaction holds it up.
        let inode = try self.inode(ino)
        try inode.takeOpenReference {
            if inode.type == .directory && flags & 3 != 0 { throw Errno.isDirectory }
            try refuseOpen(inode, flags: flags)
        }
    }

    public func create(parent: InodeNumber, name: [UInt8], mode: UInt32, flags: Int32, owner: Credentials) throws -> FileAttributes {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        let directory = try inode(parent)
        entryReadAhead(name, in: directory)
        let attributes = try metadata.sharedTransaction(on: directory) {
            try makeNode(in: directory, name: name, mode: ExtentFSCore.FileType.regular.rawValue | (mode & 0o7777), owner: owner) {
                $0.openCount = 1
            }.attributes(blockSize: blockSize)
        }
        try commitIfDirectoriesSynchronous()
        return attributes
    }

    public func release(_ ino: InodeNumber) {
        // An open inode is in the table (InodeCache.swift), and its count is its fieldLock's.
        guard let inode = metadata.inodes[ino] else { return }
        if inode.dropReferences(opens: 1) { reapIfDead(inode) }
    }

    public func opendir(_ ino: InodeNumber) throws {
        try journal.shutdown.check()
        guard try readingFields(of: ino, { $0.type }) == .directory else { throw Errno.notDirectory }
    }

    public func flush(_ ino: InodeNumber) throws {}

    /// Writes the file's dirty data back, logs the transactions up to the file's last change (for
    /// fdatasync, its last change of size or block map; no further: other files' later changes
    /// are not waited for) and flushes the device
    /// whenever anything written is not flushed yet. A writeback error since the last fsync, in
    /// the background or here, fails this fsync once (as Linux's errseq does), and is not lost.
    public func fsync(_ ino: InodeNumber, dataOnly: Bool) throws {
        try journal.shutdown.check()
        let inode = try self.inode(ino)
        var writebackError: Error?
        do { try writeback(inode) } catch { writebackError = error }
        // The inode's transactionLock: its changes set what is read here (no other's wait).
        let (failedEarlier, lastChange) = metadata.sharedTransaction(on: inode) { () -> (Bool, LogSequence) in
            defer { inode.writebackFailed = false }
            return (inode.writebackFailed, dataOnly ? inode.lastDataChange : inode.lastChange)
        }
        if let writebackError { throw writebackError }
        if failedEarlier { throw Errno.ioError }
        if try !journal.force(upTo: lastChange) { try journal.flushIfNeeded() }
    }

    /// A directory's entries are metadata: logging everything up to now covers them.
    public func fsyncdir(_ ino: InodeNumber) throws {
        try journal.shutdown.check()
        let inode = try self.inode(ino)
        let lastChange = metadata.sharedTransaction(on: inode) { inode.lastChange }
        try journal.force(upTo: lastChange)
    }
}
