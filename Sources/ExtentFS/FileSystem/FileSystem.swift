import ExtentFSCore
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A mounted extentfs volume: the engine's whole public surface. Thread-safe: libfuse calls it
/// from many threads at once. Names are raw bytes, as Linux gives them. Every method throws
/// `Errno` for the errno the caller should see.
public final class FileSystem: @unchecked Sendable {
    public static let rootInode: InodeNumber = Superblock.rootInode
    public static let maxNameLength = Superblock.maxNameLength
    public static let maxSymlinkLength = 4095
    static let maxLinks: UInt32 = 65000

    public let blockSize: Int
    let geometry: Geometry
    let store: BackingStore
    let metadata: Metadata
    let journal: Journal
    let cache: PageCache
    let options: MountOptions
    let logger = Logger(label: "extentfs.engine")
    let flusher: Flusher
    /// Asks the kernel to let go of inodes (KernelInodePruning.swift).
    let kernelInodePruner = KernelInodePruner()
    /// Read-only until made writable (FileSystem+ReadOnly.swift).
    let writeAccess: WriteAccess
    /// What `counters()` reports; the journal counts its commits and checkpoints here too.
    let engineCounters = EngineCounters()
    private let unmountLock = Mutex()
    private var isUnmounted = false

    private init(store: BackingStore, superblock: Superblock, loaded: LoadedCheckpoint, cache: PageCache, options: MountOptions) throws {
        self.store = store
        self.cache = cache
        self.options = options
        metadata = Metadata(superblock: superblock, loaded: loaded)
        metadata.pageCache = cache
        metadata.cacheState.budgetBytes = options.metadataCacheBytes / 2
        metadata.treeNodeCacheBytes = max(1 << 20, options.metadataCacheBytes / 4)
        geometry = metadata.geometry
        blockSize = geometry.blockSize
        journal = try Journal(store: store, metadata: metadata, loaded: loaded, counters: engineCounters)
        flusher = Flusher(interval: options.commitInterval)
        writeAccess = WriteAccess(readOnly: options.readOnly)
    }

    /// Opens and locks the image, checks the superblock, replays the log over the checkpoint,
    /// checks the metadata, frees orphans left by a crash, starts background writeback.
    /// Read-only (`options.readOnly`): checks and replays in memory, writes nothing, and starts
    /// no background commits (FileSystem+ReadOnly.swift).
    public static func mount(image: String, options: MountOptions = MountOptions()) throws -> FileSystem {
        let store = try openStore(image, readOnly: options.readOnly, options: options.store)
        store.interceptor = options.storeInterceptor
        try store.lock(.exclusive)
        let choice = try VolumeLoader.readSuperblock(store)
        let cache = PageCache(budgetBytes: options.cacheBytes)
        let loaded = try VolumeLoader.load(store, choice: choice, cache: cache, onDemand: true)
        let problems = (loaded.checkProblems ?? Checker.check(superblock: choice.superblock, loaded: loaded)).filter { !$0.isOrphan }
        if let first = problems.first {
            throw ExtentFSError("\(image) is a damaged extentfs image: \(first.message)" +
                                (problems.count > 1 ? " (and \(problems.count - 1) more problems)" : "") +
                                "; run extentfs fsck \(image)", errno: .ioError)
        }
        let fileSystem = try FileSystem(store: store, superblock: choice.superblock, loaded: loaded, cache: cache, options: options)
        let warnings = choice.warnings + loaded.warnings
        guard !options.readOnly else {
            for warning in warnings { fileSystem.logger.warning("\(image): \(warning); mounted read-only, so not rewritten") }
            fileSystem.startBackgroundWork()
            return fileSystem
        }
        fileSystem.convertIfOlder()
        try fileSystem.freeOrphans()
        if !warnings.isEmpty {
            // The next checkpoint (sequence + 1) goes to the other slot, the damaged one: it heals.
            for warning in warnings { fileSystem.logger.warning("\(image): \(warning); rewriting it now") }
            try fileSystem.journal.checkpoint()
        }
        fileSystem.startBackgroundWork()
        return fileSystem
    }

