import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// An image on an export of an NBD server (nbdkit, qemu-nbd, and through them files, memory,
/// Ceph, S3 ...), reached through libnbd with no kernel module. Reads and writes are cut into
/// commands that are all in flight at once (NBDTransfer) on one connection (NBDConnection),
/// writes return before the server has answered (NBDWriteBehind), and sequential reads are
/// read ahead (NBDReadahead);
/// a flush is NBD_CMD_FLUSH, which covers every write the server has acknowledged, so the
/// journal's promises hold as on a disk.
///
/// A server that cannot flush is refused for writing: a write it acknowledges might be in its
/// cache only, and a commit would promise what a power cut takes back. Failures are EIO (ENOSPC
/// when the server says so); a failed write fails every later write and flush; a lost or
/// stalled connection fails every later call, and only a new mount connects again
/// (StoreOptions.nbdTimeout bounds every wait).
///
/// A server may name a smallest unit for its commands (qemu-nbd over a 4 KiB-sector disk,
/// nbdkit's blocksize-policy filter), and libnbd refuses anything finer; the engine reads and
/// writes pieces smaller than a block (a superblock's sector, the log's header). Those go
/// through whole units: a read is widened, a write reads the units it covers in part, lays
/// its bytes over them and writes them whole, one such write at a time (`unitLock`), so two
/// writes into neighbouring bytes of one unit cannot undo each other.
final class NBDStore: StoreBackend, @unchecked Sendable {
    /// How much one command carries: large enough that the protocol's cost per command is small,
    /// small enough that a large read or write is several commands in flight.
    static let pieceBytes = 512 << 10

    let path: String
    let size: UInt64
    var isResizable: Bool { false }
    private let connection: NBDConnection
    private let writeBehind: NBDWriteBehind
    private let readahead: NBDReadahead
    private let buffers: NBDBufferPool
    private let pieceBytes: Int
    /// The server's smallest unit (1: none).
    private let unitBytes: Int
    var smallestUnitBytes: Int { unitBytes }
    /// Held across a partial unit's read, modify and write.
    private let unitLock = Mutex()
    private let lockMutex = Mutex()
    private var lockFile: FileDescriptor?

    init(uri: String, writable: Bool, timeout: Double) throws {
        path = uri
        connection = try NBDConnection(uri: uri, timeout: timeout)
        if writable && connection.isReadOnly {
            connection.close()
            throw ExtentFSError("\(uri) is a read-only export: mount it with -o ro", errno: .readOnlyFileSystem)
        }
        if writable && !connection.canFlush {
            connection.close()
            throw ExtentFSError("\(uri): the NBD server cannot flush (no NBD_CMD_FLUSH), so nothing written to it could be made durable; mount it with -o ro, or serve it with flush support", errno: .notSupported)
        }
        unitBytes = connection.minimumBlockBytes
        // A tail shorter than the server's unit cannot be read or written on its own.
        size = connection.size / UInt64(unitBytes) * UInt64(unitBytes)
        pieceBytes = min(Self.pieceBytes, connection.maximumPayload)
        let chunkBytes = min(NBDReadahead.defaultChunkBytes, connection.maximumPayload)
        let bufferBytes = max(chunkBytes, pieceBytes)
        // Readahead keeps up to 10 chunks and write-behind 8 MiB of staged pieces: reused, not
        // allocated and faulted in again for every write.
        buffers = NBDBufferPool(bufferBytes: bufferBytes, maximumKept: 12 + NBDWriteBehind.maximumBytes / bufferBytes)
        writeBehind = NBDWriteBehind(connection: connection)
        readahead = NBDReadahead(connection: connection, writes: writeBehind, size: size,
                                 chunkBytes: chunkBytes, pool: buffers)
    }

    deinit {
        try? writeBehind.drain()
        readahead.discard()
        connection.close()
        try? lockFile?.close()
    }

