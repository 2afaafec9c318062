import ExtentFSCore
import SystemPackage

/// Extended attributes in the user, trusted and security namespaces, and POSIX ACLs, with
/// Linux's limits and a bound per inode (ExtentFSCore/Inode/ExtendedAttributes.swift). Through a mount the kernel checks who may
/// touch which namespace before a request gets here (trusted.* needs CAP_SYS_ADMIN, security.*
/// the security modules' say, user.* only on regular files and directories); the engine checks
/// names, sizes and space, which the kernel cannot.
extension FileSystem {
    static let maxXattrValue = ExtendedAttributes.maxValueBytes

    /// ERANGE (name length), EOPNOTSUPP (namespace), EINVAL (bare prefix, NUL) and E2BIG
    /// (value over 64 KiB), as the kernel gives them; ENOSPC when the inode's xattrs would pass
    /// their bound (as ext4 and btrfs answer when an inode's xattr space is full) or the volume
    /// has no room for the metadata. A POSIX ACL (FileSystem+ACL.swift) is validated (EINVAL)
    /// and kept consistent with the mode; `changedBy` is who sets it, for the set-group-ID rule
    /// (nil: an in-process caller, who keeps it).
    public func setxattr(_ ino: InodeNumber, name: [UInt8], value: [UInt8], flags: XattrFlags,
                         changedBy caller: Credentials? = nil) throws {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        try ExtendedAttributes.check(name: name)
        guard value.count <= ExtendedAttributes.maxValueBytes else { throw Errno.argListTooLong }
        // This inode's fields alone (its xattrs, and the mode an access ACL sets): shared, the
        // charge under the allocator's lock.
        let inode = try self.inode(ino)
        try metadata.sharedTransaction(on: inode) {
            try refuseIfImmutableOrAppendOnly(inode)  // xattr_permission
            let old = inode.xattrs[name]
            if flags.contains(.create) && old != nil { throw Errno.fileExists }
            if flags.contains(.replace) && old == nil { throw Errno.noData }
            if AccessControlList.isACLName(name) {
                try setACL(inode, name: name, value: value, changedBy: caller)
            } else {
                try storeXattr(inode, name: name, value: value)
            }
            inode.ctime = .now
        }
    }

    /// Sets one xattr within the inode's bounds, charging the metadata it adds. In a transaction
    /// (shared on the inode, or not).
    func storeXattr(_ inode: Inode, name: [UInt8], value: [UInt8]) throws {
        let old = inode.xattrs[name]
        guard inode.xattrs.fits(name: name, valueBytes: value.count) else { throw Errno.noSpace }
        let growth = value.count - (old.map { $0.count } ?? -(name.count + 6))
        try metadata.withMetadataCharged(bytes: growth) { inode.xattrs[name] = value }
    }

    public func getxattr(_ ino: InodeNumber, name: [UInt8]) throws -> [UInt8] {
        try journal.shutdown.check()
        try ExtendedAttributes.check(name: name)
        guard let value = try readingFields(of: ino, { $0.xattrs[name] }) else { throw Errno.noData }
        return value
    }

    /// The names in byte order. `includingTrusted: false` leaves out trusted.* names, as ext4
    /// and XFS do for a caller without CAP_SYS_ADMIN (the kernel checks getxattr and setxattr of
    /// trusted.* itself, but passes listxattr on to a FUSE daemon unfiltered).
    public func listxattr(_ ino: InodeNumber, includingTrusted: Bool = true) throws -> [[UInt8]] {
        try journal.shutdown.check()
        let names = try readingFields(of: ino) { $0.xattrs.sortedNames }
        guard !includingTrusted else { return names }
        return names.filter { !$0.starts(with: FileSystem.trustedXattrPrefix) }
    }

    public func removexattr(_ ino: InodeNumber, name: [UInt8]) throws {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        try ExtendedAttributes.check(name: name)
        let inode = try self.inode(ino)
        try metadata.sharedTransaction(on: inode) {
            try refuseIfImmutableOrAppendOnly(inode)  // xattr_permission
            guard inode.xattrs[name] != nil else { throw Errno.noData }
            inode.xattrs[name] = nil
            inode.ctime = .now
        }
    }

    static let trustedXattrPrefix: [UInt8] = Array("trusted.".utf8)
}
