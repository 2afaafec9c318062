import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a finished (or killed) subprocess left behind.
struct ProcessResult: CustomStringConvertible {
    var command: String
    /// The exit status, or the signal number when `terminatedBySignal`.
    var status: Int32
    var terminatedBySignal: Bool
    var timedOut: Bool
    var stdout: String
    var stderr: String

    var succeeded: Bool { status == 0 && !terminatedBySignal && !timedOut }
    var stderrLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: true) }

    var description: String {
        var text = "`\(command)` "
        if timedOut {
            text += "timed out"
        } else if terminatedBySignal {
            text += "was killed by signal \(status)"
        } else {
            text += "exited with status \(status)"
        }
        if !stdout.isEmpty { text += "\n  stdout: \(stdout.trimmingCharacters(in: .whitespacesAndNewlines))" }
        if !stderr.isEmpty { text += "\n  stderr: \(stderr.trimmingCharacters(in: .whitespacesAndNewlines))" }
        return text
    }
}

/// Runs commands with posix_spawn and waitpid rather than Foundation's Process.
///
/// `extentfs mount` leaves a daemon behind. Foundation's Process learns that its child ended
/// from a socket the child inherits, and so does any daemon the child starts: it would report
/// the mount command as running for as long as the filesystem stays mounted. Here the child gets
/// only stdin (/dev/null) and stdout/stderr (temporary files), and its exit is seen by waitpid.
enum ProcessRunner {
    /// `environment`: variables set (or replaced) for the command, on top of the test's own.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                    timeout: TimeInterval) throws -> ProcessResult {
        let outPath = temporaryOutputPath("stdout")
        let errPath = temporaryOutputPath("stderr")
        let outFD = try sys("open \(outPath)", open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600))
        defer { close(outFD); unlink(outPath) }
        let errFD = try sys("open \(errPath)", open(errPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600))
        defer { close(errFD); unlink(errPath) }
        let nullFD = try sys("open /dev/null", open("/dev/null", O_RDONLY | O_CLOEXEC))
        defer { close(nullFD) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, nullFD, 0)
        posix_spawn_file_actions_adddup2(&actions, outFD, 1)
        posix_spawn_file_actions_adddup2(&actions, errFD, 2)
        if let closeFrom = closeFromAction {
            _ = closeFrom(&actions, 3)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The test process may ignore SIGPIPE; the command should not inherit that.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }

        var variables = ProcessInfo.processInfo.environment
        variables.merge(environment) { _, new in new }
        let envp: [UnsafeMutablePointer<CChar>?] = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }

        var pid = pid_t()
        let spawnError = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard spawnError == 0 else {
            throw SyscallError(call: "posix_spawn(\(executable))", code: spawnError)
        }

        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        var status: Int32 = 0
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { break }
            if reaped < 0 && errno != EINTR {
                throw SyscallError(call: "waitpid(\(pid))", code: errno)
            }
            if !timedOut && Date() >= deadline {
                timedOut = true
                kill(pid, SIGKILL)
            }
            usleep(10_000)
        }

        let signal = status & 0x7f
        return ProcessResult(
            command: ([executable] + arguments).joined(separator: " "),
            status: signal == 0 ? (status >> 8) & 0xff : signal,
            terminatedBySignal: signal != 0,
            timedOut: timedOut,
            stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        )
    }

    private typealias CloseFromAction = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    /// glibc 2.34+ posix_spawn_file_actions_addclosefrom_np: closes every descriptor from 3 up
    /// in the child, including ones the test runtime opened without O_CLOEXEC.
    private static let closeFromAction: CloseFromAction? = {
        guard let handle = dlopen(nil, RTLD_NOW),
              let address = dlsym(handle, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(address, to: CloseFromAction.self)
    }()

    private static func temporaryOutputPath(_ stream: String) -> String {
        FileManager.default.temporaryDirectory
            .appendingPathComponent("extentfs-proc-\(UUID().uuidString).\(stream)").path
    }
}
