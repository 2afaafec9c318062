#if canImport(Glibc)
import Glibc
#endif

// Locks on the request path are pthread primitives: libfuse calls us on its own threads, and
// these must never suspend a Swift task or allocate.
//
// Lock order, outermost first (DESIGN.md); take them in this order only:
//   Inode.lock (i_rwsem)  ->  Inode.invalidateLock  ->  Page.lock  ->  Journal.commitLock  ->
//   Journal.checkpointLock  ->  Journal.reuseBarrier  ->  Metadata.directoryMoveLock  ->
//   Metadata.lock  ->  leaves
// commitLock serializes log writes and is held across their I/O (writeback may force the log with
// page locks held); checkpointLock is held across a checkpoint's I/O, never with commitLock taken
// after it.
//
// Metadata.lock is a reader-writer lock, held shared by transactions that change one inode's
// data (Metadata.sharedTransaction(on:) says what they may touch; each holds the inode's
// transactionLock, taken after Metadata.lock and before the leaves) and exclusively by every
// other transaction and whoever reads metadata several inodes share. Held exclusively it guards
// every piece of metadata; it is held for in-memory work and, one exception, across reads of the
// committed tree the caches do not hold (CommittedTree: node reads, no lock taken). Lookups and
// attribute reads defer those reads until the lock is let go, and operations that change names
// and readdir read ahead (FileSystem+TreeReads.swift), so the exception is left to what they
// cannot foresee.
//
// Leaves (nothing is taken while one is held): an inode's fieldLock (XFS's ILOCK: its persisted
// fields), InodeTable's lock (the table's map), Metadata.allocatorLock (free space and reference
// counts in a shared transaction; the one lock taken inside it is ChangeSet's noting lock, by
// the noting of file blocks and reference changes), ChangeSet's noting lock, LogRing's position
// lock; AddressSpace.indexLock and PageCache.lock. MetadataSpace's and the inode table's byte
// counts are atomics. Metadata.tableLock (new inodes' numbers, the table's cache bookkeeping and
// the committed tree, for names made in shared transactions and for inodes read back under
// Metadata.lock held shared) is taken inside a shared hold of Metadata.lock (after the inode's
// transactionLock, in a transaction), and holds only the committed tree's device reads and the
// leaves (the table's map, ChangeSet's noting, a fieldLock) inside it.
// Issue 9, requirement 4, so far: a fieldLock and the table's lock are taken with Metadata.lock
// held (a change) or alone (a request that only reads one cached inode: FileSystem.inode,
// `readingFields`, a read's size and block map, SEEK_DATA, a lookup answered in memory, open,
// opendir, release, forget, the flags, the birth time), which then waits for no transaction;
// statfs holds Metadata.lock shared with the allocator's and the table's locks, FIEMAP is a
// shared transaction on its file, a FORGET of an
// inode let go shared with the table's, and fsync reads what it forces up to in a transaction
// shared on its inode; writes, writebacks, setattrs, xattr
// changes, truncates and every fallocate mode (preallocation, punch, zero, collapse, insert,
// unshare) of different files run their transactions together, and so do names made (create,
// mknod, mkdir, symlink) in different directories, each shared on its directory, and names
// removed (unlink, rmdir) or linked, shared on the directory and the inode named, and renames
// (whiteouts too), shared on both directories and the inodes both names are for (a
// directory's to another parent with Metadata.directoryMoveLock held across it), and clones and
// dedupes, shared on both files (their counts raised under the allocator's lock); requests that
// read inodes back from the tree, or look names up there, hold Metadata.lock shared with
// tableLock, and a listing (readdir) with the directory's transactionLock before it. No thread
// holds two fieldLocks: a change holds one for the change of one field, a reader one for its
// reads. Two inodes: the lower inode number first.

public final class Mutex: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    public init() { pthread_mutex_init(mutex, nil) }
    /// `checkingOwner`: in debug builds (the tests), taking the lock again on the thread that
    /// holds it, or letting go of it from another, traps instead of hanging or corrupting it.
    init(checkingOwner: Bool) {
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        #if DEBUG
        if checkingOwner { pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ERRORCHECK)) }
        #endif
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
    }
    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }
    public func lock() {
        let result = pthread_mutex_lock(mutex)
        assert(result == 0, "pthread_mutex_lock: \(result) (EDEADLK: taken again by its holder)")
    }
    public func tryLock() -> Bool { pthread_mutex_trylock(mutex) == 0 }
    public func unlock() {
        let result = pthread_mutex_unlock(mutex)
        assert(result == 0, "pthread_mutex_unlock: \(result) (EPERM: not held by this thread)")
    }

    @inline(__always)
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    fileprivate var raw: UnsafeMutablePointer<pthread_mutex_t> { mutex }
}

/// A condition variable bound to one Mutex.
public final class Condition: @unchecked Sendable {
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    public let mutex: Mutex

    public init(_ mutex: Mutex) {
        self.mutex = mutex
        pthread_cond_init(cond, nil)
    }
    deinit {
        pthread_cond_destroy(cond)
        cond.deallocate()
    }
    /// Caller holds `mutex`.
    public func wait() { pthread_cond_wait(cond, mutex.raw) }
    /// Caller holds `mutex`. Returns false on timeout.
    @discardableResult
    public func wait(seconds: Double) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let total = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9 + seconds
        var deadline = timespec()
        deadline.tv_sec = Int(total)
        deadline.tv_nsec = Int((total - Double(Int(total))) * 1e9)
        return pthread_cond_timedwait(cond, mutex.raw, &deadline) == 0
    }
    public func signal() { pthread_cond_signal(cond) }
    public func broadcast() { pthread_cond_broadcast(cond) }
}

/// A reader-writer lock (the shape of the kernel's rw_semaphore). Writer-preferring so that a
/// stream of readers cannot starve a hole punch waiting for the invalidate_lock.
public final class ReadWriteLock: @unchecked Sendable {
    private let rwlock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)

    public init() {
        var attr = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attr)
        pthread_rwlockattr_setkind_np(&attr, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(rwlock, &attr)
        pthread_rwlockattr_destroy(&attr)
    }
    deinit {
        pthread_rwlock_destroy(rwlock)
        rwlock.deallocate()
    }
    public func lockShared() { pthread_rwlock_rdlock(rwlock) }
    public func lockExclusive() { pthread_rwlock_wrlock(rwlock) }
    public func tryLockShared() -> Bool { pthread_rwlock_tryrdlock(rwlock) == 0 }
    public func unlock() { pthread_rwlock_unlock(rwlock) }

    @inline(__always)
    public func withShared<T>(_ body: () throws -> T) rethrows -> T {
        lockShared()
        defer { unlock() }
        return try body()
    }
    @inline(__always)
    public func withExclusive<T>(_ body: () throws -> T) rethrows -> T {
        lockExclusive()
        defer { unlock() }
        return try body()
    }
}
