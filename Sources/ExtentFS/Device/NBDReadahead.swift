#if canImport(Glibc)
import Glibc
#endif

/// Readahead in front of an NBD export: what the host's page cache does for an image file. A
/// cold sequential read through a mount reaches the store as one read of a few hundred KiB at a
/// time, each waiting for the last; on a file the kernel has read ahead and answers from memory,
/// on NBD each would wait for a trip to the server. So once reads go sequentially, the next
/// chunks are asked for ahead of them, several in flight at once, and a read they cover is
/// answered from them.
///
/// Coherence: a write drops every chunk it overlaps once it counts as in flight, before it is
/// sent, and no chunk is asked for over a write in flight (the server could read it first), so
/// a read never sees what was there before a write that returned before it began. A chunk the
/// server failed is not used: the read goes to the server and gets its own answer.
final class NBDReadahead: @unchecked Sendable {
    static let defaultChunkBytes = 512 << 10
    /// At most this many chunks ahead of the stream (4 MiB), in flight or read.
    static let maximumChunks = 8
    /// Chunks already passed are kept a little (concurrent readers of one stream arrive out of
    /// order), then dropped.
    static let keepBehindBytes: UInt64 = 1 << 20

    /// One chunk's memory: owned by the chunk and by its completion, so it outlives a command
    /// still in flight when the chunk is dropped.
    private final class Buffer {
        let memory: UnsafeMutableRawPointer
        private let pool: NBDBufferPool
        init(_ pool: NBDBufferPool) {
            self.pool = pool
            memory = pool.take()
        }
        deinit { pool.give(memory) }
    }

    private struct Chunk {
        var offset: UInt64
        var length: Int
        var buffer: Buffer
        var completion: NBDCompletion
        var end: UInt64 { offset + UInt64(length) }
    }

    private let connection: NBDConnection
    private let writes: NBDWriteBehind
    private let size: UInt64
    private let pool: NBDBufferPool
    /// defaultChunkBytes, or less when the server takes less in one command.
    private let chunkBytes: Int
    private let lock = Mutex()
    /// Contiguous, in ascending order. Guarded by `lock`.
    private var chunks: [Chunk] = []
    /// The furthest end of a read of the stream; .max when there is no stream.
    private var streamEnd: UInt64 = .max
    /// The end of the last read outside the stream: a read starting there starts a new stream.
    private var candidateEnd: UInt64 = .max
    private var windowChunks = 0

    /// `pool`: buffers of at least `chunkBytes`.
    init(connection: NBDConnection, writes: NBDWriteBehind, size: UInt64, chunkBytes: Int, pool: NBDBufferPool) {
        precondition(pool.bufferBytes >= chunkBytes)
        self.chunkBytes = chunkBytes
        self.connection = connection
        self.writes = writes
        self.size = size
        self.pool = pool
    }

    /// Answers the read from chunks read ahead if they cover it (returns true), and asks for
    /// more ahead of a sequential stream either way.
    func read(vectors: [iovec], at offset: UInt64, count: Int) -> Bool {
        guard count > 0 else { return false }
        let end = offset + UInt64(count)
        let covering: [Chunk] = lock.withLock {
            let inStream = streamEnd != .max && offset + Self.keepBehindBytes >= streamEnd && offset <= streamEnd + UInt64(chunkBytes)
            if inStream {
                streamEnd = max(streamEnd, end)
                windowChunks = min(max(windowChunks * 2, 1), Self.maximumChunks)
            } else if offset == candidateEnd {
                // A second sequential read elsewhere: the stream moves here.
                chunks.removeAll()
                streamEnd = end
                windowChunks = 1
            } else {
                candidateEnd = end
                return []
            }
            let covering = chunks.filter { $0.end > offset && $0.offset < end }
            let covered = !covering.isEmpty && covering[0].offset <= offset && covering[covering.count - 1].end >= end
            while let first = chunks.first, first.end + Self.keepBehindBytes <= offset { chunks.removeFirst() }
            askAhead()
            return covered ? covering : []
        }
        guard !covering.isEmpty else { return false }
        for chunk in covering {
            guard (try? connection.wait(for: chunk.completion)) != nil else { return false }
        }
        // Copy [offset, end) out of the chunks into the vectors.
        var position = offset
        var chunkIndex = 0
        for vector in vectors where vector.iov_len > 0 {
            var target = vector.iov_base!
            var left = vector.iov_len
            while left > 0 {
                while covering[chunkIndex].end <= position { chunkIndex += 1 }
                let chunk = covering[chunkIndex]
                let inChunk = Int(position - chunk.offset)
                let take = min(left, chunk.length - inChunk)
                target.copyMemory(from: chunk.buffer.memory + inChunk, byteCount: take)
                target += take
                left -= take
                position += UInt64(take)
            }
        }
        return true
    }

    /// A write to [offset, offset + count) is in flight: chunks that overlap it hold what was
    /// there before.
    func invalidate(offset: UInt64, count: Int) {
        let end = offset + UInt64(count)
        lock.withLock {
            if chunks.contains(where: { $0.end > offset && $0.offset < end }) { chunks.removeAll() }
        }
    }

    /// Drops every chunk and waits (at most the timeout each) for those still in flight, so the
    /// connection closes with nothing outstanding.
    func discard() {
        let dropped = lock.withLock { () -> [Chunk] in
            defer { chunks.removeAll() }
            return chunks
        }
        for chunk in dropped { _ = chunk.completion.wait(seconds: connection.timeout) }
    }

    /// Asks for chunks up to `windowChunks` past the stream, up to a write in flight. Caller
    /// holds `lock` (and takes NBDWriteBehind's inside it, never the other way round).
    private func askAhead() {
        let target = min(streamEnd + UInt64(windowChunks * chunkBytes), size)
        var next = chunks.last?.end ?? streamEnd
        if next < streamEnd {
            // The stream ran past the chunks (they were not asked for in time): start again there.
            chunks.removeAll()
            next = streamEnd
        }
        while next < target && chunks.count < Self.maximumChunks + 2 {
            let length = Int(min(UInt64(chunkBytes), size - next))
            if writes.isWriting(overlapping: next, next + UInt64(length)) { break }
            let buffer = Buffer(pool)
            let completion = NBDCompletion(commands: 1, keepAlive: buffer)
            connection.submit([.read(buffer.memory, count: length, offset: next)], completion)
            chunks.append(Chunk(offset: next, length: length, buffer: buffer, completion: completion))
            next += UInt64(length)
        }
    }
}
