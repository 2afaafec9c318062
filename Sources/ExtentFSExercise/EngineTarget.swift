import ExtentFS
import ExtentFSCore
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The engine in-process, on a fresh image in a temporary directory. Mappings do not exist
/// in-process: a map read or write is the buffered call (the mount mode has real ones).
public final class EngineTarget: ExerciseTarget {
    public struct Configuration: Sendable {
        public var blockSize: Int
        public var files: Int
        /// Small, so that reclaim and dirty throttling run all the time.
        public var cacheBytes: Int = 256 << 10
        /// Sparse; big enough that the exerciser's files never meet ENOSPC.
        public var imageBytes: UInt64 = 512 << 20
        /// Long, so runs replay deterministically (dirty pressure still wakes the flusher).
        public var commitInterval: Double = 3600
        /// Threads reading random ranges all the time (BackgroundReaders), as kernel readahead
        /// does through a mount; 0 keeps runs deterministic.
        public var backgroundReaders = 0
        /// How far into the files the background readers read.
        public var backgroundReadSpan: UInt64 = 2 << 20
        public init(blockSize: Int, files: Int) {
            self.blockSize = blockSize
            self.files = files
        }
    }

    public let blockSize: Int
    private let configuration: Configuration
    private let directory: String
    private let image: String
    private var fileSystem: FileSystem?
    private var inodes: [InodeNumber] = []
    private var readers: BackgroundReaders?
    private var readerSeed: UInt64 = 1

    public init(_ configuration: Configuration) throws {
        self.configuration = configuration
        blockSize = configuration.blockSize
        directory = try makeTemporaryDirectory("extentfs-exercise")
        image = directory + "/volume.img"
        var format = FormatOptions()
        format.blockSize = configuration.blockSize
        format.size = configuration.imageBytes
        try Volume.format(image: image, options: format)
        let fileSystem = try mountEngine()
        for index in 0..<configuration.files {
            let attributes = try fileSystem.create(parent: FileSystem.rootInode, name: Self.name(index), mode: 0o644,
                                                   flags: O_RDWR, owner: .root)
            inodes.append(attributes.ino)
        }
        startReaders()
    }

    private func startReaders() {
        guard configuration.backgroundReaders > 0, let fileSystem else { return }
        let readers = BackgroundReaders(fileSystem: fileSystem, inodes: inodes, maxOffset: configuration.backgroundReadSpan)
        readers.start(count: configuration.backgroundReaders, seed: readerSeed)
        readerSeed &+= 0x9E37_79B9
        self.readers = readers
    }

    private func stopReaders() {
        readers?.stop()
        readers = nil
    }

    static func name(_ index: Int) -> [UInt8] { Array("f\(index)".utf8) }

    private func mountEngine() throws -> FileSystem {
        var options = MountOptions()
        options.cacheBytes = configuration.cacheBytes
        options.commitInterval = configuration.commitInterval
        let mounted = try FileSystem.mount(image: image, options: options)
        fileSystem = mounted
        return mounted
    }

    private var fs: FileSystem {
        get throws {
            guard let fileSystem else { throw TargetBroken("the volume is not mounted") }
            return fileSystem
        }
    }

