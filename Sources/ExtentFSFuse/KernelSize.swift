import CFuse
import ExtentFS
import ExtentFSCore
import SystemPackage

/// The kernel keeps its own copy of each file's size (i_size). Without the writeback cache it
/// trusts our GETATTR replies, but drops one whenever a WRITE to the file completed while it was
/// on its way (fuse_change_attributes' attr_version check), and it never asks at all before an
/// O_APPEND write or a page fault. Work the kernel sends us itself (write, truncate, fallocate,
/// copy_file_range) updates i_size on its side; the ioctls do not. So:
///
/// - after an ioctl that can grow a file (insert, clone), `raiseKernelSize` tells the kernel
///   before the reply: otherwise an O_APPEND write would land on the moved data
///   and a read or mmap would stop at the old end;
/// - nothing a daemon can send lowers i_size, so after a collapse the caller asks the kernel
///   for a SETATTR, whose reply it always applies: `extentfs_refresh_size` in extentfs_ioctl.h,
///   which the preload library and the CLI call.
///
/// Between the engine's change and the notification, a GETATTR can already report the new size,
/// as it can during any extending write on FUSE (the kernel raises i_size only when the WRITE
/// returns); a fault in between is SIGBUS. Holding GETATTR back would cost more than it saves:
/// the notification can wait on a WRITE, which needs a loop thread a held GETATTR would occupy,
/// and reporting the old size instead misleads a caller that changed the size meanwhile.
///
/// What this leaves: a truncate that lands between a growing ioctl reading the file's size and
/// the kernel taking it leaves the kernel's size larger until its next GETATTR. Holding truncates
/// off meanwhile is no way out: telling the kernel waits for the last page's lock, which an mmap
/// write-back held up by that very truncate (the kernel's FUSE_NOWRITE) may hold.
extension Server {
    /// Raises the kernel's i_size to the file's size; never lowers it, and leaves the kernel's
    /// page cache as it is. Call with no engine lock held: the notification waits for the page
    /// lock of the file's last page, which a WRITE we have yet to serve may hold.
    func raiseKernelSize(_ ino: InodeNumber) {
        guard let session, let unreadablePage else { return }
        guard let size = try? fileSystem.getattr(ino).size, size > 0, size <= UInt64(Int64.max) else { return }
        let result = cfuse_raise_kernel_size(session, ino, size, unreadablePage)
        switch -result {
        case 0, ENOENT:
            break  // taken, or the kernel holds no inode for it and so no size either
        default:
            log.warning("cannot tell the kernel the size of inode \(ino): \(Errno(rawValue: -result))")
        }
    }
}
