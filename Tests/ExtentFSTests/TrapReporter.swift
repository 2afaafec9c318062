import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// When the engine traps (a precondition failure, a crash) the test process dies and XCTest's
/// output stops mid-test. This says which case was running (block size, workload, seed, crash
/// point or fault) on stderr first, so that the trap can be reproduced: it is an engine bug.
/// Then the handler that was there before (Swift's backtracer) gets the signal.
enum TrapReporter {
    private static let installed: Void = {
        crashCaseBuffer.initialize(repeating: 0, count: crashCaseCapacity)
        previousActions.initialize(repeating: sigaction(), count: 32)
        for signal in [SIGILL, SIGTRAP, SIGABRT, SIGSEGV, SIGBUS] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signal in
                // Only write(2) and sigaction(2) here: the process is dying and may hold any lock.
                let prefix: StaticString = "\nextentfs crash harness: the engine trapped (or the process crashed) while running: "
                _ = write(2, prefix.utf8Start, prefix.utf8CodeUnitCount)
                _ = write(2, crashCaseBuffer, strlen(crashCaseBuffer))
                _ = write(2, "\n", 1)
                // Returning re-executes the trapping instruction: the previous handler gets it.
                sigaction(signal, previousActions + Int(signal), nil)
            }
            sigaction(signal, &action, previousActions + Int(signal))
        }
    }()

    /// Names the case about to run.
    static func running(_ description: String) {
        _ = installed
        let bytes = Array(description.utf8.prefix(crashCaseCapacity - 1))
        crashCaseBuffer.initialize(repeating: 0, count: crashCaseCapacity)
        for (index, byte) in bytes.enumerated() { crashCaseBuffer[index] = CChar(bitPattern: byte) }
    }
}

/// The case description the signal handler prints (a C string: the handler may not allocate).
private let crashCaseCapacity = 2048
private let crashCaseBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: crashCaseCapacity)
/// The handlers that were installed before, by signal number.
private let previousActions = UnsafeMutablePointer<sigaction>.allocate(capacity: 32)
