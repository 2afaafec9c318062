import CFuse
import ExtentFS
import ExtentFSCore
import Glibc
import SystemPackage

/// Runs `body` with the inode of a descriptor number in the thread that sent `req` (the source
/// of a clone or dedupe), after the checks FICLONERANGE makes on its source: the descriptor is
/// open (else EBADF), on this mount (else EXDEV), a regular file (else EISDIR or EINVAL) and
/// open for reading (else EBADF; an O_PATH descriptor is not).
///
/// The descriptor is resolved once: pidfd_getfd gives us a descriptor of our own for the very
/// open file the caller's descriptor refers to at that moment, and every check is made on that
/// one file (fstat, fcntl). Looking twice by number, as /proc/<pid>/fd/<n> and
/// /proc/<pid>/fdinfo/<n> did, let another thread of the caller swap the descriptor in between
/// (dup2 in a loop): an O_PATH descriptor of a file it may not read passed the first look, a
/// readable descriptor of its own the second, and the unreadable file's blocks were cloned into
/// the caller's file (or compared with it, by dedupe). Our copy stays open until `body` is done,
/// so the source cannot be released under the operation either; closing it sends the usual
/// FLUSH, which a loop thread serves.
///
/// The caller's thread is blocked in its ioctl meanwhile (the kernel does not let a task whose
/// request the daemon has read go before the reply), so its thread id stays its own.
func withCallerSource<R>(_ descriptor: Int64, of req: fuse_req_t?, server: Server,
                         _ body: (InodeNumber) throws -> R) throws -> R {
    let tid = fuse_req_ctx(req)?.pointee.pid ?? 0
    guard tid > 0 else {
        // The kernel sends 0 when the caller is in a pid namespace the daemon cannot see into.
        log.warning("a clone or dedupe came from a process with no pid in the daemon's namespace")
        throw Errno.notPermitted
    }
    guard (0...Int64(Int32.max)).contains(descriptor) else { throw Errno.badFileDescriptor }
    let source = try takeCallerDescriptor(Int32(descriptor), of: tid)
    defer { close(source) }

    var st = stat()
    guard fstat(source, &st) == 0 else { throw Errno(rawValue: errno) }
    guard let mountDevice = server.mountDevice, st.st_dev == mountDevice else { throw Errno.improperLink }
    switch FileType(mode: st.st_mode) {
    case .regular: break
    case .directory: throw Errno.isDirectory
    default: throw Errno.invalidArgument
    }
    let openFlags = fcntl(source, F_GETFL)
    guard openFlags >= 0 else { throw Errno(rawValue: errno) }
    // The check that counts, as in the kernel: the file is open for reading, so the caller was
    // allowed to read it when it opened it (the kernel checked the mode bits then:
    // default_permissions).
    guard OpenFlags(rawValue: openFlags).isReadable else { throw Errno.badFileDescriptor }
    // A second line only: whoever may not read the file by its mode bits and ACL now does not
    // get its blocks, even through a descriptor that was opened for it earlier or handed over.
    guard try server.fileSystem.mayRead(InodeNumber(st.st_ino), by: caller(req)) else { throw Errno.permissionDenied }
    // The adapter answers getattr with the engine's inode number as st_ino.
    return try body(InodeNumber(st.st_ino))
}

/// Our own descriptor for the open file behind descriptor `descriptor` of thread `tid`.
/// Never falls back on /proc: that is the race this replaces.
private func takeCallerDescriptor(_ descriptor: Int32, of tid: pid_t) throws -> Int32 {
    let result = cfuse_take_thread_descriptor(tid, descriptor)
    guard result < 0 else { return result }
    let error = Errno(rawValue: -result)
    switch error {
    case .badFileDescriptor:
        throw Errno.badFileDescriptor
    case .noSuchProcess:
        throw Errno.badFileDescriptor  // the thread is gone, and its descriptors with it
    case .notPermitted, .permissionDenied:
        log.warning("cannot take descriptors of thread \(tid): the daemon may not trace it (\(error))")
        throw Errno.notPermitted
    case .noFunction:
        log.error("this kernel has no pidfd_getfd (Linux 5.6): clone and dedupe need it")
        throw Errno.notSupported
    default:
        throw error
    }
}
