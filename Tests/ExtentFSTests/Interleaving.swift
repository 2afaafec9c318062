import Foundation
@testable import ExtentFS

/// Stops the first thread that reaches `point` until `release()`: a test holds one thread inside
/// a race window (a pause point in the engine) while another thread runs.
final class Gate: @unchecked Sendable {
    let point: PausePoint
    private let arrival = DispatchSemaphore(value: 0)
    private let exit = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var armed = true

    init(_ point: PausePoint) { self.point = point }

    func install(on fs: FileSystem) {
        fs.pauseHook = { [self] reached in
            guard reached == point else { return }
            let stop: Bool = lock.withLock {
                defer { armed = false }
                return armed
            }
            guard stop else { return }
            arrival.signal()
            exit.wait()
        }
    }

    func waitForArrival(seconds: Double = 10) -> Bool { arrival.wait(timeout: .now() + seconds) == .success }
    func release() { exit.signal() }
}

/// Runs `body` on its own thread; `finished` tells whether it has returned.
final class Background<T>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var result: Result<T, Error>?

    init(_ body: @escaping () throws -> T) {
        let thread = Thread { [self] in
            let outcome = Result { try body() }
            lock.withLock { result = outcome }
            done.signal()
        }
        thread.stackSize = 4 << 20
        thread.start()
    }

    var finished: Bool { lock.withLock { result != nil } }

    func join(seconds: Double = 30) throws -> T {
        guard done.wait(timeout: .now() + seconds) == .success else { throw InterleavingError.timeout }
        return try lock.withLock { result! }.get()
    }
}

enum InterleavingError: Error { case timeout }

/// How long a thread that should be blocked gets to show it is not.
let blockedWindow: Double = 0.3
