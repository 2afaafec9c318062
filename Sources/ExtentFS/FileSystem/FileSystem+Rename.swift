import ExtentFSCore
import SystemPackage

/// rename and renameat2 (RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT), with the errors
/// POSIX and Linux give.
extension FileSystem {
    /// RENAME_WHITEOUT (overlayfs's, for a name it hides): the old name becomes a whiteout, a
    /// character device 0:0 of mode 0 owned by `whiteoutOwner`, in the same transaction. (The
    /// kernel has checked the caller may make device nodes.)
    public func rename(parent: InodeNumber, name: [UInt8], newParent: InodeNumber, newName: [UInt8], flags: RenameFlags,
                       whiteoutOwner: Credentials = .root) throws {
        try journal.shutdown.check()
        try refuseIfReadOnly()
        if flags.contains(.exchange) && !flags.isDisjoint(with: [.noReplace, .whiteout]) { throw Errno.invalidArgument }
        try Directory.validate(name: name)
        try Directory.validate(name: newName)
        if Directory.isDotOrDotDot(name) || Directory.isDotOrDotDot(newName) { throw Errno.invalidArgument }
        let victim: Inode?
        if let renamed = try renameShared(parent, name, newParent, newName, flags, whiteoutOwner: whiteoutOwner) {
            victim = renamed.replaced
        } else {
            readAheadOfChange([(parent, name), (newParent, newName)])
            victim = try metadata.transaction {
                try renameEntries(in: directoryInode(parent), name, to: directoryInode(newParent), newName, flags: flags,
                                  whiteoutOwner: whiteoutOwner)
            }
        }
        if let victim { reapIfDead(victim) }
        // A walk up a new parent's ancestors may have read some back.
        metadata.evictAfterSharedLoads()
        try commitIfDirectoriesSynchronous()
    }

    /// A rename in a transaction shared on both directories, the inode moving and the one its
    /// new name names, if any (transactionLocks lower number first), when all are found ahead
    /// with no lock held exclusively and the names still name them, as table members; nil (for
    /// an exclusive rename) if not. The common renames: a file written under a temporary name
    /// and renamed over the old, a file moved to another directory, a directory moved to another
    /// parent. A directory that stays in its parent cannot move below itself, and a file has
    /// nothing below it; a directory moving to another parent (RENAME_EXCHANGE: either inode)
    /// walks up its new parent's ancestors, which only such moves change, under
    /// `Metadata.directoryMoveLock`.
    private func renameShared(_ parent: InodeNumber, _ name: [UInt8], _ newParent: InodeNumber, _ newName: [UInt8],
                              _ flags: RenameFlags, whiteoutOwner: Credentials) throws -> Renamed? {
        let source = try inode(parent)
        let target = try inode(newParent)
        guard let sourceGuess = entryReadAhead(name, in: source), let moving = try? inode(sourceGuess.ino) else { return nil }
        let targetGuess = entryReadAhead(newName, in: target)
        let other = targetGuess.flatMap { try? inode($0.ino) }
        guard (targetGuess == nil) == (other == nil) else { return nil }
        // Types never change; read under the inodes' own locks, as a chmod may be changing the
        // rest of the mode.
        func isDirectory(_ inode: Inode?) -> Bool { inode.map { inode in inode.fieldLock.withLock { inode.type == .directory } } ?? false }
        let movesDirectory = parent != newParent && (isDirectory(moving) || (flags.contains(.exchange) && isDirectory(other)))
        if movesDirectory { metadata.directoryMoveLock.lock() }
        defer { if movesDirectory { metadata.directoryMoveLock.unlock() } }
        return try metadata.sharedTransaction(on: [source, target, moving] + (other.map { [$0] } ?? [])) {
            guard source.type == .directory, target.type == .directory,
                  metadata.inodes[source.ino] === source, metadata.inodes[target.ino] === target,
                  try metadata.entry(in: source, named: name)?.ino == moving.ino, metadata.inodes[moving.ino] === moving,
                  try metadata.entry(in: target, named: newName)?.ino == other?.ino,
                  other.map({ metadata.inodes[$0.ino] === $0 }) ?? true else { return nil }
            return Renamed(replaced: try renameEntries(in: source, name, to: target, newName, flags: flags, whiteoutOwner: whiteoutOwner))
        }
    }

    private struct Renamed {
        /// The inode the new name no longer names, if any.
        let replaced: Inode?
    }

