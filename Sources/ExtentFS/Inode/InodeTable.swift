import ExtentFSCore

/// The inode table's map from number to inode in memory, behind a lock of its own (issue 9,
/// requirement 4): a request finds an inode the table holds without Metadata.lock
/// (`FileSystem.inode`), so reading one cached inode waits for no transaction.
///
/// Invariants:
/// - Changed only with Metadata.lock held too (a member joins or leaves in a transaction, or
///   in the inode cache's sweep, InodeCache.swift): a caller holding Metadata.lock exclusively
///   sees the table stable between its calls, as it did when Metadata.lock alone guarded it. In
///   shared holds inodes join (a name made, FileSystem+Names.swift; an inode read back, under
///   Metadata.tableLock, InodeCache.swift), and only dead ones leave (no name, no kernel
///   reference, not open: FileSystem.reapIfDead, in a transaction shared on the inode), so a
///   shared holder sees every member it found live stay.
/// - `lock` is a leaf: nothing else is taken while it is held, and it is held only for the
///   dictionary's own work.
/// - An inode the sweep lets go leaves the map before the sweep checks that the map held the only
///   reference to it, so a request that found it here keeps it in the table; one that comes after
///   finds no member and reads it again under Metadata.lock.
final class InodeTable: @unchecked Sendable {
    private let lock = Mutex()
    private var members: [InodeNumber: Inode] = [:]

    subscript(ino: InodeNumber) -> Inode? {
        get { lock.withLock { members[ino] } }
        set { lock.withLock { members[ino] = newValue } }
    }

    @discardableResult
    func removeValue(forKey ino: InodeNumber) -> Inode? {
        lock.withLock { members.removeValue(forKey: ino) }
    }

    var count: Int { lock.withLock { members.count } }
    /// The members now, in no order.
    var values: [Inode] { lock.withLock { Array(members.values) } }
    var keys: Set<InodeNumber> { lock.withLock { Set(members.keys) } }
}
