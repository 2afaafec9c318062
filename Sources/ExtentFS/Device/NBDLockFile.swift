import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The single-writer rule for an NBD export, as far as one host can keep it. NBD has no locks,
/// so an flock on a file named after the URI stands in for the flock on an image file: a second
/// mount, or an fsck, of the same URI on this host is refused, and `extentfs umount` waits on
/// it to learn that the daemon has let go. Another host, or the same export under another URI,
/// is not seen: the server has to admit one client at a time for that (README).
public enum NBDLockFile {
    /// /run/extentfs for root, a directory of the user's own otherwise (where unmount reports go).
    public static func path(for uri: String) -> String {
        let directory = geteuid() == 0 ? "/run/extentfs" : "/tmp/extentfs-\(geteuid())"
        return "\(directory)/nbd-\(fingerprint(uri)).lock"
    }

    /// FNV-1a of the URI, in hex: a file name for any URI, the same in every process.
    public static func fingerprint(_ uri: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in uri.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Takes the lock without waiting; the descriptor holds it until closed.
    static func acquire(for uri: String, _ mode: BackingStore.LockMode) throws -> FileDescriptor {
        let path = path(for: uri)
        let directory = String(path[..<path.lastIndex(of: "/")!])
        if mkdir(directory, 0o700) != 0 && Glibc.errno != EEXIST {
            throw ExtentFSError("cannot lock \(uri): cannot create \(directory): \(Errno(rawValue: Glibc.errno))", errno: .ioError)
        }
        let file: FileDescriptor
        do {
            file = try FileDescriptor.open(FilePath(path), .readWrite, options: [.create, .closeOnExec],
                                           permissions: [.ownerReadWrite])
        } catch let error as Errno {
            throw ExtentFSError("cannot lock \(uri): \(path): \(error)", errno: error)
        }
        if flock(file.rawValue, (mode == .exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
            let error = Errno(rawValue: Glibc.errno)
            try? file.close()
            if error == .wouldBlock {
                throw ExtentFSError("\(uri) is in use: it is mounted or being checked by another extentfs process on this host", errno: .resourceBusy)
            }
            throw ExtentFSError("cannot lock \(uri): \(error)", errno: error)
        }
        return file
    }
}