    /// The rename itself, `source` and `target` the directories: in a transaction, exclusive, or
    /// shared on the directories, the inode moving and the one `newName` names (`renameShared`;
    /// a directory moving to another parent with `directoryMoveLock` held). Every check comes
    /// before the first change, a whiteout's too (`makeNode`'s `beforeNaming`), so that a
    /// refused rename changes nothing. Returns the inode the new name no longer names, if any.
    private func renameEntries(in source: Inode, _ name: [UInt8], to target: Inode, _ newName: [UInt8], flags: RenameFlags,
                               whiteoutOwner: Credentials) throws -> Inode? {
        let parent = source.ino
        let newParent = target.ino
        guard let sourceEntry = try metadata.entry(in: source, named: name) else { throw Errno.noSuchFileOrDirectory }
        let moving = try metadata.inode(sourceEntry.ino)
        let targetEntry = try metadata.entry(in: target, named: newName)
        // A name renamed onto a name of the same inode changes nothing, and is not refused
        // (vfs_rename returns before may_delete).
        if targetEntry?.ino != sourceEntry.ino { try refuseRename(moving, from: source, to: target, replacing: targetEntry) }
        let now = Timespec.now

        if flags.contains(.exchange) {
            guard let targetEntry else { throw Errno.noSuchFileOrDirectory }
            let other = try metadata.inode(targetEntry.ino)
            if other === moving { return nil }
            if moving.type == .directory && source !== target { try checkNotAncestor(moving.ino, of: newParent) }
            if other.type == .directory && source !== target { try checkNotAncestor(other.ino, of: parent) }
            source.retargetEntry(name: name, entry: sourceEntry, ino: other.ino, type: other.type)
            target.retargetEntry(name: newName, entry: targetEntry, ino: moving.ino, type: moving.type)
            moveIfDirectory(moving, from: source, to: target)
            moveIfDirectory(other, from: target, to: source)
            touch(source, target, moved: [moving, other], at: now)
            return nil
        }

        if targetEntry != nil && flags.contains(.noReplace) { throw Errno.fileExists }
        if let targetEntry, targetEntry.ino == sourceEntry.ino { return nil }
        if moving.type == .directory {
            if source !== target {
                try checkNotAncestor(moving.ino, of: newParent)
                pausePoint(.renameAfterAncestorWalk)
            }
            if source !== target, targetEntry == nil, target.nlink >= FileSystem.maxLinks { throw Errno.tooManyLinks }
        }
        // A longer name takes more room in the checkpoints (pending until the entry counts it);
        // the new entry takes a cookie.
        let growth = max(0, newName.count - name.count)
        try metadata.allocatorLock.withLock { try metadata.chargePending(bytes: growth) }
        defer { metadata.settleCharge(bytes: growth) }
        guard !target.directory!.isOutOfCookies else { throw Errno.noSpace }
        let replaced = try targetEntry.map { try metadata.inode($0.ino) }
        if let replaced {
            if moving.type == .directory {
                guard replaced.type == .directory else { throw Errno.notDirectory }
                guard replaced.directory!.isEmpty else { throw Errno.directoryNotEmpty }
            } else if replaced.type == .directory {
                throw Errno.isDirectory
            }
        }
        // Nothing below fails: the rename's changes.
        func changeEntries() {
            if let targetEntry, let replaced {
                target.removeEntry(name: newName, entry: targetEntry)
                if replaced.type == .directory {
                    replaced.nlink = 0
                    target.nlink -= 1
                } else {
                    replaced.nlink -= 1
                }
                replaced.ctime = now
            }
            source.removeEntry(name: name, entry: sourceEntry)
            target.addEntry(name: newName, ino: moving.ino, type: moving.type)
            moveIfDirectory(moving, from: source, to: target)
            touch(source, target, moved: [moving], at: now)
        }
        if flags.contains(.whiteout) {
            // The whiteout takes the old name once the rename frees it, with nothing left that
            // could refuse it (its checks, charge and number come first); the kernel holds no
            // reference to it.
            _ = try makeNode(in: source, name: name, mode: FileType.characterDevice.rawValue, owner: whiteoutOwner,
                             kernelReferences: 0, replacing: true, beforeNaming: changeEntries)
        } else {
            changeEntries()
        }
        return replaced
    }

    /// A directory renamed from `source` into another directory `target`: its ".." and both
    /// link counts follow.
    private func moveIfDirectory(_ inode: Inode, from source: Inode, to target: Inode) {
        guard inode.type == .directory, source !== target else { return }
        inode.parent = target.ino
        source.nlink -= 1
        target.nlink += 1
    }

    private func touch(_ source: Inode, _ target: Inode, moved: [Inode], at now: Timespec) {
        for directory in [source, target] {
            directory.mtime = now
            directory.ctime = now
        }
        for inode in moved { inode.ctime = now }
    }

    /// EPERM for what may_delete and may_create refuse: the moved inode leaves `source`; an
    /// existing target leaves `target` (replaced, or with RENAME_EXCHANGE moved into `source`,
    /// which the first check already requires to take changes); a new name in an immutable
    /// directory. Caller is in the rename's transaction.
    private func refuseRename(_ moving: Inode, from source: Inode, to target: Inode, replacing targetEntry: Directory.Entry?) throws {
        try refuseRemoval(of: moving, from: source)
        try refuseIfImmutable(target)
        guard let targetEntry, let replaced = metadata.inodes[targetEntry.ino] else { return }
        try refuseRemoval(of: replaced, from: target)
    }

    /// EINVAL when `directory` is `ino` or lies below it: a directory cannot move into itself.
    /// Caller holds Metadata.lock exclusively, or is in a transaction shared on the rename's
    /// inodes with `directoryMoveLock` held, which keeps every `parent` still (only directories
    /// moved to another parent change one): the ancestors are read back under tableLock if the
    /// table does not hold them, and each one's `parent` under its fieldLock.
    private func checkNotAncestor(_ ino: InodeNumber, of directory: InodeNumber) throws {
        var current = directory
        var steps = 0
        while true {
            if current == ino { throw Errno.invalidArgument }
            guard current != FileSystem.rootInode, steps < 1 << 20,
                  let inode = metadata.tableLock.withLock({ metadata.inodeIfPresentUnderTableLock(current) }) else { return }
            current = inode.fieldLock.withLock { inode.parent }
            steps += 1
        }
    }
}