    func setSize(_ newSize: UInt64) throws {}

    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: UInt64) throws {
        // Past the end of the export reads as zeros, as past the end of a short file.
        let inside = offset >= size ? 0 : Int(min(UInt64(count), size - offset))
        if inside < count { (buffer + inside).initializeMemory(as: UInt8.self, repeating: 0, count: count - inside) }
        guard inside > 0 else { return }
        try read(vectors: [iovec(iov_base: buffer, iov_len: inside)], at: offset)
    }

    func write(from buffer: UnsafeRawPointer, count: Int, at offset: UInt64) throws {
        try write(vectors: [iovec(iov_base: UnsafeMutableRawPointer(mutating: buffer), iov_len: count)], at: offset)
    }

    func read(vectors: [iovec], at offset: UInt64) throws {
        let count = vectors.reduce(0) { $0 + $1.iov_len }
        if let units = wholeUnits(offset, count) {
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: units.count, alignment: 4096)
            defer { buffer.deallocate() }
            try readUnits(vectors: [iovec(iov_base: buffer, iov_len: units.count)], at: units.offset, count: units.count)
            vectors.scatter(from: buffer + Int(offset - units.offset))
            return
        }
        try readUnits(vectors: vectors, at: offset, count: count)
    }

    /// `offset` and `count` are multiples of `unitBytes`.
    private func readUnits(vectors: [iovec], at offset: UInt64, count: Int) throws {
        try writeBehind.waitForWrites(overlapping: offset, count: count)
        if readahead.read(vectors: vectors, at: offset, count: count) { return }
        let transfer = NBDTransfer(.read, vectors: vectors, at: offset, pieceBytes: pieceBytes, pool: buffers)
        try connection.perform(transfer.commands, keepAlive: transfer.staging)
        transfer.scatter()
    }

    func write(vectors: [iovec], at offset: UInt64) throws {
        let count = vectors.reduce(0) { $0 + $1.iov_len }
        guard let units = wholeUnits(offset, count) else {
            try writeUnits(vectors: vectors, at: offset, count: count)
            return
        }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: units.count, alignment: 4096)
        defer { buffer.deallocate() }
        try unitLock.withLock {
            // Only the first and last units can be covered in part.
            let unit = unitBytes
            let lastUnit = units.offset + UInt64(units.count - unit)
            let headIsPartial = offset > units.offset
            if headIsPartial {
                try readUnits(vectors: [iovec(iov_base: buffer, iov_len: unit)], at: units.offset, count: unit)
            }
            let tailIsPartial = offset + UInt64(count) < units.offset + UInt64(units.count)
            if tailIsPartial && !(headIsPartial && lastUnit == units.offset) {
                try readUnits(vectors: [iovec(iov_base: buffer + (units.count - unit), iov_len: unit)], at: lastUnit, count: unit)
            }
            vectors.gather(into: buffer + Int(offset - units.offset))
            // The transfer stages every byte before this returns, so the buffer may go.
            try writeUnits(vectors: [iovec(iov_base: buffer, iov_len: units.count)], at: units.offset, count: units.count)
        }
    }

    /// `offset` and `count` are multiples of `unitBytes`.
    private func writeUnits(vectors: [iovec], at offset: UInt64, count: Int) throws {
        let transfer = NBDTransfer(.write, vectors: vectors, at: offset, pieceBytes: pieceBytes, pool: buffers, stageAll: true)
        try writeBehind.write(transfer, offset: offset, count: count) {
            readahead.invalidate(offset: offset, count: count)
        }
    }

    /// The whole units around a range that is not made of them; nil when it is.
    private func wholeUnits(_ offset: UInt64, _ count: Int) -> (offset: UInt64, count: Int)? {
        let unit = UInt64(unitBytes)
        guard unit > 1, count > 0, offset % unit != 0 || UInt64(count) % unit != 0 else { return nil }
        let start = offset / unit * unit
        let end = (offset + UInt64(count) + unit - 1) / unit * unit
        return (start, Int(end - start))
    }

    /// NBD_CMD_FLUSH covers the writes the server has answered: all of them, once drained.
    func flush() throws {
        try writeBehind.drain()
        try connection.perform([.flush])
    }

    func lock(_ mode: BackingStore.LockMode) throws {
        let file = try NBDLockFile.acquire(for: path, mode)
        lockMutex.withLock {
            try? lockFile?.close()
            lockFile = file
        }
    }

    func unlock() {
        lockMutex.withLock {
            try? lockFile?.close()
            lockFile = nil
        }
    }
}
