import ExtentFSCore
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// mkfs and fsck: whole-volume operations that need no mount.
public enum Volume {
    /// Smallest volume: the superblock area plus room for data and checkpoints.
    static let minimumBlocks: UInt64 = 128

    public static func format(image: String, options: FormatOptions) throws {
        let blockSize = options.blockSize
        guard Superblock.isValidLabel(options.label) else {
            throw ExtentFSError("the label is \(options.label.count) bytes or holds a NUL; a label is at most \(Superblock.maxLabelBytes) bytes, no NUL", errno: .invalidArgument)
        }
        if let uuid = options.uuid, uuid.count != 16 {
            throw ExtentFSError("a UUID is 16 bytes, not \(uuid.count)", errno: .invalidArgument)
        }
        guard blockSize >= 512, blockSize <= 65536, blockSize & (blockSize - 1) == 0 else {
            throw ExtentFSError("block size \(blockSize) is not a power of two from 512 to 65536", errno: .invalidArgument)
        }
        if !StoreLocation.isNBD(image), access(image, F_OK) != 0 {
            guard options.size != nil else {
                throw ExtentFSError("\(image) does not exist; give --size to create it", errno: .noSuchFileOrDirectory)
            }
            do {
                // The image holds every file's bytes, whatever their modes inside: its owner only.
                let created = try FileDescriptor.open(FilePath(image), .writeOnly, options: [.create, .exclusiveCreate], permissions: [.ownerReadWrite])
                try created.close()
            } catch let error as Errno {
                throw ExtentFSError("cannot create \(image): \(error)", errno: error)
            }
        }
        let store = try BackingStore(path: image, writable: true, options: options.store)
        // As mkfs.xfs refuses blocks smaller than the device's sectors: every block written
        // would be a read-modify-write of the server's unit. (A volume made elsewhere still
        // mounts on such a server.)
        guard blockSize >= store.smallestUnitBytes else {
            throw ExtentFSError("block size \(blockSize) is smaller than the smallest unit \(image) takes (\(store.smallestUnitBytes) bytes: the NBD server's minimum block size); use --block-size \(store.smallestUnitBytes) or more", errno: .invalidArgument)
        }
        try store.lock(.exclusive)
        if !options.force, store.size >= Superblock.reservedBytes {
            for offset in Superblock.slotOffsets {
                if case .notExtentFS = Superblock.decode(try store.read(Superblock.encodedSize, at: offset)) { continue }
                throw ExtentFSError("\(image) already holds an extentfs filesystem; use --force to overwrite it", errno: .fileExists)
            }
        }
        var size = store.size
        if let requested = options.size {
            if store.isResizable {
                try store.setSize(requested)
            } else {
                guard requested <= store.size else {
                    throw ExtentFSError("--size \(requested) is larger than the device (\(store.size) bytes)", errno: .invalidArgument)
                }
            }
            size = requested
        }
        let blockCount = size / UInt64(blockSize)
        var superblock = Superblock(blockSize: UInt32(blockSize), blockCount: blockCount,
                                    maxInodes: max(1024, size / 8192), uuid: options.uuid ?? randomUUID(), sequence: 0,
                                    checkpoint: .tree(nil), label: options.label)
        superblock.log = LogRegion(firstBlock: superblock.firstDataBlock,
                                   blockCount: LogRegion.blocks(forVolumeBytes: size, blockSize: blockSize))
        guard blockCount <= Superblock.maxBlockCount else {
            throw ExtentFSError("\(size) bytes is too large for an extentfs volume with \(blockSize)-byte blocks", errno: .invalidArgument)
        }
        guard blockCount >= superblock.firstAllocatableBlock + minimumBlocks else {
            throw ExtentFSError("\(size) bytes is too small for an extentfs volume with \(blockSize)-byte blocks (need \((superblock.firstAllocatableBlock + minimumBlocks) * UInt64(blockSize)))", errno: .invalidArgument)
        }
        try store.write([UInt8](repeating: 0, count: Int(Superblock.reservedBytes)), at: 0)
        // A log left by an earlier filesystem on this image carries another UUID: replay ignores it.

        let root = Inode(ino: FileSystem.rootInode, mode: ExtentFSCore.FileType.directory.rawValue | 0o755, uid: getuid(), gid: getgid(), time: .now, cache: nil)
        root.parent = FileSystem.rootInode
        let loaded = LoadedCheckpoint(nextInode: FileSystem.rootInode + 1, inodes: [root], referenceCounts: ReferenceCounts())
        let metadata = Metadata(superblock: superblock, loaded: loaded)
        let journal = try Journal(store: store, metadata: metadata, loaded: loaded)
        // Both superblock copies, each with a checkpoint: either can be mounted from the start.
        try journal.checkpoint()
        try journal.checkpoint()
    }

