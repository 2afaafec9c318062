import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// File data read into the page cache straight from the device, past the host's page cache
/// (O_DIRECT on a second, read-only descriptor of the image file or block device).
///
/// Why: the page cache already holds what extentfs serves, and the kernel's FUSE cache holds it
/// again above us (keep_cache), so a buffered read of the image kept a third copy in the host's
/// cache and cost a copy out of it: that copy was most of a cold sequential read's time once
/// page memory was reused (docs/PERFORMANCE.md). A VM's disk image opened with cache=none does
/// the same. Metadata (tree nodes, the log, superblocks) stays buffered: its reads are small and
/// scattered, and the host's readahead brings neighbouring tree nodes in.
///
/// Coherence: every write still goes through the buffered descriptor. Linux writes back and waits
/// for dirty host pages of a range before a direct read of it (generic_file_read_iter's
/// kiocb_write_and_wait), so a direct read sees every write that returned before it began, as
/// StoreBackend promises.
///
/// A read whose offset, memory or lengths are not multiples of `alignment` (pieces of blocks
/// smaller than a page) goes buffered. A filesystem that refuses O_DIRECT at open gives no
/// reader; one that refuses a read (EINVAL) switches direct reads off for the store's life.
final class DirectReads: @unchecked Sendable {
    /// What the host's direct I/O asks of offset, memory and length on every device we know of
    /// (logical blocks of 512 bytes or 4 KiB): page memory and page-sized runs meet it.
    static let alignment = 4096

    private let io: DescriptorIO
    private let mutex = Mutex()
    /// Guarded by `mutex`.
    private var refused = false

    /// Nil when the file or device cannot be opened for direct I/O (some filesystems refuse it).
    init?(path: String) {
        let descriptor = Glibc.open(path, O_RDONLY | HiddenOpenFlags.direct | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        io = DescriptorIO(path: path, descriptor: FileDescriptor(rawValue: descriptor))
    }

    deinit { try? io.descriptor.close() }

    var isActive: Bool { mutex.withLock { !refused } }

    /// Reads `vectors` directly and returns true, or returns false when the caller must read
    /// them through the buffered descriptor (not aligned, or direct reads refused).
    func read(vectors: [iovec], at offset: UInt64) throws -> Bool {
        let mask = DirectReads.alignment - 1
        guard Int(truncatingIfNeeded: offset) & mask == 0,
              vectors.allSatisfy({ Int(bitPattern: $0.iov_base) & mask == 0 && $0.iov_len & mask == 0 }),
              isActive else { return false }
        do {
            try io.read(vectors: vectors, at: offset)
            return true
        } catch Errno.invalidArgument {
            mutex.withLock { refused = true }
            return false
        }
    }
}
