import ExtentFSCore
import SystemPackage

/// Directory entries wherever they are: in memory (a complete directory, or a partial one's
/// changes since it was read) or in the newest durable checkpoint's tree (Directory states the
/// invariant that makes the two agree). Caller holds `lock` exclusively unless said otherwise; a
/// tree that cannot be read is EIO (logged), as an inode that cannot be read is.
extension Metadata {
    /// The entry `name` names in `directory`, or nil. Caller holds `lock` exclusively, or is in a
    /// transaction shared on `directory`: the committed tree, read when memory does not know the
    /// name, is read under `tableLock` (its lock in shared transactions).
    func entry(in directory: Inode, named name: [UInt8]) throws -> Directory.Entry? {
        try entry(in: directory, named: name) { try tableLock.withLock { try storedEntry(in: directory, named: name) } }
    }

    /// `entry(in:named:)` for a caller holding `lock` (shared or exclusively) and `tableLock`,
    /// but not the directory's transactionLock: a change of the entries it holds may run
    /// meanwhile, which their read under the directory's fieldLock keeps whole.
    func entryUnderTableLock(in directory: Inode, named name: [UInt8]) throws -> Directory.Entry? {
        try entry(in: directory, named: name) { try storedEntry(in: directory, named: name) }
    }

    /// From the entries the directory holds (read under its fieldLock), else `stored()`.
    private func entry(in directory: Inode, named name: [UInt8],
                       orStored stored: () throws -> Directory.Entry?) throws -> Directory.Entry? {
        switch directory.fieldLock.withLock({ directory.directory?.heldLookup(name) }) {
        case nil: throw Errno.notDirectory
        case .found(let entry)?: return entry
        case .absent?: return nil
        case .unknown?: return try stored()
        }
    }

    /// The entry `name` names in `directory` as the newest durable checkpoint's tree holds it,
    /// without a look at the entries the directory holds in memory (none of its fields is read):
    /// for a lookup that has learnt under the directory's fieldLock that memory does not know the
    /// name, and holds no lock that keeps the directory's fields still (a hint: a change may come
    /// in between). Caller holds `tableLock`, with `lock` held shared or exclusively.
    func storedEntry(in directory: Inode, named name: [UInt8]) throws -> Directory.Entry? {
        try readingTree(of: directory) { try $0.lookupEntry(in: directory.ino, named: name) }
    }

    /// `directory`'s entries after `cookie` and below `end` as the committed tree holds them, in
    /// cookie order, until `body` returns false; as `storedEntry`, none of the directory's
    /// fields is read (for a read ahead of a listing). Caller holds `tableLock`, with `lock`
    /// held shared or exclusively.
    func forEachStoredEntry(of directory: Inode, after cookie: UInt64, before end: UInt64,
                            _ body: ([UInt8], Directory.Entry) -> Bool) throws {
        try readingTree(of: directory) { try $0.forEachEntry(of: directory.ino, after: cookie, before: end, body) }
    }

    /// `directory`'s entries with a cookie after `cookie` and below `end`, in cookie order, until
    /// `body` returns false.
    func forEachEntry(of directory: Inode, after cookie: UInt64, before end: UInt64,
                      _ body: ([UInt8], Directory.Entry) -> Bool) throws {
        guard let entries = directory.directory else { throw Errno.notDirectory }
        guard !entries.isComplete else {
            entries.forEach(after: cookie, before: end, body)
            return
        }
        // Merge by cookie: what memory holds, and what the tree holds that memory does not hide.
        var held: [([UInt8], Directory.Entry)] = []
        entries.forEach(after: cookie, before: end) { name, entry in
            held.append((name, entry))
            return true
        }
        var next = 0
        var stopped = false
        try readingTree(of: directory) { tree in
            try tree.forEachEntry(of: directory.ino, after: cookie, before: end) { name, entry in
                if entries.hidesStoredEntry(atCookie: entry.cookie) { return true }
                while next < held.count, held[next].1.cookie < entry.cookie {
                    guard body(held[next].0, held[next].1) else {
                        stopped = true
                        return false
                    }
                    next += 1
                }
                guard body(name, entry) else {
                    stopped = true
                    return false
                }
                return true
            }
        }
        guard !stopped else { return }
        while next < held.count, body(held[next].0, held[next].1) { next += 1 }
    }

    private func readingTree<T>(of directory: Inode, _ read: (CommittedTree) throws -> T) throws -> T {
        guard let committed else {
            logger.error("directory \(directory.ino) holds only its changed entries, but there is no checkpoint to read the rest from")
            throw Errno.ioError
        }
        do {
            return try read(committed)
        } catch let deferred as TreeReadDeferred {
            throw deferred
        } catch {
            logger.error("reading directory \(directory.ino)'s entries from the metadata tree failed: \(error)")
            throw Errno.ioError
        }
    }
}
