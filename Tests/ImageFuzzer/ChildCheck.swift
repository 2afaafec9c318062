import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs `ImageFuzzer check IMAGE` in a child process with a time limit and a memory limit, and
/// says how it ended: a trap or any other signal, a hang, a contradiction, or fine.
enum ChildCheck {
    enum Verdict {
        case fine(String)
        case contradiction(String)
        case crashed(signal: Int32, lastStep: String)
        case hung(seconds: Double, lastStep: String)
        case failed(status: Int32, output: String)

        var isFailure: Bool {
            if case .fine = self { return false }
            return true
        }
    }

    /// Above what any small image needs by far: more means memory grew without bound.
    static let memoryLimitBytes: UInt64 = 2 << 30

    static func run(image: String, timeout: Double) throws -> (Verdict, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).standardizedFileURL
        process.arguments = ["check", image]
        var environment = ProcessInfo.processInfo.environment
        // A trap is the finding: Swift's backtracer would take seconds to describe each one.
        environment["SWIFT_BACKTRACE"] = "enable=no"
        environment["EXTENTFS_FUZZ_MEMORY_LIMIT"] = String(memoryLimitBytes)
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let collected = Collected()
        pipe.fileHandleForReading.readabilityHandler = { handle in collected.append(handle.availableData) }
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        var hung = false
        if process.isRunning {
            hung = true
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        pipe.fileHandleForReading.readabilityHandler = nil
        collected.append(pipe.fileHandleForReading.readDataToEndOfFile())
        let output = collected.text
        let lastStep = output.split(separator: "\n").last { $0.hasPrefix("step: ") }.map { String($0.dropFirst(6)) } ?? "start"
        if hung { return (.hung(seconds: timeout, lastStep: lastStep), output) }
        if process.terminationReason == .uncaughtSignal {
            return (.crashed(signal: process.terminationStatus, lastStep: lastStep), output)
        }
        switch process.terminationStatus {
        case 0:
            let outcome = output.split(separator: "\n").last { $0.hasPrefix("outcome: ") }.map(String.init) ?? "outcome: ?"
            return (.fine(outcome), output)
        case ImageCheck.contradictionStatus:
            let line = output.split(separator: "\n").last { $0.hasPrefix("contradiction: ") }.map(String.init) ?? output
            return (.contradiction(line), output)
        default:
            return (.failed(status: process.terminationStatus, output: output), output)
        }
    }

    /// The child's side: caps its own memory before doing anything.
    static func limitMemory() {
        guard let text = ProcessInfo.processInfo.environment["EXTENTFS_FUZZ_MEMORY_LIMIT"], let bytes = UInt64(text) else { return }
        var limit = rlimit(rlim_cur: rlim_t(bytes), rlim_max: rlim_t(bytes))
        setrlimit(Int32(RLIMIT_DATA.rawValue), &limit)
    }

    private final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var data = Data()
        func append(_ more: Data) { lock.lock(); data.append(more); lock.unlock() }
        var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
    }
}
