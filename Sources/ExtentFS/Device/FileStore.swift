import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// An image in a regular file: pread/pwrite on its descriptor, fdatasync to flush; mkfs sets its
/// size (a new image is created sparse).
final class FileStore: StoreBackend, @unchecked Sendable {
    let path: String
    private let io: DescriptorIO
    /// File data past the host's page cache when it allows (DirectIO).
    let direct: DirectIO?
    /// Changed only by mkfs, before the store is shared between threads.
    private(set) var size: UInt64
    var isResizable: Bool { true }

    /// Takes over `descriptor`, an open regular file of `size` bytes.
    init(path: String, descriptor: FileDescriptor, size: UInt64) {
        self.path = path
        io = DescriptorIO(path: path, descriptor: descriptor)
        direct = DirectIO(path: path, openedLike: descriptor)
        self.size = size
    }

    deinit { try? io.descriptor.close() }

    func setSize(_ newSize: UInt64) throws {
        if ftruncate(io.descriptor.rawValue, off_t(newSize)) != 0 {
            throw ExtentFSError("cannot resize \(path): \(Errno(rawValue: Glibc.errno))")
        }
        size = newSize
    }

    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: UInt64) throws {
        try io.read(into: buffer, count: count, at: offset)
    }
    func write(from buffer: UnsafeRawPointer, count: Int, at offset: UInt64) throws {
        try io.write(from: buffer, count: count, at: offset)
    }
    func read(vectors: [iovec], at offset: UInt64) throws {
        if try direct?.read(vectors: vectors, at: offset) == true { return }
        try io.read(vectors: vectors, at: offset)
    }
    func write(vectors: [iovec], at offset: UInt64) throws {
        if try direct?.write(vectors: vectors, at: offset) == true { return }
        try io.write(vectors: vectors, at: offset)
    }
    func flush() throws { try io.flush() }
    func prefetch(_ ranges: [(offset: UInt64, count: Int)]) { io.prefetch(ranges) }
    func lock(_ mode: BackingStore.LockMode) throws { try io.lock(mode) }
    func unlock() { io.unlock() }
}
