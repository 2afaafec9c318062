import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// An image on a block device (a disk, a partition, a loop, rbd or nbd device the kernel
/// provides): pread/pwrite on its descriptor, fdatasync to flush (the kernel sends the device a
/// cache flush). Its size is the device's; mkfs may use less of it, never more.
final class BlockDeviceStore: StoreBackend, @unchecked Sendable {
    let path: String
    private let io: DescriptorIO
    /// File data past the host's page cache when it allows (DirectIO).
    let direct: DirectIO?
    let size: UInt64
    var isResizable: Bool { false }

    /// Takes over `descriptor`, an open block device; reads its size.
    init(path: String, descriptor: FileDescriptor) throws {
        var bytes: UInt64 = 0
        // BLKGETSIZE64
        if ioctl(descriptor.rawValue, 0x8008_1272, &bytes) != 0 {
            try? descriptor.close()
            throw ExtentFSError("cannot read the size of block device \(path)")
        }
        self.path = path
        io = DescriptorIO(path: path, descriptor: descriptor)
        direct = DirectIO(path: path, openedLike: descriptor)
        size = bytes
    }

    deinit { try? io.descriptor.close() }

    /// A device's size is not ours to change.
    func setSize(_ newSize: UInt64) throws {}

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
