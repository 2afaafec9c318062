import ExtentFSCore

/// Reads of the committed tree with no lock held (issue 9, step 5; lookup, getattr, open,
/// readlink, getxattr and listxattr): an operation that may need
/// nodes the cache does not hold runs under Metadata.lock with reads deferred; each node it
/// would wait for is read after the lock is let go and handed to its next run, so that one
/// request waiting for the device does not hold up every other (a cold lookup no longer stalls
/// a cached getattr, and cold lookups of two processes read in parallel).
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

    /// `body` under Metadata.lock, its committed-tree reads done outside it. `body` must be one
    /// that can be deferred (TreeReadDeferred says which).
    func readingTreeOutsideTheLock<T>(_ body: () throws -> T) throws -> T {
        if let result = try deferringTreeReads(body) { return result }
        return try metadata.withLock(body)
    }

    /// `body`, which only reads, on inode `ino`'s persisted fields: under the inode's fieldLock
    /// alone when the table holds it, so that no transaction holds it up; else under Metadata.lock
    /// with the tree's reads done outside it.
    func readingFields<T>(of ino: InodeNumber, _ body: (Inode) throws -> T) throws -> T {
        if let inode = metadata.inodes[ino] { return try inode.fieldLock.withLock { try body(inode) } }
        return try readingTreeOutsideTheLock { try body(metadata.inode(ino)) }
    }

    /// Before a transaction that looks up `names` (each a name in a directory) and `inodes`: reads
    /// what those lookups need (the directories' images, the names' index leaves, the inodes they
    /// name) with no lock held, into the committed tree's cache and the inode table. A hint: what
    /// is let go again before the transaction runs it reads under the lock as before, and every
    /// error (no such name, not a directory, a failed read) is left to the transaction to meet.
    func readAheadOfChange(_ names: [(directory: InodeNumber, name: [UInt8])], inodes: [InodeNumber] = []) {
        // Deferrable: it changes nothing but the inode table, which a run again finds done.
        _ = try? deferringTreeReads { () throws -> Bool in
            for ino in inodes { _ = try metadata.inode(ino) }
            for (directory, name) in names where !Directory.isDotOrDotDot(name) {
                if let entry = try metadata.entry(in: directoryInode(directory), named: name) {
                    _ = try metadata.inode(entry.ino)
                }
            }
            return true
        }
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
        switch directory.fieldLock.withLock({ directory.directory?.heldLookup(name) }) {
        case .found(let entry)?: return entry
        case .absent?, nil: return nil
        case .unknown?:
            // Not the directory's fields: a change holding its transactionLock may be under way.
            let read = try? deferringTreeReads(shared: true) { try metadata.storedEntry(in: directory, named: name) }
            return read ?? nil
        }
    }

    /// How far ahead of its cookie a readdir reads the tree with no lock held: the kernel asks for
    /// a page of entries per READDIR or READDIRPLUS (a few dozen names), so this covers a reply
    /// and the next few, the leaves they share read once.
    static let readdirReadAheadEntries = 128

    /// Before a readdir from `cookie`: reads the leaves of a directory read from the tree that hold
    /// the entries it will list, with no lock held (the listing itself emits under the lock, so it
    /// cannot be run again; as `readAheadOfChange`, a hint).
    func readAheadOfListing(_ ino: InodeNumber, after cookie: UInt64, before end: UInt64) {
        // Deferrable: it only reads.
        _ = try? deferringTreeReads { () throws -> Bool in
            let directory = try directoryInode(ino)
            // A directory that holds all its entries lists them from memory.
            guard directory.directory?.isComplete == false else { return true }
            var left = Self.readdirReadAheadEntries
            try metadata.forEachEntry(of: directory, after: cookie, before: end) { _, _ in
                left -= 1
                return left > 0
            }
            return true
        }
    }

    /// `body` under Metadata.lock with the committed tree's reads deferred and done outside it;
    /// nil when it still wanted a node after `maxDeferredRuns` runs (or a read failed), for the
    /// caller to decide. `shared`: the lock held shared, with the table's lock (which guards the
    /// committed tree in shared transactions); `body` then only reads the tree (no inode loads).
    private func deferringTreeReads<T>(shared: Bool = false, _ body: () throws -> T) throws -> T? {
        var staged: (TreeReadDeferred, [UInt8])?
        for _ in 0..<Self.maxDeferredRuns {
            do {
                return try holdingForTreeReads(shared: shared) {
                    guard let committed = metadata.committed else { return try body() }
                    if let (deferred, bytes) = staged { committed.stage(bytes, for: deferred) }
                    return try committed.deferringReads(body)
                }
            } catch let deferred as TreeReadDeferred {
                // A read error here is the next run's to meet (and report) under the lock.
                guard let bytes = try? store.read(deferred.byteCount, at: deferred.byteOffset) else { return nil }
                staged = (deferred, bytes)
            }
        }
        return nil
    }

    private func holdingForTreeReads<T>(shared: Bool, _ body: () throws -> T) rethrows -> T {
        guard shared else { return try metadata.withLock(body) }
        return try metadata.lock.withShared { try metadata.tableLock.withLock(body) }
    }
}
