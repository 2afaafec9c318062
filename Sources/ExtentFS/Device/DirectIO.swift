import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// File data moved between the page cache and the device past the host's page cache (O_DIRECT
/// on a second descriptor of the image file or block device): page fills and writeback runs of
/// `minimumBytes` or more.
///
/// Why: the page cache already holds what extentfs serves, and the kernel's FUSE cache holds it
/// again above us (keep_cache), so buffered I/O on the image kept a third copy in the host's
/// cache and cost a copy into or out of it: on reads that copy was most of a cold sequential
/// read's time once page memory was reused; on writes the host then wrote it back with its own
/// threads on the same cores (docs/PERFORMANCE.md). A VM's disk image opened with cache=none
/// does the same. Metadata (tree nodes, the log, superblocks) stays buffered: its reads are
/// small and scattered, the host's readahead brings neighbouring tree nodes in, and a node
/// written is often read back soon. Short transfers (random 4 KiB reads and writes) stay
/// buffered too: a direct write would wait for the device, where the host gathers neighbours
/// into larger writes before fdatasync; and a direct read holds the host inode's lock shared for
/// its whole trip to the disk (ext4's direct reads), so a buffered write of the image, which
/// takes it exclusively, waits behind every such read in flight: small overwrites written
/// through to the image (FileSystem+WriteThrough.swift) took a third longer in a mix of random
/// reads and writes, while buffered and direct 4 KiB cold reads measured alike.
///
/// Coherence: Linux writes back and waits for the host's dirty pages of a range before a
/// direct read or write of it, and drops its cached pages of a range a direct write covered
/// (kiocb_write_and_wait, kiocb_invalidate_pages), so buffered and direct transfers of one
/// range keep the order in which they returned, as StoreBackend promises. Durability: a direct
/// write has returned once the device took it, like a buffered one into the host's cache;
/// fdatasync of the image flushes the device's cache for both.
///
/// A transfer whose offset, memory or lengths are not multiples of `alignment` (pieces of
/// blocks smaller than a page) goes buffered. A filesystem that refuses O_DIRECT at open gives
/// no DirectIO; one that refuses a transfer (EINVAL, before anything moved) switches direct
/// I/O off for the store's life, and the caller repeats the transfer buffered.
final class DirectIO: @unchecked Sendable {
    /// What the host's direct I/O asks of offset, memory and length on every device we know of
    /// (logical blocks of 512 bytes or 4 KiB): page memory and page-sized runs meet it.
    static let alignment = 4096
    /// Transfers at least this long go direct.
    static let minimumBytes = 64 << 10

    private let io: DescriptorIO
    let isWritable: Bool
    private let mutex = Mutex()
    /// Guarded by `mutex`.
    private var refused = false

    /// Nil when the file or device cannot be opened for direct I/O (some filesystems refuse it).
    /// Opened for writing when the store's own `descriptor` is, so a read-only image still
    /// reads direct.
    init?(path: String, openedLike descriptor: FileDescriptor) {
        let writable = fcntl(descriptor.rawValue, F_GETFL) & O_ACCMODE == O_RDWR
        let access = writable ? O_RDWR : O_RDONLY
        let descriptor = Glibc.open(path, access | HiddenOpenFlags.direct | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        io = DescriptorIO(path: path, descriptor: FileDescriptor(rawValue: descriptor))
        isWritable = writable
    }

    deinit { try? io.descriptor.close() }

    var isActive: Bool { mutex.withLock { !refused } }

    /// Reads `vectors` directly and returns true, or returns false when the caller must read
    /// them through the buffered descriptor (short, not aligned, or direct I/O refused).
    func read(vectors: [iovec], at offset: UInt64) throws -> Bool {
        guard isLongAndAligned(vectors, at: offset) else { return false }
        return try transfer { try io.read(vectors: vectors, at: offset) }
    }

    /// Writes `vectors` directly and returns true, or returns false when the caller must write
    /// them through the buffered descriptor (short, not aligned, or direct I/O refused).
    func write(vectors: [iovec], at offset: UInt64) throws -> Bool {
        guard isWritable, isLongAndAligned(vectors, at: offset) else { return false }
        return try transfer { try io.write(vectors: vectors, at: offset) }
    }

    private func isLongAndAligned(_ vectors: [iovec], at offset: UInt64) -> Bool {
        let mask = DirectIO.alignment - 1
        return vectors.reduce(0, { $0 + $1.iov_len }) >= DirectIO.minimumBytes
            && Int(truncatingIfNeeded: offset) & mask == 0
            && vectors.allSatisfy { Int(bitPattern: $0.iov_base) & mask == 0 && $0.iov_len & mask == 0 }
    }

    /// Every piece is aligned, so a short transfer ends on an aligned boundary and the
    /// resumption stays direct; EINVAL comes before any byte moved.
    private func transfer(_ body: () throws -> Void) throws -> Bool {
        guard isActive else { return false }
        do {
            try body()
            return true
        } catch Errno.invalidArgument {
            mutex.withLock { refused = true }
            return false
        }
    }
}
