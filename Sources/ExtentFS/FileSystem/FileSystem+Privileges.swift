/// What a change to a file's data takes from it. With FUSE_HANDLE_KILLPRIV_V2 (negotiated by the
/// adapter) the kernel leaves this to us for writes, truncates and chowns, telling us in each
/// request whether the caller lacks CAP_FSETID; it never sees clone, insert, collapse, unshare
/// or fallocate's changes at all, which reach the engine through the extentfs ioctls and
/// FALLOCATE. Without this, a user who may write a root-owned set-user-ID program could
/// replace its contents and keep the bit.
extension FileSystem {
    static let capabilityXattrName: [UInt8] = Array("security.capability".utf8)

    /// Clears the set-user-ID and set-group-ID bits as the kernel's setattr_should_drop_suidgid
    /// would, unless the caller keeps them (CAP_FSETID): set-user-ID always; set-group-ID when
    /// the group may execute, or when the caller is not in the file's group (without group
    /// execute the bit may mark mandatory locking, which a member may keep). Removes the file's
    /// capabilities, also when root changes it (the kernel's cap_inode_killpriv asks no one).
    /// Returns whether anything was removed. In a transaction; call before the data changes, or
    /// in the transaction that changes it, never after: a failure on the way must not leave new
    /// contents with the old privileges.
    @discardableResult
    func removePrivileges(_ inode: Inode, changedBy caller: Credentials) -> Bool {
        var removed = false
        if !caller.keepsSetIDBits, inode.mode & (FileSystem.setUserID | FileSystem.setGroupID) != 0 {
            var bits = FileSystem.setUserID
            if inode.mode & FileSystem.setGroupID != 0,
               inode.mode & FileSystem.groupExecute != 0 || !caller.isMember(inode.gid) {
                bits |= FileSystem.setGroupID
            }
            if inode.mode & bits != 0 {
                inode.mode &= ~bits
                removed = true
            }
        }
        // Looked up before removing: any mutation of `xattrs`, even one that finds nothing, notes
        // the inode in the running transaction.
        if !inode.xattrs.isEmpty, inode.xattrs[FileSystem.capabilityXattrName] != nil {
            inode.xattrs[FileSystem.capabilityXattrName] = nil
            removed = true
        }
        if removed { inode.ctime = .now }
        return removed
    }

    private static let setUserID: UInt32 = 0o4000
    private static let setGroupID: UInt32 = 0o2000
    private static let groupExecute: UInt32 = 0o0010
}
