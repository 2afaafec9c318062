/// What a change to a file's data takes from it. The kernel does this itself for the changes it
/// passes to us as writes, truncates and fallocates (file_remove_privs, then a SETATTR and a
/// REMOVEXATTR), but never sees clone, insert, collapse or unshare, which reach the engine
/// through the extentfs ioctls: without this, a user who may write a root-owned set-user-ID
/// program could replace its contents and keep the bit.
extension FileSystem {
    static let capabilityXattrName: [UInt8] = Array("security.capability".utf8)

    /// Clears the set-user-ID bit, and the set-group-ID bit when the group may execute (without
    /// group execute it marks mandatory locking and stays, as on every FUSE mount: fuse_setattr's
    /// rule), unless the caller is privileged; and removes the file's capabilities, also when
    /// root changes it (the kernel's cap_inode_killpriv asks no one). In a transaction; call
    /// before the data changes, or in the transaction that changes it, never after: a failure
    /// on the way must not leave new contents with the old privileges.
    func removePrivileges(_ inode: Inode, changedBy caller: Credentials) {
        var removed = false
        if !caller.mayKeepSetIDBits {
            var bits = FileSystem.setUserID
            if inode.mode & FileSystem.groupExecute != 0 { bits |= FileSystem.setGroupID }
            if inode.mode & bits != 0 {
                inode.mode &= ~bits
                removed = true
            }
        }
        if inode.xattrs.removeValue(forKey: FileSystem.capabilityXattrName) != nil { removed = true }
        if removed { inode.ctime = .now }
    }

    private static let setUserID: UInt32 = 0o4000
    private static let setGroupID: UInt32 = 0o2000
    private static let groupExecute: UInt32 = 0o0010
}

extension Credentials {
    /// CAP_FSETID, which the engine takes root to have: a change to the data keeps the
    /// set-user-ID and set-group-ID bits.
    var mayKeepSetIDBits: Bool { uid == 0 }
}
