import CFuse
import ExtentFS
import Logging
import Synchronization

/// What every request handler reaches through `fuse_req_userdata`: the engine and the session.
final class Server {
    let fileSystem: FileSystem
    /// Set once the session exists; the kernel-cache invalidation calls need it.
    var session: OpaquePointer?
    /// st_dev of the mount, set once it is live: a clone or dedupe source with another st_dev
    /// is on another filesystem (EXDEV).
    var mountDevice: UInt?
    /// Where each open directory's readdir stops (DirectoryStreams.swift).
    let directoryStreams = DirectoryStreams()
    /// Where space operations run, off the loop threads (SpaceWorkers.swift).
    let spaceWorkers = SpaceWorkers(threadCount: 4)
    /// Where O_DIRECT writes drop the kernel's stale pages and reply (DirectWriteCompletion.swift).
    let directWriteWorkers = SpaceWorkers(threadCount: 2)
    /// The data of every size notification: it must be unreadable (KernelSize.swift).
    let unreadablePage: UnsafeMutableRawPointer? = cfuse_unreadable_page()
    /// Set once the kernel refused FUSE_NOTIFY_PRUNE (KernelInodePruning.swift).
    let pruneUnsupported = Atomic<Bool>(false)

    init(fileSystem: FileSystem) {
        self.fileSystem = fileSystem
    }

    static func of(_ req: fuse_req_t?) -> Server {
        Unmanaged<Server>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
    }
}

let log = Logger(label: "extentfs.fuse")

/// Seconds the kernel may cache names and attributes before asking again.
let attributeTimeout = 1.0
let entryTimeout = 1.0
/// The largest READ or WRITE payload the kernel sends us.
let maxTransferBytes: UInt32 = 1 << 20
