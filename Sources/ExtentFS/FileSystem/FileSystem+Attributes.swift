import SystemPackage

/// setattr, open/release and access.
extension FileSystem {
    public func setattr(_ ino: InodeNumber, _ changes: AttributeChanges) throws -> FileAttributes {
        let inode = try self.inode(ino)
        if let size = changes.size {
            switch inode.type {
            case .regular: break
            case .directory: throw Errno.isDirectory
            default: throw Errno.invalidArgument
            }
            guard size <= Superblock.maxFileSize else { throw Errno.fileTooLarge }
            try truncate(inode, to: size)
        }
        return metadata.transaction {
            let now = Timespec.now
            if let mode = changes.mode { inode.mode = (inode.mode & FileType.mask) | (mode & 0o7777) }
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
            inode.ctime = changes.ctime ?? now
            return inode.attributes(blockSize: blockSize)
        }
    }

    public func open(_ ino: InodeNumber, flags: Int32) throws {
        try metadata.withLock {
            let inode = try metadata.inode(ino)
            if inode.type == .directory && flags & 3 != 0 { throw Errno.isDirectory }
            inode.openCount += 1
        }
    }

    public func create(parent: InodeNumber, name: [UInt8], mode: UInt32, flags: Int32, owner: Credentials) throws -> FileAttributes {
        try metadata.transaction {
            let inode = try makeNode(parent: parent, name: name, mode: FileType.regular.rawValue | (mode & 0o7777), owner: owner)
            inode.openCount = 1
            return inode.attributes(blockSize: blockSize)
        }
    }

    public func release(_ ino: InodeNumber) {
        let inode: Inode? = metadata.withLock {
            guard let inode = metadata.inodes[ino] else { return nil }
            inode.openCount -= min(1, inode.openCount)
            return inode
        }
        if let inode { reapIfDead(inode) }
    }

    public func opendir(_ ino: InodeNumber) throws {
        try metadata.withLock { _ = try directoryInode(ino) }
    }

    public func flush(_ ino: InodeNumber) throws {}

    public func fsync(_ ino: InodeNumber, dataOnly: Bool) throws {
        let inode = try self.inode(ino)
        try writeback(inode)
        try journal.commit()
    }

    public func fsyncdir(_ ino: InodeNumber) throws {
        try journal.commit()
    }
}
