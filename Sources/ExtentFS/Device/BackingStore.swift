import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The image file or block device that holds the whole filesystem. Thin typed wrapper over
/// pread/pwrite/fdatasync on one descriptor; safe to use from many threads at once.
public final class BackingStore: @unchecked Sendable {
    public let path: String
    public let descriptor: FileDescriptor
    public let isBlockDevice: Bool
    /// Opened for writing. A read-only mount opens the image writable when it can, so that a
    /// remount read-write needs no second descriptor (FileSystem+ReadOnly.swift).
    public let isWritable: Bool
    public private(set) var size: UInt64
    /// Test-only: sees every write and flush before it happens and may fail it (the crash-replay
    /// recorder and fault injection). Set before the store is shared between threads.
    var interceptor: (any BackingStoreInterceptor)?
    /// Writes issued, and how many of them the last completed flush covers.
    private let writeCounter = Mutex()
    private var writesIssued: UInt64 = 0
    private var writesFlushed: UInt64 = 0

    /// Whether a write may not be on stable storage yet.
    var hasUnflushedWrites: Bool { writeCounter.withLock { writesIssued > writesFlushed } }

    private func noteWrite() {
        writeCounter.withLock { writesIssued += 1 }
    }

    public enum LockMode { case exclusive, shared }

    public init(path: String, writable: Bool) throws {
        self.path = path
        isWritable = writable
        do {
            descriptor = try FileDescriptor.open(FilePath(path), writable ? .readWrite : .readOnly, options: [.closeOnExec])
        } catch let error as Errno {
            throw ExtentFSError("cannot open \(path): \(error)", errno: error)
        }
        var info = stat()
        guard fstat(descriptor.rawValue, &info) == 0 else {
            let error = Errno(rawValue: Glibc.errno)
            try? descriptor.close()
            throw ExtentFSError("cannot stat \(path): \(error)", errno: error)
        }
        let type = info.st_mode & S_IFMT
        isBlockDevice = type == S_IFBLK
        if isBlockDevice {
            var bytes: UInt64 = 0
            // BLKGETSIZE64
            if ioctl(descriptor.rawValue, 0x8008_1272, &bytes) != 0 {
                try? descriptor.close()
                throw ExtentFSError("cannot read the size of block device \(path)")
            }
            size = bytes
        } else if type == S_IFREG {
            size = UInt64(info.st_size)
        } else {
            try? descriptor.close()
            throw ExtentFSError("\(path) is neither a regular file nor a block device", errno: .invalidArgument)
        }
    }

    deinit { try? descriptor.close() }

    /// flock, non-blocking: one image is never mounted twice, and fsck does not read a live image.
    public func lock(_ mode: LockMode) throws {
        let operation = (mode == .exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB
        if flock(descriptor.rawValue, operation) != 0 {
            let error = Errno(rawValue: Glibc.errno)
            if error == .wouldBlock {
                throw ExtentFSError("\(path) is in use: it is mounted or being checked by another extentfs process", errno: .resourceBusy)
            }
            throw ExtentFSError("cannot lock \(path): \(error)", errno: error)
        }
    }

    public func unlock() {
        _ = flock(descriptor.rawValue, LOCK_UN)
    }

    public func setSize(_ newSize: UInt64) throws {
        guard !isBlockDevice else { return }
        if ftruncate(descriptor.rawValue, off_t(newSize)) != 0 {
            throw ExtentFSError("cannot resize \(path): \(Errno(rawValue: Glibc.errno))")
        }
        size = newSize
    }

    /// Reads exactly `count` bytes; bytes past the end of a short file read as zeros.
    public func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: UInt64) throws {
        var done = 0
        while done < count {
            let result = pread(descriptor.rawValue, buffer + done, count - done, off_t(offset) + off_t(done))
            if result < 0 {
                if Glibc.errno == EINTR { continue }
                throw Errno(rawValue: Glibc.errno)
            }
            if result == 0 {
                (buffer + done).initializeMemory(as: UInt8.self, repeating: 0, count: count - done)
                return
            }
            done += result
        }
    }

    public func write(from buffer: UnsafeRawPointer, count: Int, at offset: UInt64) throws {
        if let interceptor { try interceptor.willWrite(UnsafeRawBufferPointer(start: buffer, count: count), at: offset) }
        noteWrite()
        var done = 0
        while done < count {
            let result = pwrite(descriptor.rawValue, buffer + done, count - done, off_t(offset) + off_t(done))
            if result < 0 {
                if Glibc.errno == EINTR { continue }
                throw Errno(rawValue: Glibc.errno)
            }
            done += result
        }
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
        noteWrite()
        try transfer(vectors, at: offset) { pwritev(descriptor.rawValue, $0, $1, $2) }
    }

    /// Scattered read into page-sized (or smaller) pieces that are contiguous on disk.
    public func read(vectors: [iovec], at offset: UInt64) throws {
        try transfer(vectors, at: offset) { preadv(descriptor.rawValue, $0, $1, $2) }
    }

    /// Runs preadv or pwritev until every vector is done, resuming after short transfers.
    private func transfer(_ vectors: [iovec], at offset: UInt64,
                          _ call: (UnsafePointer<iovec>?, Int32, off_t) -> Int) throws {
        var total = 0
        for vector in vectors { total += vector.iov_len }
        var done = 0
        var vectors = vectors
        var first = 0
        while done < total {
            let result = vectors[first...].withUnsafeBufferPointer { pointer in
                call(pointer.baseAddress, Int32(min(pointer.count, 1024)), off_t(offset) + off_t(done))
            }
            if result < 0 {
                if Glibc.errno == EINTR { continue }
                throw Errno(rawValue: Glibc.errno)
            }
            if result == 0 { throw Errno.ioError }
            done += result
            var advance = result
            while advance > 0 && first < vectors.count {
                if advance >= vectors[first].iov_len {
                    advance -= vectors[first].iov_len
                    first += 1
                } else {
                    vectors[first].iov_base += advance
                    vectors[first].iov_len -= advance
                    advance = 0
                }
            }
        }
    }

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
        let covered = writeCounter.withLock { writesIssued }
        if fdatasync(descriptor.rawValue) != 0 { throw Errno(rawValue: Glibc.errno) }
        writeCounter.withLock { writesFlushed = max(writesFlushed, covered) }
    }
}

/// Test-only view of a backing store's writes and flushes, in the order they are issued. Throwing
/// fails the write or flush before it reaches the store (fault injection).
protocol BackingStoreInterceptor: AnyObject, Sendable {
    func willWrite(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws
    func willFlush() throws
}
