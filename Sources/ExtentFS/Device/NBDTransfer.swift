#if canImport(Glibc)
import Glibc
#endif

/// One read or write of the store as NBD commands of at most `pieceBytes` each, all sent at
/// once: a large read or write becomes several commands the server works on in parallel while
/// the next ones are still on the wire, where one command would wait for each step in turn.
///
/// NBD has no scattered commands, and page-sized vectors as commands of their own would cost a
/// round of the protocol each; so the pieces of a command that are not one stretch of memory go
/// through a staging buffer (a copy in memory is cheap next to a trip through a socket). A write
/// that returns before the server has answered (NBDWriteBehind) stages every piece: the caller
/// may change its memory as soon as the call returns.
struct NBDTransfer {
    enum Direction { case read, write }

    private(set) var commands: [NBDConnection.Command] = []
    /// The staging buffers: give it to the commands' completion (`keepAlive`), so that the
    /// buffers live until libnbd is done with them.
    let staging: NBDStaging
    private let direction: Direction

    /// `stageAll`: stage pieces that are one stretch of caller memory too.
    init(_ direction: Direction, vectors: [iovec], at offset: UInt64, pieceBytes: Int, pool: NBDBufferPool,
         stageAll: Bool = false) {
        precondition(pieceBytes <= pool.bufferBytes)
        self.direction = direction
        staging = NBDStaging(pool)
        var position = offset
        var pieces: [iovec] = []
        var pieceTotal = 0
        for vector in vectors where vector.iov_len > 0 {
            var base = vector.iov_base!
            var left = vector.iov_len
            while left > 0 {
                let take = min(left, pieceBytes - pieceTotal)
                if let last = pieces.last, last.iov_base! + last.iov_len == base {
                    pieces[pieces.count - 1].iov_len += take
                } else {
                    pieces.append(iovec(iov_base: base, iov_len: take))
                }
                pieceTotal += take
                base += take
                left -= take
                if pieceTotal == pieceBytes {
                    addCommand(pieces, total: pieceTotal, at: position, stageAll: stageAll)
                    position += UInt64(pieceTotal)
                    pieces.removeAll(keepingCapacity: true)
                    pieceTotal = 0
                }
            }
        }
        if pieceTotal > 0 { addCommand(pieces, total: pieceTotal, at: position, stageAll: stageAll) }
    }

    private mutating func addCommand(_ pieces: [iovec], total: Int, at offset: UInt64, stageAll: Bool) {
        if pieces.count == 1 && !stageAll {
            let memory = pieces[0].iov_base!
            commands.append(direction == .read ? .read(memory, count: total, offset: offset)
                                               : .write(memory, count: total, offset: offset))
            return
        }
        let buffer = staging.add(pieces)
        switch direction {
        case .read:
            commands.append(.read(buffer, count: total, offset: offset))
        case .write:
            pieces.gather(into: buffer)
            commands.append(.write(buffer, count: total, offset: offset))
        }
    }

    /// After a read: copies what the staging buffers received to the caller's pieces.
    func scatter() {
        staging.scatter()
    }
}
