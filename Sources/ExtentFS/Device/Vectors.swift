#if canImport(Glibc)
import Glibc
#endif

/// Scattered memory and one contiguous stretch: what a command that is not scattered (an NBD
/// command, a unit read whole) needs on the way in and out.
extension Array where Element == iovec {
    /// Copies the pieces, in order, into the memory at `destination`.
    func gather(into destination: UnsafeMutableRawPointer) {
        var cursor = destination
        for piece in self where piece.iov_len > 0 {
            cursor.copyMemory(from: piece.iov_base!, byteCount: piece.iov_len)
            cursor += piece.iov_len
        }
    }

    /// Fills the pieces, in order, from the memory at `source`.
    func scatter(from source: UnsafeRawPointer) {
        var cursor = source
        for piece in self where piece.iov_len > 0 {
            piece.iov_base!.copyMemory(from: cursor, byteCount: piece.iov_len)
            cursor += piece.iov_len
        }
    }
}
