import CFuse
import CFuseTransport
import ExtentFSCore
import Glibc
import ExtentFS
import SystemPackage

/// A mount that could not be set up, one line for the user.
public struct FuseSessionError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Mounts `fileSystem` on `mountpoint` and serves kernel requests until the mount goes away
/// (umount, fusermount3 -u) or SIGINT/SIGTERM/SIGHUP arrives. `onReady` runs once, as soon as
/// the mount is live. Owns the engine's lifetime from here on: whatever happens, the engine is
/// unmounted (everything written into the image) before this returns.
public func serve(fileSystem: FileSystem, mountpoint: String, options: FuseMountOptions,
                  onReady: () -> Void) throws {
    let server = Server(fileSystem: fileSystem)
    let loopResult: Int32
    do {
        loopResult = try withExtendedLifetime(server) {
            try runSession(server, mountpoint: mountpoint, options: options, onReady: onReady)
        }
    } catch {
        try? fileSystem.unmount()
        throw error
    }
    try fileSystem.unmount()
    if loopResult < 0 {
        throw FuseSessionError("session loop failed: \(Errno(rawValue: -loopResult))")
    }
}

/// Returns libfuse's loop result: 0 after an unmount, a signal number, or -errno.
private func runSession(_ server: Server, mountpoint: String, options: FuseMountOptions,
                        onReady: () -> Void) throws -> Int32 {
    try checkMountpoint(mountpoint)
    let listedMountpoint = canonicalMountpoint(mountpoint)
    var operations = lowLevelOperations()
    guard let session = newSession(&operations, options: options, userdata: Unmanaged.passUnretained(server).toOpaque())
    else {
        throw FuseSessionError("invalid mount options \"\(options.optionString)\"")
    }
    defer { fuse_session_destroy(session) }
    // Space operations and direct-write replies still running reply through the session and
    // use the engine, so they end first (after the unmount). One waiting on the kernel for a WRITE would wait forever: no
    // loop thread serves it now, and its notification holds the device open, so that closing
    // it does not end the connection. Severing it does.
    defer {
        server.spaceWorkers.finish { abortKernelConnection(device: server.mountDevice) }
        server.directWriteWorkers.finish { abortKernelConnection(device: server.mountDevice) }
    }

    guard fuse_set_signal_handlers(session) == 0 else {
        throw FuseSessionError("cannot install signal handlers")
    }
    defer { fuse_remove_signal_handlers(session) }

    guard fuse_session_mount(session, mountpoint) == 0 else {
        throw FuseSessionError("cannot mount on \(mountpoint)")
    }
    defer { fuse_session_unmount(session) }
    let transportResult = fuse_transport_install(session)
    if transportResult != 0 {
        // Requests are still served; the kernel goes on asking for security.capability before
        // every write, and statx shows no birth time.
        log.error("cannot install the request transport: \(Errno(rawValue: -transportResult))")
    }
    if transportResult == 0 { installBirthTimeStatx(server) }

    server.session = session
    // The flusher asks through the session; it stops asking before the session goes (this
    // runs before the defers above: unmount, destroy).
    server.fileSystem.setKernelInodePruner { [weak server] inodes in server?.pruneKernelInodes(inodes) }
    defer { server.fileSystem.setKernelInodePruner(nil) }
    // From mountinfo, not stat(): nothing serves requests yet, so a stat of the mountpoint
    // would wait forever for our own GETATTR reply.
    server.mountDevice = mountedDevice(at: listedMountpoint)
    if let device = server.mountDevice {
        raiseKernelReadahead(device: device, to: maxTransferBytes)
    } else {
        log.error("\(listedMountpoint) is missing from /proc/self/mountinfo; clone and dedupe will answer EXDEV")
    }
    onReady()
    return cfuse_session_loop_mt(session, UInt32(max(1, options.maxThreads)))
}

/// libfuse copies the operations table and parses the options into the session.
private func newSession(_ operations: inout fuse_lowlevel_ops, options: FuseMountOptions,
                        userdata: UnsafeMutableRawPointer) -> OpaquePointer? {
    let arguments = ["extentfs", "-o", options.optionString]
    var strings = arguments.map { argument -> UnsafeMutablePointer<CChar>? in strdup(argument) }
    strings.append(nil)
    defer { strings.forEach { free($0) } }
    return strings.withUnsafeMutableBufferPointer { argv in
        var args = cfuse_args_init(Int32(argv.count - 1), argv.baseAddress)
        defer { fuse_opt_free_args(&args) }
        return fuse_session_new(&args, &operations, MemoryLayout<fuse_lowlevel_ops>.size, userdata)
    }
}

/// Throws unless `mountpoint` is an existing directory. serve() checks too; callers may check
/// earlier so a bad mountpoint fails before the engine loads anything. (libfuse's own complaint
/// would only reach the daemon's log.)
public func checkMountpoint(_ mountpoint: String) throws {
    var st = stat()
    guard stat(mountpoint, &st) == 0 else {
        throw FuseSessionError("mountpoint \(mountpoint): \(Errno(rawValue: errno))")
    }
    guard FileType(mode: st.st_mode) == .directory else {
        throw FuseSessionError("mountpoint \(mountpoint) is not a directory")
    }
}

/// Ends the mount's kernel connection through fusectl (/sys/fs/fuse/connections/<minor>/abort;
/// fusectl is mounted if it is not): every request waiting on it fails with ENOTCONN.
private func abortKernelConnection(device: UInt?) {
    guard let device else { return log.error("space operations are stuck at shutdown and the mount's device is unknown") }
    let minor = deviceMinor(UInt64(device))
    let connections = "/sys/fs/fuse/connections"
    if access("\(connections)/\(minor)", F_OK) != 0 {
        _ = mount("fusectl", connections, "fusectl", 0, nil)
    }
    let fd = open("\(connections)/\(minor)/abort", O_WRONLY)
    guard fd >= 0, write(fd, "1", 1) == 1 else {
        if fd >= 0 { close(fd) }
        return log.error("space operations are stuck at shutdown and the kernel connection cannot be ended: \(Errno(rawValue: errno))")
    }
    close(fd)
    log.warning("space operations were still waiting on the kernel at shutdown; ended the kernel connection")
}
