import Foundation
import SystemPackage
@testable import ExtentFS

/// What a test of issue 9's locks learns from requests run on threads of their own while it
/// holds a lock: whether they finished, and what went wrong in them.
final class LockOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private var failures: [String] = []
    func fail(_ message: String) { lock.withLock { failures.append(message) } }
    var all: [String] { lock.withLock { failures } }

    /// Runs `body` on a thread of its own while the caller holds a lock; true when it ended
    /// within 10 seconds. `release` then lets go of the lock and the body is waited for
    /// either way, so one stuck behind the lock fails the test rather than hangs it.
    func finishesWhileHeld(release: () -> Void, _ body: @escaping @Sendable () -> Void) -> Bool {
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            body()
            done.signal()
        }
        let inTime = done.wait(timeout: .now() + 10) == .success
        release()
        if !inTime, done.wait(timeout: .now() + 30) != .success { fail("still waiting 30 s after the lock was let go") }
        return inTime
    }

    /// Runs `body` while another thread writes back every file of `fs` again and again, as the
    /// flusher does, then stops that thread and waits for it. Writeback's errors are failures,
    /// but ENOSPC when `spaceMayRunOut` (a volume filled on purpose).
    func whileWritingBack<T>(_ fs: FileSystem, spaceMayRunOut: Bool = false, _ body: () throws -> T) rethrows -> T {
        let stop = StopFlag()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            defer { done.signal() }
            while !stop.isSet {
                do { try fs.writebackAll() } catch Errno.noSpace where spaceMayRunOut {} catch { self.fail("writeback: \(error)") }
            }
        }
        defer {
            stop.set()
            if done.wait(timeout: .now() + 60) != .success { fail("writeback still running 60 s after it was told to stop") }
        }
        return try body()
    }

    /// While writeback runs as in `whileWritingBack`: syncs 20 times, checkpointing every fifth
    /// time, as the log's own commits and checkpoints would between the racing requests; then
    /// waits up to `seconds` for `group` (the racing threads).
    func syncsWhileWritingBack(_ fs: FileSystem, thenWaitsFor group: DispatchGroup, seconds: Double) throws -> DispatchTimeoutResult {
        try whileWritingBack(fs) {
            for round in 0..<20 {
                try fs.sync()
                if round % 5 == 0 { try fs.journal.checkpoint() }
            }
            return group.wait(timeout: .now() + seconds)
        }
    }

    /// `finishesWhileHeld` with `fs`'s Metadata.lock held shared, as a shared transaction on an
    /// inode `body` does not touch holds it.
    func finishesDuringASharedTransaction(in fs: FileSystem, _ body: @escaping @Sendable () -> Void) -> Bool {
        fs.metadata.lock.lockShared()
        return finishesWhileHeld(release: fs.metadata.lock.unlock, body)
    }
}
