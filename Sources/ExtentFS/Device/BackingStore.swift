import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The image file, block device or NBD export that holds the whole filesystem: what the engine
/// reads, writes and flushes. The bytes go to a StoreBackend; this adds what does not depend on
/// where they go (the test-only interceptor, which writes a flush covers). Safe to use from many
/// threads at once.
public final class BackingStore: @unchecked Sendable {
    let backend: any StoreBackend
    /// Opened for writing. A read-only mount opens the image writable when it can, so that a
    /// remount read-write needs no second descriptor or connection (FileSystem+ReadOnly.swift).
    public let isWritable: Bool
    /// Test-only: sees every write and flush before it happens and may fail it (the crash-replay
    /// recorder and fault injection). Set before the store is shared between threads.
    var interceptor: (any BackingStoreInterceptor)?
    /// Which writes a flush covers: those that had returned when it began. A write still on
    /// its way then may reach stable storage after the flush (an NBD server answers a flush
    /// once the writes it has acknowledged are stable; fdatasync likewise), so it stays
    /// unflushed until the next one.
    private let writeCounter = Mutex()
    private var writesInFlight = 0
    private var writesFinished: UInt64 = 0
    private var writesFlushed: UInt64 = 0

    public enum LockMode { case exclusive, shared }

    init(backend: any StoreBackend, writable: Bool) {
        self.backend = backend
        isWritable = writable
    }

    /// Opens an image file, a block device, or an NBD export when `path` is an NBD URI
    /// (StoreLocation).
    public convenience init(path: String, writable: Bool, options: StoreOptions = StoreOptions()) throws {
        try self.init(backend: StoreLocation.openBackend(path, writable: writable, options: options), writable: writable)
    }

    /// The file, device or URI the user named.
    public var path: String { backend.path }
    public var size: UInt64 { backend.size }
    /// Whether mkfs may set the size (a regular file); a device or an export has its own.
    public var isResizable: Bool { backend.isResizable }
    public var smallestUnitBytes: Int { backend.smallestUnitBytes }

    /// Whether a write may not be on stable storage yet.
    var hasUnflushedWrites: Bool { writeCounter.withLock { writesInFlight > 0 || writesFinished > writesFlushed } }

    /// Runs a write, counted as unflushed from its start; a failed one too (its bytes may be
    /// partly on the device).
    private func counting(_ write: () throws -> Void) rethrows {
        writeCounter.withLock { writesInFlight += 1 }
        defer {
            writeCounter.withLock {
                writesInFlight -= 1
                writesFinished += 1
            }
        }
        try write()
    }

    /// Non-blocking: one image is never mounted twice, and fsck does not read a live image.
    public func lock(_ mode: LockMode) throws { try backend.lock(mode) }
    public func unlock() { backend.unlock() }

    public func setSize(_ newSize: UInt64) throws { try backend.setSize(newSize) }

    /// Reads exactly `count` bytes; bytes past the end of a short file read as zeros.
    public func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: UInt64) throws {
        interceptor?.willRead(count: count, at: offset)
        try backend.read(into: buffer, count: count, at: offset)
    }

    public func write(from buffer: UnsafeRawPointer, count: Int, at offset: UInt64) throws {
        if let interceptor { try interceptor.willWrite(UnsafeRawBufferPointer(start: buffer, count: count), at: offset) }
        try counting { try backend.write(from: buffer, count: count, at: offset) }
    }

    /// Gathered write of page-sized (or smaller) pieces that are contiguous on disk.
    public func write(vectors: [iovec], at offset: UInt64) throws {
        if let interceptor {
            var position = offset
            for vector in vectors {
                try interceptor.willWrite(UnsafeRawBufferPointer(start: vector.iov_base, count: vector.iov_len), at: position)
                position += UInt64(vector.iov_len)
            }
        }
        try counting { try backend.write(vectors: vectors, at: offset) }
    }

    /// Scattered read into page-sized (or smaller) pieces that are contiguous on disk.
    public func read(vectors: [iovec], at offset: UInt64) throws {
        interceptor?.willRead(count: vectors.reduce(0) { $0 + $1.iov_len }, at: offset)
        try backend.read(vectors: vectors, at: offset)
    }

    /// A hint that these ranges will be read soon (StoreBackend.prefetch).
    func prefetch(_ ranges: [(offset: UInt64, count: Int)]) { backend.prefetch(ranges) }

    public func read(_ count: Int, at offset: UInt64) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try read(into: $0.baseAddress!, count: count, at: offset) }
        return bytes
    }

    public func write(_ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { try write(from: $0.baseAddress!, count: $0.count, at: offset) }
    }

    public func flush() throws {
        if let interceptor { try interceptor.willFlush() }
        let covered = writeCounter.withLock { writesFinished }
        try backend.flush()
        writeCounter.withLock { writesFlushed = max(writesFlushed, covered) }
    }
}