    /// An image of an older format version becomes the current one now, by a checkpoint,
    /// before anything is logged: records of the current version (LogRecord.Kind) are then
    /// never in the log of an image whose superblocks an older extentfs would still take.
    /// A checkpoint that fails does not fail the mount (the image is what it was, and valid):
    /// either the volume is shut down (every request gets EIO, as it would at its first
    /// commit) or, out of space for the tree, the next checkpoint converts it; meanwhile an
    /// older extentfs would refuse the records logged, not misread them.
    func convertIfOlder() {
        let (version, sequence) = metadata.withLock { (metadata.superblock.version, metadata.superblock.sequence) }
        guard version < Superblock.currentVersion else { return }
        // A volume whose superblock sequences are used up takes no checkpoint: it shuts down at
        // its first one, as it did before there was a conversion, not at mount (fsck, which
        // writes nothing, finds nothing wrong with it).
        guard sequence + 1 < LogPosition.maxSequence else {
            logger.warning("\(store.path): not converted to format version \(Superblock.currentVersion): its superblock sequence numbers are used up")
            return
        }
        logger.info("\(store.path): converting from format version \(version) to \(Superblock.currentVersion)")
        do {
            try journal.checkpoint()
        } catch {
            logger.warning("\(store.path): converting to format version \(Superblock.currentVersion) failed: \(error)")
        }
    }

    /// A read-only mount opens the image for writing when it may, so that it can become
    /// writable later (`makeWritable`); a read-only file or device is opened read-only.
    private static func openStore(_ image: String, readOnly: Bool, options: StoreOptions) throws -> BackingStore {
        guard readOnly else { return try BackingStore(path: image, writable: true, options: options) }
        do {
            return try BackingStore(path: image, writable: true, options: options)
        } catch let error as ExtentFSError where StoreLocation.isNBD(image) && error.errno == .ioError {
            // An NBD server that could not be reached would only keep us waiting again.
            throw error
        } catch {
            return try BackingStore(path: image, writable: false, options: options)
        }
    }

    /// The flusher, and the cache, the log and the inode table asking it for early work. Once
    /// per mount, read-only too: a read-only volume's flusher only bounds the kernel's lookup
    /// counts (a walk of a read-only mount grows them as any other), and writes back and
    /// commits from the moment the volume becomes writable.
    func startBackgroundWork() {
        // Dirty pages want writeback, not a commit (the kernel's background writeback does not
        // commit either); a log half full wants both, and a checkpoint.
        cache.onDirtyPressure = { [weak self] in self?.flusher.wake(commit: false) }
        journal.onLogPressure = { [weak self] in self?.flusher.wake(commit: true) }
        metadata.withLock { metadata.wakeForKernelPrune = { [weak self] in self?.flusher.wake(commit: false) } }
        flusher.start { [weak self] commit in self?.backgroundFlush(commit: commit) }
    }

    /// Writes back everything, logs it, writes a checkpoint (so the next mount has nothing to
    /// replay), stops the flusher, releases the image. Idempotent. After a shutdown, or when any
    /// of it fails, throws an error that says the changes since the last commit are lost.
    public func unmount() throws {
        try unmountLock.withLock {
            guard !isUnmounted else { return }
            flusher.stop()
            defer {
                store.unlock()
                isUnmounted = true
                // Page memory is raw memory: give it back, or every mount in a process leaks its cache.
                let spaces = metadata.withLock { metadata.inodes.values.compactMap(\.pages) }
                for space in spaces { space.removePages(from: 0) }
            }
            // A read-only volume changed nothing: nothing to write.
            if writeAccess.isReadOnly { return }
            do {
                try journal.shutdown.check()
                try freeOrphans()
                try writebackAll()
                try journal.checkpoint()
                try journal.flushIfNeeded()
            } catch {
                let reason = journal.shutdown.why ?? "\(error)"
                let failure = ExtentFSError("\(store.path): changes since the last commit were lost: \(reason)", errno: .ioError)
                if let path = options.unmountReportPath { FileSystem.writeReport(failure.description, to: path) }
                throw failure
            }
            if let path = options.unmountReportPath { Glibc.unlink(path) }
        }
    }

