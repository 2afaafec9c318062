import ExtentFS
import ExtentFSFuse

#if canImport(Glibc)
import Glibc
#endif

/// umount(8) returns as soon as the kernel lets go of a FUSE mount, as for every FUSE
/// filesystem; the daemon then writes back and checkpoints, holding the image's lock for a moment
/// more. (`extentfs umount` waits for that; umount(8) of util-linux 2.38 never runs the
/// umount.fuse.extentfs helper that would.) So that `umount DIR; mount DIR` and `umount DIR;
/// fsck IMAGE` work, mount and fsck wait for such a daemon: while the image is locked and no mount
/// of it is listed, up to `Umount.releaseTimeout`. An image that is mounted fails at once.
func waitingForFinishingDaemon<R>(image: String, _ body: () throws -> R) throws -> R {
    let deadline = monotonicSeconds() + Umount.releaseTimeout
    while true {
        do {
            return try body()
        } catch let error as ExtentFSError where error.errno == .resourceBusy {
            guard !isMounted(image), monotonicSeconds() < deadline else { throw error }
            usleep(50_000)
        }
    }
}

private func isMounted(_ image: String) -> Bool {
    let absolute = canonicalImage(image)
    // Unreadable mountinfo: say mounted, and fail at once as before.
    guard let entries = try? MountEntry.all() else { return true }
    return entries.contains { $0.isExtentFS && $0.source == absolute }
}
