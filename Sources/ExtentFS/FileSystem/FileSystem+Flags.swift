import ExtentFSCore
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// chattr flags (InodeFlags), the birth time, and the filesystem label.
///
/// The engine enforces immutable and append-only itself, as the VFS does for ext4 and XFS from
/// their inode flags: on FUSE the kernel does not know the flags, and in-process callers have
/// no kernel in front of them. Each operation asks `refuse...` holding the checked inode's
/// transactionLock (or Metadata.lock exclusively) or its inode lock, with the errno the VFS
/// gives (EPERM); setting the flags takes the inode lock and a transaction shared on the inode,
/// so a write or space operation that passed the check (under the inode lock) has finished
/// before a flag that would have refused it is set.
extension FileSystem {
    public func flags(_ ino: InodeNumber) throws -> InodeFlags {
        try readingFields(of: ino) { $0.flags }
    }

    /// FS_IOC_SETFLAGS, as ext4 and XFS decide it: EOPNOTSUPP for a flag extentfs does not
    /// have; EPERM unless the caller owns the file (or has CAP_FOWNER), and for setting or
    /// clearing immutable or append-only without CAP_LINUX_IMMUTABLE; EPERM for a change of
    /// any other flag of a file that stays immutable. The ctime changes.
    public func setFlags(_ ino: InodeNumber, _ flags: InodeFlags, by caller: Credentials) throws {
        try journal.shutdown.check()
        guard flags.isSubset(of: .known) else { throw Errno.notSupported }
        try refuseIfReadOnly()
        let inode = try self.inode(ino)
        inode.lock.lockExclusive()
        defer { inode.lock.unlock() }
        // Shared on the inode: every check of its flags is made holding its transactionLock (a
        // name removed, linked or renamed) or its inode lock (a write, a space operation).
        try metadata.sharedTransaction(on: inode) {
            guard caller.uid == inode.uid || caller.overridesOwnership else { throw Errno.notPermitted }
            let changed = inode.flags.symmetricDifference(flags)
            if !changed.isDisjoint(with: .needingImmutableCapability), !caller.mayChangeImmutableFlags {
                throw Errno.notPermitted
            }
            if inode.flags.contains(.immutable), flags.contains(.immutable), !changed.isEmpty { throw Errno.notPermitted }
            guard !changed.isEmpty else { return }
            inode.flags = flags
            inode.ctime = .now
        }
        try commitIfAttributesSynchronous()
    }

    /// When the inode was created; the epoch for one made before format version 6.
    public func birthTime(_ ino: InodeNumber) throws -> Timespec {
        try readingFields(of: ino) { $0.btime }
    }

    /// The label the volume has (empty: none).
    public var label: [UInt8] {
        metadata.withLock { metadata.superblock.label }
    }

    /// FS_IOC_SETFSLABEL: CAP_SYS_ADMIN only (EPERM); EINVAL for a label too long or with a
    /// NUL. Durable when this returns, in both superblock copies (two checkpoints: a mount that
    /// must fall back to the older copy still finds the new label).
    public func setLabel(_ label: [UInt8], by caller: Credentials) throws {
        try journal.shutdown.check()
        guard caller.administersFileSystems else { throw Errno.notPermitted }
        guard Superblock.isValidLabel(label) else { throw Errno.invalidArgument }
        try refuseIfReadOnly()
        metadata.withLock { metadata.superblock.label = label }
        try journal.checkpoint()
        try journal.checkpoint()
    }
}

/// The checks. Caller holds the checked inode's transactionLock (in a transaction) or its inode
/// lock, or Metadata.lock exclusively, or (open) the inode's fieldLock.
extension FileSystem {
    /// EPERM when `inode` may not change at all (immutable): its attributes, its data, its
    /// entries (a directory), its names elsewhere.
    func refuseIfImmutable(_ inode: Inode) throws {
        if inode.flags.contains(.immutable) { throw Errno.notPermitted }
    }

    /// EPERM when `inode` is immutable or append-only: what neither allows (removing or
    /// renaming it, a name of it in another directory, xattr changes, removing an entry of a
    /// directory, rewriting data that is there).
    func refuseIfImmutableOrAppendOnly(_ inode: Inode) throws {
        if !inode.flags.isDisjoint(with: [.immutable, .appendOnly]) { throw Errno.notPermitted }
    }

    /// EPERM for what may_delete refuses: removing an entry of `directory` naming `victim`.
    func refuseRemoval(of victim: Inode, from directory: Inode) throws {
        try refuseIfImmutableOrAppendOnly(directory)
        try refuseIfImmutableOrAppendOnly(victim)
    }

    /// EPERM for an open that may_open refuses: for writing or truncating an immutable file;
    /// for writing without O_APPEND, or truncating, an append-only one.
    func refuseOpen(_ inode: Inode, flags: Int32) throws {
        let writing = flags & O_ACCMODE != O_RDONLY
        let truncating = flags & O_TRUNC != 0
        if inode.flags.contains(.immutable), writing || truncating { throw Errno.notPermitted }
        if inode.flags.contains(.appendOnly), truncating || (writing && flags & O_APPEND == 0) { throw Errno.notPermitted }
    }
}
