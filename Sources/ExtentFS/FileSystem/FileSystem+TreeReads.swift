import ExtentFSCore
import SystemPackage

/// Reads of the committed tree with no lock held (issue 9, step 5; lookup, getattr, open,
/// readlink, getxattr and listxattr): an operation that may need
/// nodes the cache does not hold runs under Metadata.lock held shared and the table's lock with
/// reads deferred; each node it would wait for is read after the locks are let go and handed to
/// its next run, so that one request waiting for the device does not hold up every other (a
/// cold lookup no longer stalls a cached getattr, and cold lookups of two processes read in
/// parallel), and no shared transaction (a write, a name made) waits for it or it for them.
///
/// Operations that change names (create, mknod, mkdir, symlink, link, unlink, rmdir, rename)
/// change things between their reads, and readdir emits entries into the reply as it reads, so
/// they cannot be run again; they read ahead instead (`readAheadOfChange`,
/// `readAheadOfListing`): what they will read is read the deferred way first, so that they find
/// it cached.
extension FileSystem {
    /// Runs of `body` before it gives up deferring: one per node a cold lookup may miss (the
    /// directory's image, internal nodes, the name's index leaf, the child's image) and more.
    static let maxDeferredRuns = 12

    /// `body` under Metadata.lock held shared and the table's lock, its committed-tree reads done
    /// outside both, so that it waits for no shared transaction (a write, a name made) and holds
    /// none up; under Metadata.lock held exclusively (and the table's lock) if it still wanted a
    /// node after `maxDeferredRuns` runs. `body` must be one that can be deferred
    /// (TreeReadDeferred says which): it reads back inodes with `metadata.inodeUnderTableLock`,
    /// looks names up with `metadata.entryUnderTableLock` and reads fields under their inode's
    /// fieldLock. Then, if what it read back took the inode table past its budget, inodes are
    /// let go.
    func readingTreeOutsideTheLock<T>(_ body: () throws -> T) throws -> T {
        defer { metadata.evictAfterSharedLoads() }
        if let result = try deferringTreeReads(body) { return result }
        return try metadata.withLock { try metadata.tableLock.withLock(body) }
    }

    /// `body`, which only reads, on inode `ino`'s persisted fields, under its fieldLock: no
    /// transaction holds it up, whether the table holds the inode or it is read back.
    func readingFields<T>(of ino: InodeNumber, _ body: (Inode) throws -> T) throws -> T {
        let inode = try self.inode(ino)
        return try inode.fieldLock.withLock { try body(inode) }
    }

    /// Directory `ino`, read back if the table does not hold it. Caller holds Metadata.lock
    /// (shared or exclusively) and the table's lock.
    func directoryUnderTableLock(_ ino: InodeNumber) throws -> Inode {
        let inode = try metadata.inodeUnderTableLock(ino)
        guard inode.fieldLock.withLock({ inode.type }) == .directory else { throw Errno.notDirectory }
        return inode
    }

    /// Before a transaction that looks up `names` (each a name in a directory) and `inodes`: reads
    /// what those lookups need (the directories' images, the names' index leaves, the inodes they
    /// name) with no lock held, into the committed tree's cache and the inode table. A hint: what
    /// is let go again before the transaction runs it reads under the lock as before, and every
    /// error (no such name, not a directory, a failed read) is left to the transaction to meet.
    func readAheadOfChange(_ names: [(directory: InodeNumber, name: [UInt8])], inodes: [InodeNumber] = []) {
        // Deferrable: it changes nothing but the inode table, which a run again finds done.
        _ = try? deferringTreeReads { () throws -> Bool in
            for ino in inodes { _ = try metadata.inodeUnderTableLock(ino) }
            for (directory, name) in names where !Directory.isDotOrDotDot(name) {
                if let entry = try metadata.entryUnderTableLock(in: directoryUnderTableLock(directory), named: name) {
                    _ = try metadata.inodeUnderTableLock(entry.ino)
                }
            }
            return true
        }
        metadata.evictAfterSharedLoads()
    }

    /// Before a transaction shared on `directory` that makes, removes or links `name`
    /// (FileSystem+Names.swift): the entry `name` names, from the directory's held entries, or,
    /// when it does not know (it holds only some of its entries), from the tree, its index leaf
    /// read with no lock held and the lookup run under Metadata.lock shared and the table's lock
    /// (the committed tree's in shared transactions), so that it waits for no shared transaction,
    /// and for no exclusive one longer than it takes to get the lock. A hint, as
    /// `readAheadOfChange`: nil when there is none or it could not be read; the transaction
    /// looks again.
    @discardableResult
    func entryReadAhead(_ name: [UInt8], in directory: Inode) -> Directory.Entry? {
        let read = try? deferringTreeReads { try metadata.entryUnderTableLock(in: directory, named: name) }
        return read ?? nil
    }

    /// How far ahead of its cookie a readdir reads the tree with no lock held: the kernel asks for
    /// a page of entries per READDIR or READDIRPLUS (a few dozen names), so this covers a reply
    /// and the next few, the leaves they share read once.
    static let readdirReadAheadEntries = 128

    /// Before a readdir from `cookie`: reads the leaves of a directory read from the tree that hold
    /// the entries it will list, with no lock held (the listing itself emits under the lock, so it
    /// cannot be run again; as `readAheadOfChange`, a hint). The listing lets go of what this
    /// reads back, if it must.
    func readAheadOfListing(_ ino: InodeNumber, after cookie: UInt64, before end: UInt64) {
        // Deferrable: it changes nothing but the table.
        _ = try? deferringTreeReads { () throws -> Bool in
            let directory = try directoryUnderTableLock(ino)
            // A directory that holds all its entries lists them from memory.
            guard directory.fieldLock.withLock({ directory.directory?.isComplete }) == false else { return true }
            var left = Self.readdirReadAheadEntries
            try metadata.forEachStoredEntry(of: directory, after: cookie, before: end) { _, _ in
                left -= 1
                return left > 0
            }
            return true
        }
    }

    /// `body` under Metadata.lock held shared and the table's lock (which guards the committed
    /// tree and inodes read back in a shared hold), the committed tree's reads deferred and done
    /// outside both; nil when it still wanted a node after `maxDeferredRuns` runs (or a read
    /// failed), for the caller to decide. `body` reads inodes back with
    /// `metadata.inodeUnderTableLock` only, and what it reads of them under their fieldLocks.
    private func deferringTreeReads<T>(_ body: () throws -> T) throws -> T? {
        var staged: (TreeReadDeferred, [UInt8])?
        for _ in 0..<Self.maxDeferredRuns {
            do {
                return try metadata.lock.withShared {
                    try metadata.tableLock.withLock {
                        guard let committed = metadata.committed else { return try body() }
                        if let (deferred, bytes) = staged { committed.stage(bytes, for: deferred) }
                        return try committed.deferringReads(body)
                    }
                }
            } catch let deferred as TreeReadDeferred {
                // A read error here is the next run's to meet (and report) under the lock.
                guard let bytes = try? store.read(deferred.byteCount, at: deferred.byteOffset) else { return nil }
                staged = (deferred, bytes)
            }
        }
        return nil
    }
}
