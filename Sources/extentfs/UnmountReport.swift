import ExtentFS
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// How `extentfs umount` learns that the daemon's last commit failed: the engine writes one line
/// to this file before it lets go of the image (MountOptions.unmountReportPath), and umount,
/// which waits for the image to be let go, reads it, says it and exits 1. Named by the image's
/// device and inode, so both sides find it from the image alone; in /run/extentfs for root, in a
/// directory of the user's own otherwise.
enum UnmountReport {
    static func path(forImage image: String) -> String? {
        let directory = geteuid() == 0 ? "/run/extentfs" : "/tmp/extentfs-\(geteuid())"
        // An NBD export has no device and inode here: its URI names it, as in the mount table.
        if StoreLocation.isNBD(image) {
            if mkdir(directory, 0o700) != 0 && errno != EEXIST { return nil }
            return "\(directory)/unmount-nbd-\(NBDLockFile.fingerprint(image))"
        }
        var info = stat()
        guard stat(image, &info) == 0 else { return nil }
        if mkdir(directory, 0o700) != 0 && errno != EEXIST { return nil }
        return "\(directory)/unmount-\(info.st_dev)-\(info.st_ino)"
    }

    /// The report a failed unmount left, removed as it is read.
    static func take(forImage image: String) -> String? {
        guard let path = path(forImage: image),
              let file = try? FileDescriptor.open(FilePath(path), .readOnly, options: .closeOnExec) else { return nil }
        defer {
            try? file.close()
            unlink(path)
        }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count = (try? bytes.withUnsafeMutableBytes { try file.read(into: $0) }) ?? 0
        var text = String(decoding: bytes[0..<count], as: UTF8.self)
        while text.last?.isWhitespace == true { text.removeLast() }
        return text.isEmpty ? "the daemon's last commit failed" : text
    }
}
