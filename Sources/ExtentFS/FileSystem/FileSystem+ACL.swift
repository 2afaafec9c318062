import ExtentFSCore
import SystemPackage

/// POSIX ACLs: what every Linux filesystem does around them and the kernel leaves to a FUSE
/// daemon (fs/fuse/acl.c: "Fuse userspace is responsible for updating access permissions").
/// The kernel checks permissions against the ACLs it reads back through getxattr, and refuses
/// malformed ones before they get here; the engine keeps the mode and the ACLs consistent:
/// - setting an access ACL sets the mode's permission bits from it (the group bits from its mask)
///   and stores an ACL the mode says all of as the mode alone (posix_acl_update_mode), clearing
///   set-group-ID when the caller is not in the file's group and lacks CAP_FSETID;
/// - chmod rewrites the access ACL's owner, mask (or owning group) and other entries
///   (posix_acl_chmod);
/// - a new inode in a directory with a default ACL gets an access ACL from it, limited by the
///   create mode, instead of the umask, and a new directory inherits the default ACL itself
///   (posix_acl_create); without a default ACL the umask applies (FUSE_DONT_MASK leaves it to us).
/// Invariant: every stored ACL value is one `AccessControlList` accepts (set here, checked at
/// load by the decoder), and a default ACL only on a directory.
extension FileSystem {
    /// setxattr of `system.posix_acl_access` or `_default`. In a transaction; the caller checked
    /// the flags and sets ctime.
    func setACL(_ inode: Inode, name: [UInt8], value: [UInt8], changedBy caller: Credentials?) throws {
        // As for the kernel's symlinks, which have no set_acl.
        guard inode.type != .symlink else { throw Errno.notSupported }
        let acl = try AccessControlList(xattrValue: value)
        if name == AccessControlList.defaultXattrName {
            // set_posix_acl's answer: only a directory has a default ACL.
            guard inode.type == .directory else { throw Errno.permissionDenied }
            try storeXattr(inode, name: name, value: acl.xattrValue)
            return
        }
        var mode = inode.mode & ~0o777 | acl.permissionBits
        if let caller, !caller.keepsSetIDBits, !caller.isMember(inode.gid) { mode &= ~0o2000 }
        if acl.isEquivalentToMode {
            if inode.xattrs[name] != nil { inode.xattrs[name] = nil }
        } else {
            try storeXattr(inode, name: name, value: acl.xattrValue)
        }
        if inode.mode != mode { inode.mode = mode }
    }

    /// Whether `caller` may read `ino` by its mode and access ACL now (the kernel's
    /// generic_permission for MAY_READ): root may; the owner by the owner's bits; anyone else by
    /// the ACL if there is one, else by the group's bits for a member and the others' for the
    /// rest. The adapter's second look at the source of a clone or dedupe.
    public func mayRead(_ ino: InodeNumber, by caller: Credentials) throws -> Bool {
        try journal.shutdown.check()
        let read: UInt16 = 0o4
        return try readingFields(of: ino) { inode in
            if caller.uid == 0 { return true }
            if caller.uid == inode.uid { return inode.mode & 0o400 != 0 }
            if !inode.xattrs.isEmpty, let value = inode.xattrs[AccessControlList.accessXattrName] {
                guard let acl = try? AccessControlList(xattrValue: value) else { return false }
                return acl.grants(read, toUser: caller.uid, owningGroup: inode.gid, isMember: caller.isMember)
            }
            let groupMayRead = inode.mode & 0o040 != 0
            let othersMayRead = inode.mode & 0o004 != 0
            // Membership matters only where the group's bits and the others' differ.
            guard groupMayRead != othersMayRead else { return othersMayRead }
            return caller.isMember(inode.gid) ? groupMayRead : othersMayRead
        }
    }

    /// After a chmod of `inode` to its current mode: its access ACL follows (posix_acl_chmod).
    /// In a transaction. The ACL keeps its size, so nothing more is charged.
    func updateAccessACLAfterChmod(_ inode: Inode) {
        guard !inode.xattrs.isEmpty, let value = inode.xattrs[AccessControlList.accessXattrName] else { return }
        guard var acl = try? AccessControlList(xattrValue: value) else {
            // Unreachable while the invariant holds; the ACL is left as it was rather than trap.
            return logger.error("inode \(inode.ino) holds a malformed access ACL; chmod left it as it was")
        }
        acl.applyChmod(inode.mode)
        inode.xattrs[AccessControlList.accessXattrName] = acl.xattrValue
    }

    /// What a new inode of `mode` in `directory` gets: its mode (umask or default ACL applied)
    /// and the ACL xattrs to store on it. Symlinks take neither (their mode is always 0777).
    /// Caller holds Metadata.lock.
    func inheritedPermissions(in directory: Inode, mode: UInt32, umask: UInt32) throws -> (mode: UInt32, xattrs: [([UInt8], [UInt8])]) {
        let type = FileType(mode: mode)
        guard type != .symlink else { return (mode, []) }
        guard !directory.xattrs.isEmpty, let defaultValue = directory.xattrs[AccessControlList.defaultXattrName] else {
            return (mode & ~(umask & 0o777), [])
        }
        guard let defaultACL = try? AccessControlList(xattrValue: defaultValue) else {
            logger.error("directory \(directory.ino) holds a malformed default ACL")
            throw Errno.ioError
        }
        var mode = mode
        var xattrs: [([UInt8], [UInt8])] = []
        if let access = defaultACL.inherited(mode: &mode) {
            xattrs.append((AccessControlList.accessXattrName, access.xattrValue))
        }
        if type == .directory { xattrs.append((AccessControlList.defaultXattrName, defaultValue)) }
        return (mode, xattrs)
    }
}

extension FileSystem {
    /// Whether `name` is `system.posix_acl_access` or `system.posix_acl_default`.
    public static func isPosixACLName(_ name: [UInt8]) -> Bool {
        AccessControlList.isACLName(name)
    }
}
