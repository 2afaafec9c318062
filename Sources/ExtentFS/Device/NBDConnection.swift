import CNBD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// One connection to an NBD server through libnbd's asynchronous API. Callers on any thread
/// queue commands (nbd_aio_pread/pwrite/flush) and wait for them; one driver thread moves the
/// connection along (sends what is queued, reads replies, runs the completion callbacks). So
/// many commands are in flight at once, from one call cut into pieces and from many callers,
/// over a single connection: a server that admits one client at a time (qemu-nbd's default,
/// nbdkit's limit filter) still serves us, and a flush covers every write it has acknowledged.
///
/// Nothing waits without a bound: connecting and every command have `timeout` seconds. When a
/// command runs out of time the connection is given up (its socket shut down, so libnbd fails
/// everything still in flight and lets go of the callers' buffers) and every later command
/// fails at once. Neither a dead server nor a stalled one is retried or reconnected: what it
/// acknowledged is the server's, what it did not is reported as failed, and only a new mount
/// connects again.
final class NBDConnection: @unchecked Sendable {
    enum Command {
        case read(UnsafeMutableRawPointer, count: Int, offset: UInt64)
        case write(UnsafeRawPointer, count: Int, offset: UInt64)
        case flush
    }

    let uri: String
    let timeout: Double
    /// The export's size in bytes.
    let size: UInt64
    let canFlush: Bool
    let isReadOnly: Bool
    /// The largest payload the server takes in one command.
    let maximumPayload: Int
    /// The server's smallest unit of a command (NBD_INFO_BLOCK_SIZE's minimum; 1 when it names
    /// none): libnbd refuses a command whose offset or length is not a multiple of it.
    let minimumBlockBytes: Int

    private let handle: OpaquePointer
    /// Our own descriptor for the connection's socket: shutting it down ends the connection even
    /// while libnbd works on it, and libnbd may close its descriptor (whose number could then be
    /// reused) the moment the connection dies.
    private let socketCopy: Int32
    /// Wakes the driver out of poll() when a caller has queued commands: sending them may need
    /// POLLOUT, which the driver was not waiting for.
    private let wakeDescriptor: Int32
    private let stateLock = Mutex()
    private let driverStopped: Condition
    /// Why the connection is no longer usable; nil while it is.
    private var failure: String?
    private var driverRunning = false
    private var driver = pthread_t()
    /// close() has run (the driver is joined): guarded by stateLock.
    private var isClosed = false

    init(uri: String, timeout: Double) throws {
        self.uri = uri
        self.timeout = timeout
        guard let handle = nbd_create() else {
            throw ExtentFSError("\(uri): cannot create an NBD handle: \(NBDConnection.lastError)", errno: .ioError)
        }
        do {
            try NBDConnection.connect(handle, uri: uri, timeout: timeout)
            let size = nbd_get_size(handle)
            guard size >= 0 else { throw ExtentFSError("\(uri): cannot read the export's size: \(NBDConnection.lastError)", errno: .ioError) }
            self.size = UInt64(size)
            canFlush = nbd_can_flush(handle) == 1
            isReadOnly = nbd_is_read_only(handle) == 1
            // 0 when the server does not say; libnbd then holds commands to 32 MiB (and refuses
            // more than 64 MiB).
            let advertised = nbd_get_block_size(handle, Int32(LIBNBD_SIZE_MAXIMUM))
            maximumPayload = advertised > 0 ? Int(min(advertised, 32 << 20)) : 32 << 20
            // The protocol allows powers of two up to 64 KiB; a server saying more (or something
            // else) could not be used for a superblock's sector without rewriting far more.
            let minimum = nbd_get_block_size(handle, Int32(LIBNBD_SIZE_MINIMUM))
            guard minimum <= 1 || (minimum <= 64 << 10 && minimum & (minimum - 1) == 0 && Int(minimum) <= maximumPayload) else {
                throw ExtentFSError("\(uri): the NBD server's minimum block size, \(minimum) bytes, is not a power of two up to 64 KiB and its largest command", errno: .notSupported)
            }
            minimumBlockBytes = max(Int(minimum), 1)
            socketCopy = fcntl(nbd_aio_get_fd(handle), F_DUPFD_CLOEXEC, 0)
            guard socketCopy >= 0 else { throw ExtentFSError("\(uri): \(Errno(rawValue: Glibc.errno))", errno: .ioError) }
            wakeDescriptor = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
            guard wakeDescriptor >= 0 else {
                Glibc.close(socketCopy)
                throw ExtentFSError("\(uri): eventfd: \(Errno(rawValue: Glibc.errno))", errno: .ioError)
            }
        } catch {
            nbd_close(handle)
            throw error
        }
        self.handle = handle
        driverStopped = Condition(stateLock)
        startDriver()
    }

