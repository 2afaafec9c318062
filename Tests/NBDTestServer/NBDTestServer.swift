import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real nbdkit for the tests: the memory or file plugin behind a Unix socket or TCP on
/// 127.0.0.1, with any filters, in the foreground as our child (--exit-with-parent, so a test
/// process that dies takes it along). The tests kill it, stop it and start it again on the same
/// file, socket and port. nbdkit missing is an error, never a skip.
public final class NBDTestServer: @unchecked Sendable {
    public enum Transport: Sendable, CustomStringConvertible {
        case unixSocket
        case tcp

        public var description: String { self == .unixSocket ? "Unix socket" : "TCP" }
    }

    public enum Plugin: Sendable {
        /// nbdkit's memory plugin: a RAM disk of this many bytes, gone when the server exits.
        case memory(bytes: UInt64)
        /// nbdkit's file plugin over a file (made sparse, of `bytes`, if it does not exist).
        case file(path: String, bytes: UInt64)
        /// Any plugin and its arguments, as nbdkit takes them.
        case custom([String])
    }

    public let transport: Transport
    public let plugin: Plugin
    /// Filters (--filter NAME, before the plugin) and their parameters (after it).
    public let filters: [String]
    public let parameters: [String]
    /// Other nbdkit options, before the plugin (e.g. --tls=require --tls-psk=FILE).
    public let serverOptions: [String]
    /// What extentfs is given: nbd+unix:///?socket=PATH or nbd://127.0.0.1:PORT/.
    public let uri: String
    public let directory: String
    /// The Unix socket (for .unixSocket).
    public let socketPath: String
    private let port: Int
    private let logPath: String
    public private(set) var pid: pid_t = 0

    /// Starts the server; returns once it accepts connections.
    public init(_ plugin: Plugin, transport: Transport, directory: String,
                filters: [String] = [], parameters: [String] = [], serverOptions: [String] = []) throws {
        self.plugin = plugin
        self.serverOptions = serverOptions
        self.transport = transport
        self.filters = filters
        self.parameters = parameters
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let name = "nbdkit-\(UInt32.random(in: 0...UInt32.max))"
        socketPath = directory + "/\(name).sock"
        logPath = directory + "/\(name).log"
        if transport == .tcp {
            port = try NBDTestServer.freePort()
            uri = "nbd://127.0.0.1:\(port)/"
        } else {
            port = 0
            uri = "nbd+unix:///?socket=\(socketPath)"
        }
        if case .file(let path, let bytes) = plugin, access(path, F_OK) != 0 {
            guard let file = FileManager.default.createFile(atPath: path, contents: nil) ? path : nil,
                  truncate(file, off_t(bytes)) == 0 else {
                throw NBDTestServerError("cannot create \(path) for nbdkit's file plugin")
            }
        }
        try start()
    }

    deinit { stop() }

    /// nbdkit for the tests, or an error that says how to install it.
    public static func executable() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
            let candidate = directory + "/nbdkit"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw NBDTestServerError("nbdkit is not installed: apt-get install nbdkit (scripts/install-deps.sh installs it); the NBD tests need a real server")
    }

    /// Starts nbdkit again on the same file, socket or port (after kill or stop).
    public func start() throws {
        guard pid == 0 else { return }
        let nbdkit = try NBDTestServer.executable()
        unlink(socketPath)
        let pidFile = directory + "/nbdkit-\(UInt32.random(in: 0...UInt32.max)).pid"
        var arguments = [nbdkit, "--foreground", "--exit-with-parent", "--pidfile", pidFile]
        arguments += transport == .tcp ? ["--ipaddr", "127.0.0.1", "--port", String(port)] : ["--unix", socketPath]
        arguments += serverOptions
        arguments += filters.flatMap { ["--filter", $0] }
        switch plugin {
        case .memory(let bytes): arguments += ["memory", "size=\(bytes)"]
        case .file(let path, _): arguments += ["file", "file=\(path)"]
        case .custom(let words): arguments += words
        }
        arguments += parameters
        pid = try NBDTestServer.spawn(arguments, log: logPath)
        // nbdkit writes its pid file once it listens.
        let deadline = Date().addingTimeInterval(20)
        while access(pidFile, F_OK) != 0 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                pid = 0
                throw NBDTestServerError("nbdkit exited at start (\(arguments.joined(separator: " "))): \(logTail())")
            }
            guard Date() < deadline else {
                kill()
                throw NBDTestServerError("nbdkit did not start listening within 20 s: \(logTail())")
            }
            usleep(20_000)
        }
        unlink(pidFile)
    }

    /// SIGKILL: the server goes away mid-request, as a crash or a lost host would.
    public func kill() {
        guard pid > 0 else { return }
        Glibc.kill(pid, SIGKILL)
        reap()
    }

    /// SIGTERM and wait: a clean shutdown (nbdkit finishes the requests it has).
    public func stop() {
        guard pid > 0 else { return }
        Glibc.kill(pid, SIGCONT)
        Glibc.kill(pid, SIGTERM)
        reap()
    }

    /// SIGSTOP: the server stalls; nothing it has been sent is answered until `resume`.
    public func pause() {
        if pid > 0 { Glibc.kill(pid, SIGSTOP) }
    }

    public func resume() {
        if pid > 0 { Glibc.kill(pid, SIGCONT) }
    }

    public func logTail() -> String {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return "(no nbdkit log)" }
        return text.split(separator: "\n").suffix(10).joined(separator: " | ")
    }

    private func reap() {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        pid = 0
    }

    /// A TCP port on 127.0.0.1 that nobody listens on right now.
    public static func freePort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw NBDTestServerError("socket: errno \(errno)") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(socket, generic, length) == 0 && getsockname(socket, generic, &length) == 0
            }
        }
        guard bound else { throw NBDTestServerError("cannot find a free port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// posix_spawn, since forking a multithreaded test process is not safe; output to `log`.
    private static func spawn(_ arguments: [String], log: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO)
        // Descriptors the test process opened without O_CLOEXEC (an image whose flock must go
        // with its mount) must not live on in the server.
        if let closeFrom = closeFromAction { _ = closeFrom(&actions, 3) }
        var pid: pid_t = 0
        let cArguments = arguments.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        let result = posix_spawn(&pid, arguments[0], &actions, nil, cArguments, environ)
        guard result == 0 else { throw NBDTestServerError("cannot start \(arguments[0]): errno \(result)") }
        return pid
    }
}

private typealias CloseFromAction = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

/// glibc 2.34+ posix_spawn_file_actions_addclosefrom_np, which Swift's Glibc does not declare.
private let closeFromAction: CloseFromAction? = {
    guard let handle = dlopen(nil, RTLD_NOW),
          let address = dlsym(handle, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
    return unsafeBitCast(address, to: CloseFromAction.self)
}()

public struct NBDTestServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
