import SystemPackage

/// Extended attributes in the user, trusted and security namespaces, with Linux's limits.
extension FileSystem {
    static let maxXattrValue = 65536
    private static let namespaces: [[UInt8]] = ["user.", "trusted.", "security."].map { Array($0.utf8) }

    /// A name extentfs stores: 1 to 255 bytes, a known namespace and something after it, no NUL.
    static func isValidXattrName(_ name: [UInt8]) -> Bool {
        !name.isEmpty && name.count <= 255 && !name.contains(0) &&
            namespaces.contains(where: { name.count > $0.count && name.starts(with: $0) })
    }

    private static func validate(xattrName name: [UInt8]) throws {
        guard !name.isEmpty, name.count <= 255 else { throw Errno.outOfRange }
        guard namespaces.contains(where: { name.count > $0.count && name.starts(with: $0) }) else { throw Errno.notSupported }
    }

    public func setxattr(_ ino: InodeNumber, name: [UInt8], value: [UInt8], flags: XattrFlags) throws {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        try FileSystem.validate(xattrName: name)
        guard value.count <= FileSystem.maxXattrValue else { throw Errno.argListTooLong }
        try metadata.transaction {
            let inode = try metadata.inode(ino)
            let exists = inode.xattrs[name] != nil
            if flags.contains(.create) && exists { throw Errno.fileExists }
            if flags.contains(.replace) && !exists { throw Errno.noData }
            let growth = name.count + 6 + value.count - (inode.xattrs[name].map { $0.count + name.count + 6 } ?? 0)
            if growth > 0 { try metadata.chargeMetadata(bytes: growth) }
            inode.xattrs[name] = value
            inode.ctime = .now
        }
    }

    public func getxattr(_ ino: InodeNumber, name: [UInt8]) throws -> [UInt8] {
        try journal.shutdown.check()
        try FileSystem.validate(xattrName: name)
        return try metadata.withLock {
            guard let value = try metadata.inode(ino).xattrs[name] else { throw Errno.noData }
            return value
        }
    }

    public func listxattr(_ ino: InodeNumber) throws -> [[UInt8]] {
        try journal.shutdown.check()
        return try metadata.withLock {
            try metadata.inode(ino).xattrs.keys.sorted { $0.lexicographicallyPrecedes($1) }
        }
    }

    public func removexattr(_ ino: InodeNumber, name: [UInt8]) throws {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        try FileSystem.validate(xattrName: name)
        try metadata.transaction {
            let inode = try metadata.inode(ino)
            guard inode.xattrs.removeValue(forKey: name) != nil else { throw Errno.noData }
            inode.ctime = .now
        }
    }
}
