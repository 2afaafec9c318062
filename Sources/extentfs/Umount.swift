import ArgumentParser
import SystemPackage
import ExtentFS
import ExtentFSFuse

#if canImport(Glibc)
import Glibc
#endif

struct Umount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Unmount an extentfs mount and wait until its image is fully written and released.")

    @Argument(help: "The directory the image is mounted on.")
    var mountpoint: String

    /// How long the daemon may take to write everything back after the kernel lets go.
    static let releaseTimeout: Double = 120

    func run() throws {
        try reportingErrors("umount") {
            let path = absolutePathNotFollowingLast(mountpoint)
            guard let entry = try MountEntry.current(at: path), entry.isExtentFS else {
                throw CommandFailure("\(path) is not an extentfs mount")
            }
            // Opened before the unmount: afterwards nothing else names the image for us.
            let image = try openLockedFile(entry.source)
            defer { try? image.close() }
            try detach(path)
            // Still mounted elsewhere (a bind mount, or the place it was bound from: the same
            // filesystem, same st_dev): the daemon keeps serving it, so there is nothing to wait
            // for, as umount(8) does not wait (xfstests generic/306 waited 120 s here).
            if try MountEntry.all().contains(where: { $0.isExtentFS && $0.device == entry.device }) { return }
            try waitForRelease(image, path: entry.source)
            if let lost = UnmountReport.take(forImage: entry.source) { throw CommandFailure(lost) }
        }
    }

    /// What the daemon holds an flock on while it has the image: the image file or device
    /// itself, or for an NBD export the lock file named after its URI.
    private func openLockedFile(_ source: String) throws -> FileDescriptor {
        let path = StoreLocation.isNBD(source) ? NBDLockFile.path(for: source) : source
        do {
            return try FileDescriptor.open(path, .readOnly, options: .closeOnExec)
        } catch let errno as Errno {
            throw CommandFailure("image \(source): \(path): \(errno)")
        }
    }

    /// root unmounts directly; anyone else goes through the setuid helper.
    private func detach(_ path: String) throws {
        if geteuid() == 0 {
            guard umount2(path, 0) == 0 else { throw CommandFailure("\(path): \(Errno(rawValue: errno))") }
        } else {
            try runFusermount(path)
        }
    }

    private func runFusermount(_ path: String) throws {
        var pid: pid_t = 0
        let result = withCArguments(["fusermount3", "-u", path]) { argv in
            posix_spawnp(&pid, "fusermount3", nil, nil, argv, environ)
        }
        guard result == 0 else { throw CommandFailure("cannot run fusermount3: \(Errno(rawValue: result))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else { throw CommandFailure("fusermount3 -u \(path) failed") }
    }

    /// The daemon holds an exclusive flock on the image (or its NBD lock file) until everything
    /// is in it.
    private func waitForRelease(_ image: FileDescriptor, path: String) throws {
        let deadline = monotonicSeconds() + Self.releaseTimeout
        while flock(image.rawValue, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw CommandFailure("image \(path): \(Errno(rawValue: errno))")
            }
            guard monotonicSeconds() < deadline else {
                throw CommandFailure("unmounted, but the daemon still holds \(path) after \(Int(Self.releaseTimeout)) s")
            }
            usleep(50_000)
        }
        _ = flock(image.rawValue, LOCK_UN)
    }
}

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
