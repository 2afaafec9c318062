import CNBD
#if canImport(Glibc)
import Glibc
#endif

/// The commands of one store call, in flight on an NBD connection: libnbd's completion callback
/// (on the connection's driver thread) counts each one off, and the caller waits for the last.
/// Each command holds a reference, given back by libnbd's free callback once it will never call
/// the completion callback again, so this outlives a caller that stops waiting.
final class NBDCompletion: @unchecked Sendable {
    private let mutex = Mutex()
    private let condition: Condition
    private var pending: Int
    /// The first command's error (an errno); 0 while all went well.
    private var firstError: Int32 = 0
    /// What the commands' buffers belong to: kept until libnbd lets go of the last command,
    /// even when nobody waits for them any more (readahead that was never read).
    private let keepAlive: AnyObject?

    init(commands: Int, keepAlive: AnyObject? = nil) {
        pending = commands
        self.keepAlive = keepAlive
        condition = Condition(mutex)
    }

    /// Whether every command has finished (without waiting).
    var isFinished: Bool { mutex.withLock { pending == 0 } }

    var error: Int32 { mutex.withLock { firstError } }

    func finish(error: Int32) {
        mutex.withLock {
            if error != 0 && firstError == 0 { firstError = error }
            pending -= 1
            if pending == 0 { condition.broadcast() }
        }
    }

    /// Waits until every command has finished, at most `seconds`; returns whether they have.
    func wait(seconds: Double) -> Bool {
        let deadline = Self.monotonicSeconds() + seconds
        return mutex.withLock {
            while pending > 0 {
                let left = deadline - Self.monotonicSeconds()
                if left <= 0 { return false }
                condition.wait(seconds: left)
            }
            return true
        }
    }

    /// Waits until every command has finished, however long that takes.
    func waitForAll() {
        mutex.withLock {
            while pending > 0 { condition.wait() }
        }
    }

    static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// A libnbd completion callback for one command of this call: takes a reference for it.
    func callback() -> nbd_completion_callback {
        nbd_completion_callback(callback: nbdCommandFinished,
                                user_data: Unmanaged.passRetained(self).toOpaque(),
                                free: nbdCommandReleased)
    }
}

/// libnbd calls this exactly once per command it accepted, with the handle's lock held (so it
/// must not call libnbd). Returning 1 retires the command: nobody asks for it by cookie later.
private func nbdCommandFinished(_ userData: UnsafeMutableRawPointer?, _ error: UnsafeMutablePointer<Int32>?) -> Int32 {
    let completion = Unmanaged<NBDCompletion>.fromOpaque(userData!).takeUnretainedValue()
    completion.finish(error: error?.pointee ?? EIO)
    return 1
}

/// libnbd calls this once it will not call nbdCommandFinished for the command again, also when
/// it refused the command (then nbdCommandFinished is never called).
private func nbdCommandReleased(_ userData: UnsafeMutableRawPointer?) {
    Unmanaged<NBDCompletion>.fromOpaque(userData!).release()
}