    private static func writeReport(_ message: String, to path: String) {
        guard let file = try? FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .truncate, .closeOnExec],
                                                  permissions: [.ownerReadWrite]) else { return }
        _ = try? file.writeAll(Array((message + "\n").utf8))
        try? file.close()
    }

    /// Writes back every dirty page, logs every change and flushes.
    public func sync() throws {
        try journal.shutdown.check()
        try writebackAll()
        try journal.force()
        try journal.flushIfNeeded()
    }

    /// Space freed since the last commit is not reusable until a commit records the frees. When
    /// an allocation falls short and such space exists, commit now (as ext4 and XFS force a log
    /// flush) and say so, so the caller tries again. Safe without writeback: a checkpoint never
    /// maps a block as written before its data is.
    func commitToReleaseFrees() -> Bool {
        guard metadata.withLock({ metadata.freeSpace.pendingFreeBlocks > 0 }) else { return false }
        do {
            try journal.force()
            return true
        } catch {
            logger.error("commit to release freed space failed: \(error)")
            return false
        }
    }

    /// Runs `body` again once after a commit when it fails with ENOSPC while freed space waits.
    func retryingAfterFreeing<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch Errno.noSpace where commitToReleaseFrees() {
            return try body()
        }
    }

    /// Writes back, logs, and writes a checkpoint when half the log is in use. A data writeback
    /// error is kept for the file's next fsync; a log or checkpoint error has shut the volume down.
    private func backgroundFlush(commit: Bool) {
        guard !journal.shutdown.isShutDown else { return }
        pruneKernelInodes()
        guard !writeAccess.isReadOnly else { return }
        do {
            try writebackAll()
        } catch {
            logger.error("background writeback failed: \(error)")
        }
        guard commit else { return }
        do {
            try journal.force()
            if journal.wantsCheckpoint { try journal.checkpoint() }
        } catch {
            logger.error("background commit failed: \(error)")
        }
    }

    /// The number the next new inode gets: every inode's number is below it.
    public var nextInodeNumber: InodeNumber { metadata.withLock { metadata.nextInode } }

    /// Inode `ino`: from the table with no Metadata.lock when it holds it (InodeTable.swift),
    /// else read back from the tree under Metadata.lock held shared, the reads done outside it
    /// (FileSystem+TreeReads.swift). ENOENT when there is none.
    func inode(_ ino: InodeNumber) throws -> Inode {
        if let inode = metadata.inodes[ino] { return inode }
        return try readingTreeOutsideTheLock { try metadata.inodeUnderTableLock(ino) }
    }

    /// statfs, under Metadata.lock held shared: free space under the allocator's lock, the
    /// inode count under the table's, so that no transaction waits for it.
    public func statistics() -> FileSystemStatistics {
        metadata.lock.withShared {
            // Beyond every promise and the metadata reserve; space freed by changes not yet
            // committed counts (a write that needs it forces the commit that releases it).
            let spare = metadata.allocatorLock.withLock { metadata.freeSpace.spareBlocks(countingPendingFrees: true) }
            let usable = spare > 0 ? UInt64(spare) : 0
            let usedInodes = metadata.tableLock.withLock { metadata.inodeCount }
            return FileSystemStatistics(
                blockSize: UInt64(blockSize), totalBlocks: geometry.blockCount - metadata.superblock.firstAllocatableBlock,
                freeBlocks: usable, availableBlocks: usable, totalInodes: geometry.maxInodes,
                freeInodes: geometry.maxInodes > usedInodes ? geometry.maxInodes - usedInodes : 0,
                maxNameLength: UInt64(FileSystem.maxNameLength))
        }
    }
}

/// The background thread that writes back and commits every `interval` seconds, or sooner when
/// woken (dirty pages over the limit).
final class Flusher: @unchecked Sendable {
    private let mutex = Mutex()
    private let condition: Condition
    private let interval: Double
    private var running = false
    private var wakeRequested = false
    private var commitRequested = false
    /// Monotonic seconds of the last pass that committed: a stream of wakes for writeback alone
    /// must not put the periodic commit off.
    private var lastCommit = Flusher.monotonicSeconds()
    private var thread: pthread_t?
    private var work: ((Bool) -> Void)?

    init(interval: Double) {
        self.interval = interval
        condition = Condition(mutex)
    }

    /// `work(commit)`: write back, and commit too when `commit`.
    func start(_ work: @escaping (Bool) -> Void) {
        self.work = work
        running = true
        let unmanaged = Unmanaged.passRetained(self)
        var handle = pthread_t()
        pthread_create(&handle, nil, { argument in
            let flusher = Unmanaged<Flusher>.fromOpaque(argument!).takeRetainedValue()
            flusher.loop()
            return nil
        }, unmanaged.toOpaque())
        thread = handle
    }

    func wake(commit: Bool) {
        mutex.withLock {
            wakeRequested = true
            if commit { commitRequested = true }
            condition.signal()
        }
    }

    func stop() {
        let wasRunning = mutex.withLock { () -> Bool in
            let was = running
            running = false
            condition.signal()
            return was
        }
        if wasRunning, let thread { pthread_join(thread, nil) }
        thread = nil
    }

    private func loop() {
        while true {
            let (keepGoing, commit) = mutex.withLock { () -> (Bool, Bool) in
                if running && !wakeRequested { condition.wait(seconds: interval) }
                let woken = wakeRequested
                let due = !woken || commitRequested || Flusher.monotonicSeconds() - lastCommit >= interval
                wakeRequested = false
                if due { commitRequested = false }
                return (running, due)
            }
            guard keepGoing else { return }
            work?(commit)
            if commit { mutex.withLock { lastCommit = Flusher.monotonicSeconds() } }
        }
    }

    private static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
