/// Writes an NBD store has taken but the server has not answered yet. A write returns once its
/// bytes are staged and sent: the engine writes back one batch after another from the thread
/// that is waiting to write, and waiting for a trip to the server on each batch would cost
/// what a write into the host's page cache does not (as the kernel's own writeback does for an
/// image file, the device takes the bytes and the flush makes them durable).
///
/// What the engine relies on still holds:
/// - a flush waits for every write in flight before NBD_CMD_FLUSH, which covers only writes
///   the server has answered: a flush covers every write that returned before it;
/// - a read waits for the writes in flight it overlaps, and a write for the earlier writes it
///   overlaps (a server may carry out commands in flight in any order);
/// - a failed write fails the next write and every flush after it (it is never forgotten, and
///   the journal shuts the volume down at its next commit; on NBD a failed data write is not
///   only its file's fsync error, as it is on a disk);
/// - at most `maximumBytes` are in flight; a write past that waits for the oldest.
/// Every wait is bounded by the connection's timeout (NBDConnection.wait).
final class NBDWriteBehind: @unchecked Sendable {
    static let maximumBytes = 8 << 20

    private final class Write {
        let offset: UInt64
        let end: UInt64
        let completion: NBDCompletion
        init(offset: UInt64, end: UInt64, completion: NBDCompletion) {
            self.offset = offset
            self.end = end
            self.completion = completion
        }
        func overlaps(_ offset: UInt64, _ end: UInt64) -> Bool { self.offset < end && offset < self.end }
    }

    private let connection: NBDConnection
    private let lock = Mutex()
    /// In the order they were sent. Guarded by `lock`.
    private var writes: [Write] = []
    private var bytesInFlight = 0
    /// The first write that failed: every later write and flush fails with it.
    private var failure: Error?

    init(connection: NBDConnection) {
        self.connection = connection
    }

    /// Sends the transfer's commands (every piece staged: `stageAll`) and returns without
    /// waiting for the answer, once the earlier writes it overlaps have finished and there is
    /// room. `beforeSending` runs once the write counts as in flight and before it is sent
    /// (readahead drops what it holds of the range then).
    func write(_ transfer: NBDTransfer, offset: UInt64, count: Int, beforeSending: () -> Void) throws {
        try connection.checkUsable()
        let end = offset + UInt64(count)
        let completion = NBDCompletion(commands: transfer.commands.count, keepAlive: transfer.staging)
        while true {
            // Checked and registered under one lock: two overlapping writes are never both in flight.
            let blocker = try lock.withLock { () -> Write? in
                pruneFinished()
                if let failure { throw failure }
                if let overlapping = writes.first(where: { $0.overlaps(offset, end) }) { return overlapping }
                if bytesInFlight > 0 && bytesInFlight + count > Self.maximumBytes { return writes.first }
                writes.append(Write(offset: offset, end: end, completion: completion))
                bytesInFlight += count
                return nil
            }
            guard let blocker else { break }
            try wait(for: blocker)
        }
        beforeSending()
        connection.submit(transfer.commands, completion)
    }

    /// Waits for the writes in flight that overlap [offset, offset + count): a read sent now
    /// sees them. Throws if one of them failed.
    func waitForWrites(overlapping offset: UInt64, count: Int) throws {
        let end = offset + UInt64(count)
        while let blocker = lock.withLock({ () -> Write? in
            pruneFinished()
            return writes.first { $0.overlaps(offset, end) }
        }) {
            try wait(for: blocker)
        }
    }

    /// Whether a write overlapping [offset, end) is in flight (readahead waits to ask for that
    /// range: the server could read it before writing it).
    func isWriting(overlapping offset: UInt64, _ end: UInt64) -> Bool {
        lock.withLock { writes.contains { $0.overlaps(offset, end) && !$0.completion.isFinished } }
    }

    /// Waits for every write in flight (before a flush); throws if any write has failed.
    func drain() throws {
        while let oldest = lock.withLock({ () -> Write? in
            pruneFinished()
            return writes.first
        }) {
            try wait(for: oldest)
        }
        if let failure = lock.withLock({ failure }) { throw failure }
    }

    /// Waits for one write (at most the timeout, then the connection is given up) and forgets
    /// it, keeping its error.
    private func wait(for write: Write) throws {
        var waitError: Error?
        do { try connection.wait(for: write.completion) } catch { waitError = error }
        lock.withLock {
            if let waitError, failure == nil { failure = waitError }
            remove(write)
        }
        if let waitError { throw waitError }
    }

    /// Forgets finished writes, keeping the first error. Caller holds `lock`.
    private func pruneFinished() {
        for write in writes where write.completion.isFinished {
            if failure == nil, write.completion.error != 0 {
                do { try connection.wait(for: write.completion) } catch { failure = error }
            }
            remove(write)
        }
    }

    /// Caller holds `lock`.
    private func remove(_ write: Write) {
        guard let index = writes.firstIndex(where: { $0 === write }) else { return }
        writes.remove(at: index)
        bytesInFlight -= Int(write.end - write.offset)
    }
}
