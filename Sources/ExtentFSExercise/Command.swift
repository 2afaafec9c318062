import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Runs a program to completion and collects what it printed (stdout and stderr together).
/// The mount mode uses it for `extentfs mkfs/mount/umount/fsck`.
struct Command {
    struct Outcome {
        var status: Int32
        var output: String
        var succeeded: Bool { status == 0 }
    }

    static func run(_ arguments: [String]) throws -> Outcome {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw TargetBroken("pipe: \(Errno(rawValue: errno))") }
        // Close-on-exec: only the child's dup2 copies (stdout, stderr) may outlive the spawn, or a
        // daemon that `extentfs mount` starts would hold the write end and EOF would never come.
        for end in pipeEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], STDOUT_FILENO)
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], STDERR_FILENO)

        var cArguments = arguments.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, arguments[0], &actions, nil, &cArguments, environ)
        close(pipeEnds[1])
        guard spawned == 0 else {
            close(pipeEnds[0])
            throw TargetBroken("cannot run \(arguments[0]): \(Errno(rawValue: spawned))")
        }
        // Read to EOF before waiting, so a chatty child never blocks on a full pipe.
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(pipeEnds[0], $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            output += chunk[0..<count]
        }
        close(pipeEnds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7F == 0
        return Outcome(status: exited ? (status >> 8) & 0xFF : 128 + (status & 0x7F),
                       output: String(decoding: output, as: UTF8.self))
    }

    /// Runs it and throws with its output when it fails.
    @discardableResult
    static func check(_ arguments: [String]) throws -> String {
        let outcome = try run(arguments)
        guard outcome.succeeded else {
            throw TargetBroken("\(arguments.joined(separator: " ")) failed (exit \(outcome.status)): \(outcome.output)")
        }
        return outcome.output
    }
}
