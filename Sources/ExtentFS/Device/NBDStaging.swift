#if canImport(Glibc)
import Glibc
#endif

/// Staging buffers from the pool, and the pieces of caller memory each stands for; back to the
/// pool when the last owner (the transfer, or the completion of its commands) lets go.
final class NBDStaging: @unchecked Sendable {
    private let pool: NBDBufferPool
    private var staged: [(buffer: UnsafeMutableRawPointer, pieces: [iovec])] = []

    init(_ pool: NBDBufferPool) { self.pool = pool }

    deinit {
        for (buffer, _) in staged { pool.give(buffer) }
    }

    /// A buffer for `pieces` (at most one pool buffer's worth).
    func add(_ pieces: [iovec]) -> UnsafeMutableRawPointer {
        let buffer = pool.take()
        staged.append((buffer, pieces))
        return buffer
    }

    func scatter() {
        for (buffer, pieces) in staged { pieces.scatter(from: buffer) }
    }
}
