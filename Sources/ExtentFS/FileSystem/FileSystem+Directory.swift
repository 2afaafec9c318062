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
        return try metadata.withLock { try directoryInode(ino).directory!.nextCookie }
    }

    /// Entries after `cookie` (0: from the start, "." and ".." first) and below `end`, in cookie
    /// order, until `emit` returns false.
    public func readdir(_ ino: InodeNumber, after cookie: UInt64, before end: UInt64 = .max, plus: Bool,
                        _ emit: (DirectoryEntry, FileAttributes?) -> Bool) throws {
        try journal.shutdown.check()
        readAheadOfListing(ino, after: max(cookie, 2), before: end)
        return try metadata.withLock {
            let directory = try directoryInode(ino)
            if cookie < 1 {
                let entry = DirectoryEntry(name: [0x2E], ino: ino, type: .directory, nextCookie: 1)
                guard emit(entry, plus ? directory.attributes(blockSize: blockSize) : nil) else { return }
            }
            if cookie < 2 {
                let parent = metadata.inodeIfPresent(directory.parent) ?? directory
                let entry = DirectoryEntry(name: [0x2E, 0x2E], ino: parent.ino, type: .directory, nextCookie: 2)
                guard emit(entry, plus ? parent.attributes(blockSize: blockSize) : nil) else { return }
            }
            try metadata.forEachEntry(of: directory, after: max(cookie, 2), before: end) { name, entry in
                let child = plus ? metadata.inodeIfPresent(entry.ino) : nil
                let accepted = emit(DirectoryEntry(name: name, ino: entry.ino, type: entry.type, nextCookie: entry.cookie),
                                    child?.attributes(blockSize: blockSize))
                if accepted, let child { child.lookupCount += 1 }
                return accepted
            }
        }
    }
}
