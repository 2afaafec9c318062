import CFuse
import ExtentFS
import Glibc
import SystemPackage

/// Resolves a descriptor number in the process that sent `req` (the source of a clone or
/// dedupe) to one of our inodes, with the checks FICLONERANGE makes on its source: the
/// descriptor is open (else EBADF), on this mount (else EXDEV), a regular file (else EISDIR or
/// EINVAL) and open for reading (else EBADF). That it is open for reading is also the caller's
/// permission to read it: the kernel checked the mode bits at open (default_permissions).
///
/// It goes through /proc/<pid>/fd/<n>: stat() follows the magic link to the open file itself,
/// whatever it is called now, even unlinked. stat may send us a GETATTR, which another loop
/// thread serves. The link is never opened: that would be a new open with the daemon's rights,
/// not a look at the caller's. /proc/<pid>/fdinfo/<n> gives the flags it was opened with.
///
/// The caller's thread is blocked in its ioctl meanwhile, so the pid stays its own; another
/// thread of the caller could still close or replace the descriptor between these steps, a
/// window the kernel, which holds a reference to the file, does not have.
func resolveCallerDescriptor(_ descriptor: Int64, of req: fuse_req_t?, server: Server) throws -> InodeNumber {
    let pid = fuse_req_ctx(req)?.pointee.pid ?? 0
    guard pid > 0 else {
        // The kernel sends 0 when the caller is in a pid namespace the daemon cannot see into.
        log.warning("a clone or dedupe came from a process with no pid in the daemon's namespace")
        throw Errno.notPermitted
    }
    guard (0...Int64(Int32.max)).contains(descriptor) else { throw Errno.badFileDescriptor }

    var st = stat()
    guard stat("/proc/\(pid)/fd/\(descriptor)", &st) == 0 else {
        switch errno {
        case ENOENT:
            throw Errno.badFileDescriptor
        case EACCES, EPERM:
            log.warning("cannot inspect descriptors of process \(pid): the daemon may not trace it")
            throw Errno.notPermitted
        default:
            throw Errno(rawValue: errno)
        }
    }
    guard let mountDevice = server.mountDevice, st.st_dev == mountDevice else { throw Errno.improperLink }
    switch FileType(mode: st.st_mode) {
    case .regular: break
    case .directory: throw Errno.isDirectory
    default: throw Errno.invalidArgument
    }
    guard try openFlags(of: descriptor, in: pid).isReadable else { throw Errno.badFileDescriptor }
    // The adapter answers getattr with the engine's inode number as st_ino.
    return InodeNumber(st.st_ino)
}

/// The "flags:" line of /proc/<pid>/fdinfo/<n>, octal.
private func openFlags(of descriptor: Int64, in pid: pid_t) throws -> OpenFlags {
    let text: String
    do {
        text = try readProcFile("/proc/\(pid)/fdinfo/\(descriptor)")
    } catch Errno.noSuchFileOrDirectory {
        throw Errno.badFileDescriptor  // closed since the stat
    }
    for line in text.split(separator: "\n") where line.hasPrefix("flags:") {
        let digits = line.dropFirst("flags:".count).drop { $0 == " " || $0 == "\t" }
        if let flags = UInt32(digits, radix: 8) { return OpenFlags(rawValue: Int32(bitPattern: flags)) }
    }
    log.error("no flags in /proc/\(pid)/fdinfo/\(descriptor)")
    throw Errno.ioError
}