    public func read(_ file: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var count = 0
        try fs.read(inodes[file], offset: offset, count: buffer.count) { bytes in
            count = bytes.count
            if count > 0 { buffer.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: count) }
        }
        return count
    }

    public func write(_ file: Int, offset: UInt64, _ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let written = try fs.write(inodes[file], offset: offset + UInt64(done), UnsafeRawBufferPointer(rebasing: bytes[done...]))
            guard written > 0 else { throw TargetBroken("write returned 0 with \(bytes.count - done) bytes left") }
            done += written
        }
    }

    public func mapRead(_ file: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        let count = try read(file, offset: offset, into: buffer)
        guard count == buffer.count else { throw TargetBroken("map read of \(buffer.count) bytes got \(count)") }
    }

    public func mapWrite(_ file: Int, offset: UInt64, _ bytes: UnsafeRawBufferPointer) throws {
        let end = offset + UInt64(bytes.count)
        if end > (try size(file)) { try truncate(file, size: end) }
        try write(file, offset: offset, bytes)
    }

    public func truncate(_ file: Int, size: UInt64) throws {
        _ = try fs.setattr(inodes[file], AttributeChanges(size: size))
    }

    public func fallocate(_ file: Int, offset: UInt64, length: UInt64, mode: AllocationMode) throws {
        try fs.fallocate(inodes[file], offset: offset, length: length, mode: FallocateMode(rawValue: mode.flags))
    }

    public func clone(from source: Int, sourceOffset: UInt64, to destination: Int, destinationOffset: UInt64, length: UInt64) throws {
        _ = try fs.clone(from: inodes[source], sourceOffset: sourceOffset, to: inodes[destination],
                         destinationOffset: destinationOffset, length: length)
    }

    public func dedupe(from source: Int, sourceOffset: UInt64, to destination: Int, destinationOffset: UInt64, length: UInt64) throws -> DedupeStatus {
        try fs.dedupe(from: inodes[source], sourceOffset: sourceOffset, length: length, to: inodes[destination],
                      destinationOffset: destinationOffset)
    }

    public func copyRange(from source: Int, sourceOffset: UInt64, to destination: Int, destinationOffset: UInt64, length: UInt64) throws -> UInt64 {
        try fs.copyFileRange(from: inodes[source], sourceOffset: sourceOffset, to: inodes[destination],
                             destinationOffset: destinationOffset, length: length)
    }

    public func seek(_ file: Int, offset: UInt64, whence: SeekWhence) throws -> UInt64 {
        try fs.seek(inodes[file], offset: offset, to: whence == .data ? .data : .hole)
    }

    public func extentMap(_ file: Int) throws -> [Extent] {
        try fs.extentMap(inodes[file], offset: 0, length: UInt64.max).map(Extent.init)
    }

    public func size(_ file: Int) throws -> UInt64 {
        try fs.getattr(inodes[file]).size
    }

    public func fsync(_ file: Int) throws {
        try fs.fsync(inodes[file], dataOnly: false)
    }

    /// In-process there is no cache above the engine's own (which reclaims all the time anyway).
    public func dropCache(_ file: Int) throws {}

    public func reopen(_ file: Int) throws {
        let fs = try self.fs
        fs.release(inodes[file])
        try fs.open(inodes[file], flags: O_RDWR)
    }

    /// Unmount and mount again; the files are looked up by name, as after a real remount.
    public func remount() throws {
        stopReaders()
        defer { startReaders() }
        let old = try fs
        for ino in inodes { old.release(ino) }
        try old.unmount()
        fileSystem = nil
        let fs = try mountEngine()
        inodes = try (0..<inodes.count).map { index in
            let ino = try fs.lookup(parent: FileSystem.rootInode, name: Self.name(index)).ino
            try fs.open(ino, flags: O_RDWR)
            return ino
        }
    }

    public func finish() throws -> [String] {
        stopReaders()
        let fs = try self.fs
        for ino in inodes { fs.release(ino) }
        try fs.unmount()
        fileSystem = nil
        return try Volume.check(image: image)
    }

    public func discard() {
        stopReaders()
        try? fileSystem?.unmount()
        fileSystem = nil
        unlink(image)
        rmdir(directory)
    }

    deinit { discard() }
}

/// A new directory under $TMPDIR (or /tmp), named prefix-XXXXXX.
func makeTemporaryDirectory(_ prefix: String) throws -> String {
    let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    var template = Array("\(base)/\(prefix)-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw TargetBroken("cannot make a temporary directory under \(base): \(Errno(rawValue: errno))")
    }
    return String(cString: made)
}
