import ExtentFS
import SystemPackage

/// `mount -o remount,ro|rw`: FUSE does not tell the daemon. The kernel changes the superblock's
/// read-only flag itself and from then on refuses (remount,ro) or lets through (remount,rw)
/// every change, except the extentfs ioctls, which reach the daemon whatever the flags. So:
///
/// - a volume mounted ro whose engine refuses a change the kernel let through has been remounted
///   rw: the engine is made writable and the request runs again;
/// - a dedupe through a read-only descriptor (the one change a read-only mount lets through: the
///   kernel allows it to the owner) is refused with EROFS while the kernel has the mount ro, as
///   FIDEDUPERANGE is.
///
/// Both read the superblock's flag from /proc/self/mountinfo, only on those rare paths.
extension Server {
    /// Runs `body`; when a read-only engine refuses it and the kernel has the mount read-write
    /// now, makes the engine writable and runs it once more. EROFS comes out of `body` before
    /// anything changed, so running it again is safe.
    func followingRemount<R>(_ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch Errno.readOnlyFileSystem where fileSystem.isReadOnly && kernelMountIsReadOnly() == false {
            try fileSystem.makeWritable()
            return try body()
        }
    }

    /// Whether the kernel has the filesystem read-only now; nil when the mount is not found.
    func kernelMountIsReadOnly() -> Bool? {
        guard let mountDevice, let entries = try? MountEntry.all() else { return nil }
        let entry = entries.last { entry in
            let numbers = entry.device.split(separator: ":")
            guard numbers.count == 2, let major = UInt(numbers[0]), let minor = UInt(numbers[1]) else { return false }
            return deviceNumber(major: major, minor: minor) == mountDevice
        }
        guard let entry else { return nil }
        return entry.superOptions.contains("ro")
    }
}
