#if canImport(Glibc)
import Glibc
#endif

/// Where a backing store's bytes live: a regular file (FileStore), a block device
/// (BlockDeviceStore) or an export of an NBD server (NBDStore). BackingStore wraps one and adds
/// what every kind shares (the test-only interceptor, the count of unflushed writes), so the
/// engine never knows which it has.
///
/// Every method may be called from many threads at once. A write returns once the device has
/// taken the bytes (as pwrite does into the host's page cache), not once they are stable; a read
/// sees every write that returned before it began; `flush` returns once every write that
/// returned before it began is on stable storage. A failure throws `Errno` or an
/// `ExtentFSError` whose errno is EIO (or ENOSPC when the device is out of space); a write that
/// fails after it returned fails a later write or flush instead (NBDWriteBehind).
protocol StoreBackend: AnyObject, Sendable {
    /// The file, device or URI the user named: for messages.
    var path: String { get }
    var size: UInt64 { get }
    /// Only a regular file grows or shrinks to the size mkfs asks for.
    var isResizable: Bool { get }
    /// The smallest unit the device itself moves (an NBD server's minimum block size); finer
    /// transfers still work, as read-modify-write. 1 for files and block devices, whose kernel
    /// does that for buffered I/O.
    var smallestUnitBytes: Int { get }
    func setSize(_ newSize: UInt64) throws

    /// Reads exactly `count` bytes; bytes past the end read as zeros.
    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: UInt64) throws
    func write(from buffer: UnsafeRawPointer, count: Int, at offset: UInt64) throws
    /// Scattered read into pieces that are contiguous on the device.
    func read(vectors: [iovec], at offset: UInt64) throws
    /// Gathered write of pieces that are contiguous on the device.
    func write(vectors: [iovec], at offset: UInt64) throws
    func flush() throws
    /// A hint that these ranges will be read soon (posix_fadvise WILLNEED where there is a
    /// descriptor): the reads start now, in parallel, and a later read finds them done.
    func prefetch(_ ranges: [(offset: UInt64, count: Int)])

    /// Non-blocking: throws EBUSY ("in use") when another extentfs process holds the image.
    func lock(_ mode: BackingStore.LockMode) throws
    func unlock()
}

extension StoreBackend {
    func prefetch(_ ranges: [(offset: UInt64, count: Int)]) {}
    var smallestUnitBytes: Int { 1 }
}
