import ArgumentParser
import SystemPackage
import ExtentFSFuse

#if canImport(Glibc)
import Glibc
#endif

/// A file a space command works on: opened once, and named in every error about it.
struct SpaceFile {
    let path: String
    let descriptor: FileDescriptor

    static func open(_ path: String, _ mode: FileDescriptor.AccessMode, options: FileDescriptor.OpenOptions = [],
                     permissions: FilePermissions? = nil) throws -> SpaceFile {
        do {
            let descriptor = try FileDescriptor.open(path, mode, options: options.union(.closeOnExec),
                                                     permissions: permissions)
            return SpaceFile(path: path, descriptor: descriptor)
        } catch let errno as Errno {
            throw FileError(path, errno)
        }
    }

    func close() {
        try? descriptor.close()
    }

    func status() throws -> stat {
        var st = stat()
        guard fstat(descriptor.rawValue, &st) == 0 else { throw FileError(path, Errno(rawValue: errno)) }
        return st
    }

    /// Throws the plain message for files elsewhere, before any extentfs ioctl reaches them: an
    /// ioctl number of ours could mean something else to another filesystem.
    func requireExtentFSMount() throws {
        guard try isOnExtentFSMount(device: status().st_dev) else { throw notOnExtentFS(path) }
    }

    /// An extentfs ioctl on this file; `argument` is what extentfs_ioctl.h says it is.
    func ioctl<Argument>(_ command: UInt32, _ argument: inout Argument) throws {
        // ENOTTY is also what a daemon too old to know the command answers.
        guard try ioctlIfKnown(command, &argument) else { throw notOnExtentFS(path) }
    }

    /// As `ioctl`, but returns false where the file answers ENOTTY (not extentfs, or a daemon
    /// that does not know `command`), so that the caller may ask an older command instead.
    func ioctlIfKnown<Argument>(_ command: UInt32, _ argument: inout Argument) throws -> Bool {
        let result = withUnsafeMutableBytes(of: &argument) { bytes in
            Glibc.ioctl(descriptor.rawValue, UInt(command), bytes.baseAddress!)
        }
        guard result == 0 else {
            let error = Errno(rawValue: errno)
            if error == .inappropriateIOCTLForDevice { return false }
            throw FileError(path, error)
        }
        return true
    }
}

/// A call on a named file failed: "PATH: strerror".
struct FileError: Error, CustomStringConvertible {
    var path: String
    var errno: Errno
    init(_ path: String, _ errno: Errno) {
        self.path = path
        self.errno = errno
    }
    var description: String { "\(path): \(errno)" }
}

func notOnExtentFS(_ path: String) -> CommandFailure {
    CommandFailure("\(path) is not on an extentfs mount")
}

/// Whether st_dev `device` is that of an extentfs mount (any of them: bind mounts share it).
func isOnExtentFSMount(device: UInt) throws -> Bool {
    // glibc's major() and minor(), macros Swift cannot call.
    let major = ((device >> 8) & 0xfff) | ((device >> 32) & ~0xfff)
    let minor = (device & 0xff) | ((device >> 12) & ~0xff)
    let name = "\(major):\(minor)"
    return try MountEntry.all().contains { $0.device == name && $0.isExtentFS }
}

/// Runs one space command: any error is one line on stderr and exit status `errorStatus`.
func runningSpaceCommand(_ name: String, errorStatus: Int32 = 1, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        printError(name, errorMessage(error))
        throw ExitCode(errorStatus)
    }
}
