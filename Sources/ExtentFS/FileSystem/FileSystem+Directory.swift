import ExtentFSCore
import SystemPackage

extension FileSystem {
    /// The cookie past every entry the directory holds now. A rename gives its entry a new
    /// cookie, past every existing one, so a reader that went on to whatever cookies came next
    /// could meet a renamed entry again and again and never reach the end (xfstests generic/736:
    /// a readdir of 5,000 names while they are renamed did not end). A directory stream reads up
    /// to the end cookie it took when it was opened or rewound (as btrfs does with its last
    /// index): entries added or renamed meanwhile may or may not be seen, as POSIX allows.
    public func directoryEndCookie(_ ino: InodeNumber) throws -> UInt64 {
        try journal.shutdown.check()
        return try readingFields(of: ino) { inode in
            guard let entries = inode.directory else { throw Errno.notDirectory }
            return entries.nextCookie
        }
    }

    /// Entries after `cookie` (0: from the start, "." and ".." first) and below `end`, in cookie
    /// order, until `emit` returns false.
    ///
    /// Listed in a hold shared on the directory (no name in it changes meanwhile: its changes
    /// hold its transactionLock) with the table's lock, under which the tree is read and
    /// READDIRPLUS reads back the inodes it names, so a listing waits for no write and no name
    /// made elsewhere. The leaves it reads are read ahead with no lock held; the inodes it reads
    /// back are let go after, if they took the table past its budget.
    public func readdir(_ ino: InodeNumber, after cookie: UInt64, before end: UInt64 = .max, plus: Bool,
                        _ emit: (DirectoryEntry, FileAttributes?) -> Bool) throws {
        try journal.shutdown.check()
        readAheadOfListing(ino, after: max(cookie, 2), before: end)
        let directory = try inode(ino)
        guard directory.fieldLock.withLock({ directory.type }) == .directory else { throw Errno.notDirectory }
        defer { metadata.evictAfterSharedLoads() }
        try metadata.sharedTransaction(on: directory) {
            try metadata.tableLock.withLock {
                if cookie < 1 {
                    let entry = DirectoryEntry(name: [0x2E], ino: ino, type: .directory, nextCookie: 1)
                    guard emit(entry, plus ? attributes(of: directory) : nil) else { return }
                }
                if cookie < 2 {
                    let parentNumber = directory.fieldLock.withLock { directory.parent }
                    let parent = metadata.inodeIfPresentUnderTableLock(parentNumber) ?? directory
                    let entry = DirectoryEntry(name: [0x2E, 0x2E], ino: parent.ino, type: .directory, nextCookie: 2)
                    guard emit(entry, plus ? attributes(of: parent) : nil) else { return }
                }
                try metadata.forEachEntry(of: directory, after: max(cookie, 2), before: end) { name, entry in
                    let child = plus ? metadata.inodeIfPresentUnderTableLock(entry.ino) : nil
                    let accepted = emit(DirectoryEntry(name: name, ino: entry.ino, type: entry.type, nextCookie: entry.cookie),
                                        child.map(attributes(of:)))
                    if accepted, let child { child.lookupCount += 1 }
                    return accepted
                }
            }
        }
    }

    private func attributes(of inode: Inode) -> FileAttributes {
        inode.fieldLock.withLock { inode.attributes(blockSize: blockSize) }
    }
}
