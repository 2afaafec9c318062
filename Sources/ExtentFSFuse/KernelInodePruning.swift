import CFuse
import ExtentFS
import ExtentFSCore
import SystemPackage
import Synchronization

extension Server {
    /// The most inode numbers one notification carries (8 KiB of them).
    static let pruneBatch = 1024

    /// Asks the kernel to let go of `inodes` it no longer uses (FUSE_NOTIFY_PRUNE), so that the
    /// engine can drop the lookup counts it keeps for them (FileSystem.setKernelInodePruner). A
    /// kernel without the notification (before Linux 6.18) is told once, then never again: the
    /// counts are then bounded by what the kernel caches, as before.
    func pruneKernelInodes(_ inodes: [InodeNumber]) {
        guard let session, !pruneUnsupported.load(ordering: .relaxed) else { return }
        var start = 0
        while start < inodes.count {
            let batch = Array(inodes[start..<min(inodes.count, start + Self.pruneBatch)])
            let result = batch.withUnsafeBufferPointer { cfuse_notify_prune(session, $0.baseAddress, UInt32($0.count)) }
            switch -result {
            case 0:
                break
            case EINVAL, ENOSYS:
                pruneUnsupported.store(true, ordering: .relaxed)
                log.notice("the kernel does not take FUSE_NOTIFY_PRUNE (Linux 6.18 and later do): the lookup counts of inodes the daemon let go are bounded by the kernel's own cache only")
                return
            case ENOENT, ENODEV:
                return  // the connection is going away
            default:
                log.warning("asking the kernel to let go of \(batch.count) inodes failed: \(Errno(rawValue: -result))")
                return
            }
            start += batch.count
        }
    }
}
