import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// What a name the user gives for an image means: an NBD URI (`nbd://host[:port]/export`,
/// `nbds://...` with TLS, `nbd+unix:///export?socket=PATH`, `nbd+vsock://...`, as libnbd's
/// nbd_connect_uri reads them) or a path to a regular file or block device.
public enum StoreLocation {
    /// The URI schemes libnbd connects to.
    static let nbdSchemes: Set<String> = ["nbd", "nbds", "nbd+unix", "nbds+unix", "nbd+vsock", "nbds+vsock"]

    public static func isNBD(_ location: String) -> Bool {
        guard let colon = location.firstIndex(of: ":") else { return false }
        return nbdSchemes.contains(location[..<colon].lowercased()) && location[colon...].hasPrefix("://")
    }

    /// Opens the backend the location names. Paths: a regular file or a block device.
    static func openBackend(_ location: String, writable: Bool, options: StoreOptions) throws -> any StoreBackend {
        if isNBD(location) {
            return try NBDStore(uri: location, writable: writable, timeout: options.nbdTimeout)
        }
        let descriptor = try DescriptorIO.open(location, writable: writable)
        var info = stat()
        guard fstat(descriptor.rawValue, &info) == 0 else {
            let error = Errno(rawValue: Glibc.errno)
            try? descriptor.close()
            throw ExtentFSError("cannot stat \(location): \(error)", errno: error)
        }
        switch info.st_mode & S_IFMT {
        case S_IFBLK:
            return try BlockDeviceStore(path: location, descriptor: descriptor)
        case S_IFREG:
            return FileStore(path: location, descriptor: descriptor, size: UInt64(info.st_size))
        default:
            try? descriptor.close()
            throw ExtentFSError("\(location) is neither a regular file nor a block device", errno: .invalidArgument)
        }
    }
}
