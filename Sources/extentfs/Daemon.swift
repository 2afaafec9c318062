import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The descriptor number the daemon finds its end of the readiness pipe on.
private let daemonReadyDescriptor: Int32 = 3
/// glibc hides it without _GNU_SOURCE.
private let posixSpawnSetSID: Int32 = 0x80

/// Starts `extentfs mount -f --ready-fd 3 ...` detached (own session, stdin/stdout on
/// /dev/null, stderr on the log) and returns once it reports the mount live; throws its error
/// line, or a description of its death if it exits without a word.
func startDaemon(image: String, mountpoint: String, mount: Mount) throws {
    let logFile = try openLog(mount.log ?? "/dev/null")
    defer { try? logFile.close() }
    let (readEnd, writeEnd) = try readinessPipe()
    defer { try? readEnd.close() }

    let arguments = mount.daemonArguments(image: image, mountpoint: mountpoint, readyFd: daemonReadyDescriptor)
    let pid: pid_t
    do {
        defer { try? writeEnd.close() }
        pid = try spawnDetached(executablePath(), arguments: arguments, standardError: logFile, ready: writeEnd)
    }

    let reply = try readToEnd(readEnd)
    if reply == "ok" { return }
    if !reply.isEmpty { throw CommandFailure(reply) }
    throw CommandFailure("the daemon \(exitDescription(waitFor: pid)) before the mount was live")
}

/// Both ends close-on-exec and above the standard descriptors, so the dup2 onto 2 and 3 in the
/// child can never clobber one another.
private func readinessPipe() throws -> (FileDescriptor, FileDescriptor) {
    var ends: [Int32] = [0, 0]
    guard pipe(&ends) == 0 else { throw Errno(rawValue: errno) }
    let readEnd = fcntl(ends[0], F_DUPFD_CLOEXEC, 10)
    let writeEnd = fcntl(ends[1], F_DUPFD_CLOEXEC, 10)
    close(ends[0])
    close(ends[1])
    guard readEnd >= 0, writeEnd >= 0 else { throw Errno(rawValue: errno) }
    return (FileDescriptor(rawValue: readEnd), FileDescriptor(rawValue: writeEnd))
}

/// posix_spawn rather than fork: forking a multithreaded Swift process is not safe.
private func spawnDetached(_ path: String, arguments: [String], standardError: FileDescriptor,
                           ready: FileDescriptor) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, standardError.rawValue, STDERR_FILENO)
    posix_spawn_file_actions_adddup2(&actions, ready.rawValue, daemonReadyDescriptor)

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    var defaultSignals = sigset_t()
    sigemptyset(&defaultSignals)
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE] { sigaddset(&defaultSignals, signal) }
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
    let flags = posixSpawnSetSID | Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)
    posix_spawnattr_setflags(&attributes, Int16(flags))

    var pid: pid_t = 0
    let result = withCArguments([path] + arguments) { argv in
        posix_spawn(&pid, path, &actions, &attributes, argv, environ)
    }
    guard result == 0 else { throw CommandFailure("cannot start the daemon: \(Errno(rawValue: result))") }
    return pid
}

private func readToEnd(_ descriptor: FileDescriptor) throws -> String {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = try chunk.withUnsafeMutableBytes { try descriptor.read(into: $0) }
        if count == 0 { break }
        bytes += chunk[..<count]
    }
    return String(decoding: bytes, as: UTF8.self).trimmingTrailingNewlines()
}

/// Reaps the child; it has closed its end of the pipe, so it is exiting or gone.
private func exitDescription(waitFor pid: pid_t) -> String {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { return "exited" }
    }
    let signal = status & 0x7f
    return signal == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(signal)"
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var text = Substring(self)
        while text.last == "\n" || text.last == "\r" { text = text.dropLast() }
        return String(text)
    }
}