    /// Problems found, one line each; empty when clean. Throws (one line) when the image cannot
    /// be read as extentfs at all: not extentfs, a newer version, damaged beyond reading, in use.
    public static func check(image: String, store options: StoreOptions = StoreOptions()) throws -> [String] {
        try checkReport(image: image, store: options).problems
    }

    /// What fsck checked, how long it took, and what it found.
    public struct CheckReport: Sendable {
        public var problems: [String] = []
        public var inodes = 0
        public var directories = 0
        public var entries = 0
        public var extents = 0
        public var sharedRuns = 0
        public var treeNodes = 0
        public var treeHeight = 0
        /// Used bytes over usable bytes of the tree's nodes, 0...1.
        public var treeFill = 0.0
        public var replayedRecords = 0
        public var seconds = 0.0
        /// The newest superblock's format version and label.
        public var version: UInt32 = 0
        public var label: [UInt8] = []
        /// Every inode's number, type, chattr flags and birth time, by number; filled only when
        /// asked for (`listingInodes`).
        public var inodeListing: [InodeSummary] = []

        public struct InodeSummary: Sendable {
            public var ino: InodeNumber
            public var type: ExtentFSCore.FileType
            public var flags: InodeFlags
            /// The epoch: not known (an inode made before format version 6).
            public var birthTime: Timespec
        }

        public var summary: String {
            "\(inodes) inodes, \(directories) directories with \(entries) entries, \(extents) extents, " +
                "\(sharedRuns) shared runs; a metadata tree of \(treeNodes) nodes \(Int((treeFill * 100).rounded()))% full, " +
                "\(treeHeight) levels; " +
                "\(replayedRecords) log records replayed; in \(Int((seconds * 1000).rounded())) ms"
        }
    }

    /// Every structure of the image read and checked: both superblock copies, the metadata tree
    /// node by node, the log replayed over it, then the checker's cross-checks (Checker).
    public static func checkReport(image: String, store options: StoreOptions = StoreOptions(),
                                   listingInodes: Bool = false) throws -> CheckReport {
        let clock = ContinuousClock()
        let start = clock.now
        let store = try BackingStore(path: image, writable: false, options: options)
        try store.lock(.shared)
        let choice = try VolumeLoader.readSuperblock(store)
        let loaded = try VolumeLoader.load(store, choice: choice, cache: nil)
        var report = CheckReport()
        // An unlinked file still open at a crash is a valid state (mount frees it): not a problem.
        report.problems = choice.warnings + loaded.warnings + Checker.check(superblock: choice.superblock, loaded: loaded).filter { !$0.isOrphan }.map(\.message)
        if loaded.treeUnderfilledNodes > 0 {
            report.problems.append("the metadata tree has \(loaded.treeUnderfilledNodes) nodes under a quarter full (left by an error while it was rebalancing; the next checkpoints fill them)")
        }
        report.inodes = loaded.inodes.count
        report.version = choice.superblock.version
        report.label = choice.superblock.label
        if listingInodes {
            report.inodeListing = loaded.inodes.sorted { $0.ino < $1.ino }.map {
                CheckReport.InodeSummary(ino: $0.ino, type: $0.type, flags: $0.flags, birthTime: $0.btime)
            }
        }
        for inode in loaded.inodes {
            report.extents += inode.extents.extents.count
            if let directory = inode.directory {
                report.directories += 1
                report.entries += directory.count
            }
        }
        report.sharedRuns = loaded.referenceCounts.entries.count
        report.treeNodes = Int(loaded.treeNodes)
        report.treeHeight = loaded.treeHeight
        report.treeFill = loaded.treeFill
        report.replayedRecords = loaded.replayedRecords
        let elapsed = clock.now - start
        report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return report
    }

    private static func randomUUID() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}