    deinit {
        // The driver thread holds a reference while it runs: a connection nobody closed ends
        // here only after its driver stopped on its own, possibly on the driver thread itself.
        if !isClosed { pthread_detach(driver) }
        nbd_close(handle)
        Glibc.close(socketCopy)
        Glibc.close(wakeDescriptor)
    }

    /// Connects within `timeout`: libnbd's own nbd_connect_uri would wait for a stalled server
    /// for ever.
    private static func connect(_ handle: OpaquePointer, uri: String, timeout: Double) throws {
        func failed(_ what: String) -> ExtentFSError {
            ExtentFSError("cannot connect to \(uri): \(what)", errno: .ioError)
        }
        guard nbd_supports_uri(handle) == 1 else { throw failed("this libnbd was built without URI support") }
        _ = nbd_set_handle_name(handle, "extentfs")
        // libnbd zeroes every read buffer before the read, lest a program that ignores errors
        // use stale memory; we never use a buffer whose read failed (the engine zeroes a page
        // whose fill failed, readahead drops a failed chunk), and zeroing cost a pass over
        // every byte read.
        _ = nbd_set_pread_initialize(handle, false)
        // The URI is the user's own command line: let it name a TLS key or certificate file
        // (nbds://...?tls-psk-file=PATH), which libnbd refuses by default.
        _ = nbd_set_uri_allow_local_file(handle, true)
        guard nbd_aio_connect_uri(handle, uri) == 0 else { throw failed(lastError) }
        let deadline = NBDCompletion.monotonicSeconds() + timeout
        while nbd_aio_is_connecting(handle) == 1 {
            let socket = nbd_aio_get_fd(handle)
            guard socket >= 0 else { break }
            let left = deadline - NBDCompletion.monotonicSeconds()
            guard left > 0 else {
                // qemu-nbd (--shared=1) leaves a second client waiting.
                throw failed("no answer within \(formatSeconds(timeout)) (--nbd-timeout; a server that admits one client at a time leaves a second one waiting: is the export in use elsewhere?)")
            }
            let direction = nbd_aio_get_direction(handle)
            var descriptor = pollfd(fd: socket, events: pollEvents(direction), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(left * 1000 + 1, 60_000)))
            if ready < 0 && Glibc.errno != EINTR { throw failed("poll: \(Errno(rawValue: Glibc.errno))") }
            guard ready > 0 else { continue }
            guard notify(handle, descriptor.revents, direction: direction) != -1 else {
                let reason = lastError
                // nbdkit's limit filter and qemu-nbd (--shared=1) hang up on a second client.
                let hint = reason.contains("disconnected") ? " (a server that admits one client at a time hangs up on a second one: is the export in use elsewhere?)" : ""
                throw failed(reason + hint)
            }
        }
        guard nbd_aio_is_ready(handle) == 1 else { throw failed(lastError) }
    }

    // MARK: - Commands

    /// Runs the commands, all in flight at once, and returns when every one has finished;
    /// throws the first one's error. The buffers are libnbd's until then, also after a timeout;
    /// `keepAlive` (what owns them, if not the caller) lives until libnbd lets go of them.
    func perform(_ commands: [Command], keepAlive: AnyObject? = nil) throws {
        try checkUsable()
        let completion = NBDCompletion(commands: commands.count, keepAlive: keepAlive)
        submit(commands, completion)
        try wait(for: completion)
    }

    /// Sends the commands without waiting: `completion` (made for as many commands) counts them
    /// off. Their buffers are libnbd's until it has.
    func submit(_ commands: [Command], _ completion: NBDCompletion) {
        for command in commands {
            let cookie: Int64
            switch command {
            case .read(let buffer, let count, let offset):
                cookie = nbd_aio_pread(handle, buffer, count, offset, completion.callback(), 0)
            case .write(let buffer, let count, let offset):
                cookie = nbd_aio_pwrite(handle, buffer, count, offset, completion.callback(), 0)
            case .flush:
                cookie = nbd_aio_flush(handle, completion.callback(), 0)
            }
            if cookie == -1 {
                // Refused before it was sent (libnbd calls only the free callback): the
                // connection is gone, and the driver says why.
                let error = nbd_get_errno()
                completion.finish(error: error != 0 ? error : EIO)
            }
        }
        wakeDriver()
    }

    /// Waits for submitted commands, at most `timeout` (then the connection is given up);
    /// throws the first one's error.
    func wait(for completion: NBDCompletion) throws {
        if !completion.wait(seconds: timeout) {
            giveUp("the NBD server did not answer within \(formatSeconds(timeout)) (--nbd-timeout)")
            // The socket is shut down: libnbd fails what is in flight at once and lets go of the
            // buffers, which the caller may free as soon as we return.
            completion.waitForAll()
        }
        let error = completion.error
        guard error == 0 else { throw commandError(error) }
    }

    private func commandError(_ error: Int32) -> ExtentFSError {
        // A connection that died fails its commands with ENOTCONN (or refuses them, EINVAL):
        // say why it died rather than that.
        let connected = nbd_aio_is_closed(handle) == 0 && nbd_aio_is_dead(handle) == 0
        let reason = currentFailure
            ?? (connected ? "the NBD server answered \(Errno(rawValue: error))" : "the connection to the NBD server was lost")
        let code: Errno = error == ENOSPC || error == EDQUOT ? .noSpace : .ioError
        return ExtentFSError("\(uri): \(reason)", errno: code)
    }

    var currentFailure: String? { stateLock.withLock { failure } }

    /// Throws (EIO, and why) once the connection has been lost or given up.
    func checkUsable() throws {
        if let failure = currentFailure { throw ExtentFSError("\(uri): \(failure)", errno: .ioError) }
    }

    /// Ends the connection: libnbd fails every command in flight, and we every later one.
    func giveUp(_ reason: String) {
        stateLock.withLock { if failure == nil { failure = reason } }
        shutdown(socketCopy, Int32(SHUT_RDWR))
        wakeDriver()
    }

    private func wakeDriver() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeDescriptor, &one, 8)
    }

    // MARK: - The driver thread

    private func startDriver() {
        driverRunning = true
        let retained = Unmanaged.passRetained(self)
        pthread_create(&driver, nil, { argument in
            let connection = Unmanaged<NBDConnection>.fromOpaque(argument!).takeRetainedValue()
            connection.drive()
            return nil
        }, retained.toOpaque())
    }

    /// Polls the socket in the direction libnbd asks for, and the wake descriptor, and tells
    /// libnbd what is ready, until the connection is closed or dead.
    private func drive() {
        var lastReason = ""
        var descriptors = [pollfd(), pollfd(fd: wakeDescriptor, events: Int16(POLLIN), revents: 0)]
        while nbd_aio_is_closed(handle) == 0 && nbd_aio_is_dead(handle) == 0 {
            let socket = nbd_aio_get_fd(handle)
            guard socket >= 0 else { break }
            let direction = nbd_aio_get_direction(handle)
            // Waiting for neither (between states): only the wake descriptor, or a hang-up
            // would be reported with nothing to tell libnbd, again and again.
            descriptors[0] = pollfd(fd: direction == 0 ? -1 : socket, events: NBDConnection.pollEvents(direction), revents: 0)
            descriptors[1].revents = 0
            if poll(&descriptors, 2, -1) < 0 {
                if Glibc.errno == EINTR { continue }
                lastReason = "poll: \(Errno(rawValue: Glibc.errno))"
                break
            }
            if descriptors[1].revents != 0 {
                var count: UInt64 = 0
                _ = Glibc.read(wakeDescriptor, &count, 8)
            }
            // A command's send may have killed the connection meanwhile (on the caller's thread):
            // then libnbd would only complain that the connection is dead.
            guard nbd_aio_is_dead(handle) == 0 && nbd_aio_is_closed(handle) == 0 else { break }
            if NBDConnection.notify(handle, descriptors[0].revents, direction: direction) == -1 { lastReason = NBDConnection.lastError }
        }
        let closedByServer = nbd_aio_is_closed(handle) == 1
        stateLock.withLock {
            if failure == nil && !isClosed {
                failure = closedByServer ? "the NBD server closed the connection"
                    : "the connection to the NBD server was lost" + (lastReason.isEmpty ? "" : ": \(lastReason)")
            }
            driverRunning = false
            driverStopped.broadcast()
        }
    }

    /// Says goodbye to the server (NBD_CMD_DISC) and stops the driver, within `timeout`. Once
    /// nobody uses the connection any more; idempotent.
    func close() {
        let (alreadyClosed, running) = stateLock.withLock { () -> (Bool, Bool) in
            defer { isClosed = true }
            return (isClosed, driverRunning)
        }
        guard !alreadyClosed else { return }
        guard running else {
            pthread_join(driver, nil)
            return
        }
        if nbd_aio_in_flight(handle) != 0 || nbd_aio_disconnect(handle, 0) != 0 {
            shutdown(socketCopy, Int32(SHUT_RDWR))
        }
        wakeDriver()
        let deadline = NBDCompletion.monotonicSeconds() + timeout
        let stopped = stateLock.withLock { () -> Bool in
            while driverRunning {
                let left = deadline - NBDCompletion.monotonicSeconds()
                if left <= 0 { return false }
                driverStopped.wait(seconds: left)
            }
            return true
        }
        if !stopped {
            shutdown(socketCopy, Int32(SHUT_RDWR))
            wakeDriver()
        }
        pthread_join(driver, nil)
    }

    // MARK: - libnbd helpers

    /// libnbd's message for the last failed call on this thread.
    static var lastError: String {
        guard let message = nbd_get_error() else { return "unknown error" }
        return String(cString: message)
    }

    static func pollEvents(_ direction: UInt32) -> Int16 {
        var events: Int16 = 0
        if direction & UInt32(LIBNBD_AIO_DIRECTION_READ) != 0 { events |= Int16(POLLIN) }
        if direction & UInt32(LIBNBD_AIO_DIRECTION_WRITE) != 0 { events |= Int16(POLLOUT) }
        return events
    }

    /// Tells libnbd what poll found for the direction it was waiting in; -1 when that failed.
    /// A hung-up or failed socket goes to the side libnbd waits on, whose recv or send then
    /// fails and ends the connection (told to the other side, libnbd would only refuse the
    /// event, and poll would report the hang-up again at once, for ever).
    static func notify(_ handle: OpaquePointer, _ revents: Int16, direction: UInt32) -> Int32 {
        let trouble = revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0
        if direction & UInt32(LIBNBD_AIO_DIRECTION_READ) != 0 && (revents & Int16(POLLIN) != 0 || trouble) {
            return nbd_aio_notify_read(handle)
        }
        if direction & UInt32(LIBNBD_AIO_DIRECTION_WRITE) != 0 && (revents & Int16(POLLOUT) != 0 || trouble) {
            return nbd_aio_notify_write(handle)
        }
        return 0
    }
}

func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(seconds) s"
}
