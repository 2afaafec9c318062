import Logging
import SystemPackage

/// XFS's shutdown policy: once a write or flush of the log or of metadata has failed, the state
/// on disk is unknown, so nothing more is written over it. Every later request gets EIO, nothing
/// is retried, and unmount reports that changes were lost. The reason is logged once.
final class Shutdown: @unchecked Sendable {
    private let lock = Mutex()
    private var reason: String?
    private let logger = Logger(label: "extentfs.shutdown")

    var isShutDown: Bool { lock.withLock { reason != nil } }
    var why: String? { lock.withLock { reason } }

    /// Shuts the volume down (the first reason wins) and returns the error to throw.
    @discardableResult
    func trigger(_ why: String) -> ExtentFSError {
        let first = lock.withLock { () -> Bool in
            guard reason == nil else { return false }
            reason = why
            return true
        }
        if first { logger.critical("shutting the volume down: \(why); every request fails with EIO from now on") }
        return ExtentFSError("the volume is shut down: \(self.why ?? why)", errno: .ioError)
    }

    /// Throws EIO once the volume is shut down.
    @inline(__always)
    func check() throws {
        if lock.withLock({ reason != nil }) { throw Errno.ioError }
    }
}
