import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// pread/pwrite/fdatasync/flock on one open descriptor: what a regular file and a block device
/// share. Safe to use from many threads at once (positional I/O only).
struct DescriptorIO: Sendable {
    let path: String
    let descriptor: FileDescriptor

    /// Reads exactly `count` bytes; bytes past the end of a short file read as zeros.
    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: UInt64) throws {
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

    func prefetch(_ ranges: [(offset: UInt64, count: Int)]) {
        for range in ranges { _ = posix_fadvise(descriptor.rawValue, off_t(range.offset), off_t(range.count), POSIX_FADV_WILLNEED) }
    }

    func write(from buffer: UnsafeRawPointer, count: Int, at offset: UInt64) throws {
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

    func read(vectors: [iovec], at offset: UInt64) throws {
        try transfer(vectors, at: offset) { preadv(descriptor.rawValue, $0, $1, $2) }
    }

    func write(vectors: [iovec], at offset: UInt64) throws {
        try transfer(vectors, at: offset) { pwritev(descriptor.rawValue, $0, $1, $2) }
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

    func flush() throws {
        if fdatasync(descriptor.rawValue) != 0 { throw Errno(rawValue: Glibc.errno) }
    }

    /// flock, non-blocking: one image is never mounted twice, and fsck does not read a live image.
    func lock(_ mode: BackingStore.LockMode) throws {
        let operation = (mode == .exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB
        if flock(descriptor.rawValue, operation) != 0 {
            let error = Errno(rawValue: Glibc.errno)
            if error == .wouldBlock {
                throw ExtentFSError("\(path) is in use: it is mounted or being checked by another extentfs process", errno: .resourceBusy)
            }
            throw ExtentFSError("cannot lock \(path): \(error)", errno: error)
        }
    }

    func unlock() {
        _ = flock(descriptor.rawValue, LOCK_UN)
    }

    /// Opens `path` for the store; the caller closes the descriptor.
    static func open(_ path: String, writable: Bool) throws -> FileDescriptor {
        do {
            return try FileDescriptor.open(FilePath(path), writable ? .readWrite : .readOnly, options: [.closeOnExec])
        } catch let error as Errno {
            throw ExtentFSError("cannot open \(path): \(error)", errno: error)
        }
    }
}
