import CExerciseSyscalls
import ExtentFS
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Real files under a real mount: a fresh image made and mounted with the `extentfs` binary,
/// driven with the standard calls (pread, pwrite, mmap, ftruncate, fallocate, copy_file_range,
/// lseek, fsync) and the extentfs ioctls for what the kernel does not pass to FUSE (collapse,
/// insert, unshare, clone, dedupe, extent maps).
public final class MountTarget: ExerciseTarget {
    public struct Configuration: Sendable {
        /// The extentfs executable (mkfs, mount, umount, fsck).
        public var binary: String
        public var blockSize: Int
        public var files: Int
        public var cacheBytes: Int = 256 << 10
        public var imageBytes: UInt64 = 512 << 20
        public init(binary: String, blockSize: Int, files: Int) {
            self.binary = binary
            self.blockSize = blockSize
            self.files = files
        }
    }

    public let blockSize: Int
    private let configuration: Configuration
    private let directory: String
    private let image: String
    private let mountpoint: String
    /// The daemon's log: its last lines go into failure reports.
    public let daemonLog: String
    private var descriptors: [Int32] = []
    private var mounted = false
    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    public init(_ configuration: Configuration) throws {
        self.configuration = configuration
        blockSize = configuration.blockSize
        directory = try makeTemporaryDirectory("extentfs-exercise")
        image = directory + "/volume.img"
        mountpoint = directory + "/mnt"
        daemonLog = directory + "/daemon.log"
        guard mkdir(mountpoint, 0o755) == 0 else { throw TargetBroken("mkdir \(mountpoint): \(Errno(rawValue: errno))") }
        try Command.check([configuration.binary, "mkfs", image, "--size", String(configuration.imageBytes),
                           "--block-size", String(configuration.blockSize)])
        try mount()
        descriptors = try (0..<configuration.files).map { try open($0, create: true) }
    }

    private func path(_ file: Int) -> String { "\(mountpoint)/f\(file)" }

    private func open(_ file: Int, create: Bool = false) throws -> Int32 {
        let flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0)
        let descriptor = Glibc.open(path(file), flags, 0o644)
        guard descriptor >= 0 else { throw TargetBroken("open \(path(file)): \(Errno(rawValue: errno))") }
        return descriptor
    }

    private func mount() throws {
        try Command.check([configuration.binary, "mount", image, mountpoint, "--cache-size", String(configuration.cacheBytes),
                           "--log", daemonLog])
        mounted = true
    }

    private func unmount() throws {
        for descriptor in descriptors { close(descriptor) }
        descriptors = []
        guard mounted else { return }
        mounted = false
        try Command.check([configuration.binary, "umount", mountpoint])
    }

    /// A call's -1 becomes the errno it set.
    private func check(_ result: Int) throws -> Int {
        guard result >= 0 else { throw Errno(rawValue: errno) }
        return result
    }

    /// The C shim's negative errno becomes the errno.
    private func check(shim result: Int32) throws {
        guard result >= 0 else { throw Errno(rawValue: -result) }
    }

    public func read(_ file: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        while done < buffer.count {
            let count = pread(descriptors[file], buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if count < 0 && errno == EINTR { continue }
            let got = try check(count)
            if got == 0 { break }
            done += got
        }
        return done
    }

    public func write(_ file: Int, offset: UInt64, _ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let count = pwrite(descriptors[file], bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if count < 0 && errno == EINTR { continue }
            let wrote = try check(count)
            guard wrote > 0 else { throw TargetBroken("pwrite returned 0 with \(bytes.count - done) bytes left") }
            done += wrote
        }
    }

    /// Maps the pages holding [offset, offset + count) and hands the body the range's bytes.
    /// Past EOF a mapping raises SIGBUS: the file must reach the range's end.
    private func withMapping(_ file: Int, offset: UInt64, count: Int, _ body: (UnsafeMutableRawPointer) -> Void) throws {
        let size = try self.size(file)
        guard offset + UInt64(count) <= size else {
            throw TargetBroken("cannot map \(hex(offset))+\(count): the file has only \(size) bytes")
        }
        let start = offset / UInt64(Self.pageSize) * UInt64(Self.pageSize)
        let length = Int(offset - start) + count
        var error: Int32 = 0
        guard let address = exercise_mmap_shared(descriptors[file], length, Int64(start), &error) else {
            throw Errno(rawValue: error)
        }
        defer { munmap(address, length) }
        body(address + Int(offset - start))
        guard msync(address, length, MS_SYNC) == 0 else { throw Errno(rawValue: errno) }
    }

    public func mapRead(_ file: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try withMapping(file, offset: offset, count: buffer.count) { buffer.baseAddress!.copyMemory(from: $0, byteCount: buffer.count) }
    }

    public func mapWrite(_ file: Int, offset: UInt64, _ bytes: UnsafeRawBufferPointer) throws {
        let end = offset + UInt64(bytes.count)
        if end > (try size(file)) { try truncate(file, size: end) }
        try withMapping(file, offset: offset, count: bytes.count) { $0.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
    }

    public func truncate(_ file: Int, size: UInt64) throws {
        _ = try check(Int(ftruncate(descriptors[file], off_t(size))))
    }

    public func fallocate(_ file: Int, offset: UInt64, length: UInt64, mode: AllocationMode) throws {
        let descriptor = descriptors[file]
        switch mode {
        case .collapseRange: try check(shim: exercise_collapse_range(descriptor, offset, length))
        case .insertRange: try check(shim: exercise_insert_range(descriptor, offset, length))
        case .unshareRange: try check(shim: exercise_unshare_range(descriptor, offset, length))
        default: try check(shim: exercise_fallocate(descriptor, mode.flags, Int64(offset), Int64(length)))
        }
    }

    public func clone(from source: Int, sourceOffset: UInt64, to destination: Int, destinationOffset: UInt64, length: UInt64) throws {
        try check(shim: exercise_clone_range(descriptors[destination], descriptors[source], sourceOffset, length, destinationOffset))
    }

    public func dedupe(from source: Int, sourceOffset: UInt64, to destination: Int, destinationOffset: UInt64, length: UInt64) throws -> DedupeStatus {
        var status: Int32 = 0
        var bytes: UInt64 = 0
        try check(shim: exercise_dedupe_range(descriptors[destination], descriptors[source], sourceOffset, length,
                                              destinationOffset, &status, &bytes))
        switch status {
        case Int32(EXTENTFS_DEDUPE_SAME): return .same(bytes: bytes)
        case Int32(EXTENTFS_DEDUPE_DIFFERS): return .differs
        default: throw Errno(rawValue: -status)
        }
    }

    /// copy_file_range may copy less than asked: call again until done. "Done" is what the first
    /// call would copy (up to the source's EOF as it was): a copy within one file that grows it
    /// must not go on into the bytes it just wrote.
    public func copyRange(from source: Int, sourceOffset: UInt64, to destination: Int, destinationOffset: UInt64, length: UInt64) throws -> UInt64 {
        let sourceSize = try size(source)
        let whole = sourceOffset < sourceSize ? min(length, sourceSize - sourceOffset) : length
        var done: UInt64 = 0
        repeat {
            let copied = exercise_copy_file_range(descriptors[source], Int64(sourceOffset + done), descriptors[destination],
                                                  Int64(destinationOffset + done), length - done)
            if copied == -Int64(EINTR) { continue }
            guard copied >= 0 else { throw Errno(rawValue: Int32(-copied)) }
            if copied == 0 { break }
            done += UInt64(copied)
        } while done < whole
        return done
    }

    public func seek(_ file: Int, offset: UInt64, whence: SeekWhence) throws -> UInt64 {
        let seekData: Int32 = 3
        let seekHole: Int32 = 4
        return UInt64(try check(Int(lseek(descriptors[file], off_t(offset), whence == .data ? seekData : seekHole))))
    }

    public func extentMap(_ file: Int) throws -> [Extent] {
        var result: [Extent] = []
        var buffer = [extentfs_extent](repeating: extentfs_extent(), count: Int(exercise_map_capacity()))
        var offset: UInt64 = 0
        while true {
            var count: UInt32 = 0
            try buffer.withUnsafeMutableBufferPointer {
                try check(shim: exercise_map(descriptors[file], offset, UInt64.max - offset, $0.baseAddress, &count))
            }
            for extent in buffer.prefix(Int(count)) {
                result.append(Extent(logical: extent.logical, physical: extent.physical, length: extent.length, flags: extent.flags))
            }
            guard let last = result.last, count == UInt32(buffer.count), last.flags & Extent.last == 0 else { return result }
            offset = last.logical + last.length
        }
    }

    public func size(_ file: Int) throws -> UInt64 {
        var status = stat()
        _ = try check(Int(fstat(descriptors[file], &status)))
        return UInt64(status.st_size)
    }

    public func fsync(_ file: Int) throws {
        _ = try check(Int(Glibc.fsync(descriptors[file])))
    }

    public func dropCache(_ file: Int) throws {
        let result = posix_fadvise(descriptors[file], 0, 0, POSIX_FADV_DONTNEED)
        guard result == 0 else { throw Errno(rawValue: result) }
    }

    public func reopen(_ file: Int) throws {
        close(descriptors[file])
        descriptors[file] = -1
        descriptors[file] = try open(file)
    }

    /// `extentfs umount` then `extentfs mount`: the daemon exits and a new one reads the image.
    public func remount() throws {
        let count = descriptors.count
        try unmount()
        try mount()
        descriptors = try (0..<count).map { try open($0) }
    }

    public func finish() throws -> [String] {
        try unmount()
        let outcome = try Command.run([configuration.binary, "fsck", image])
        if outcome.succeeded { return [] }
        let lines = outcome.output.split(separator: "\n").map(String.init)
        return lines.isEmpty ? ["fsck exited with status \(outcome.status)"] : lines
    }

    public func diagnostics() -> String {
        let tail = daemonLogTail()
        return tail.isEmpty ? "" : "the daemon's log ends with:\n" + tail
    }

    /// The last lines of the daemon's log, for a failure report.
    public func daemonLogTail(lines: Int = 20) -> String {
        guard let descriptor = try? FileDescriptor.open(daemonLog, .readOnly) else { return "" }
        defer { try? descriptor.close() }
        var bytes = [UInt8](repeating: 0, count: 1 << 16)
        let size = lseek(descriptor.rawValue, 0, SEEK_END)
        let start = max(0, Int(size) - bytes.count)
        let count = bytes.withUnsafeMutableBytes { pread(descriptor.rawValue, $0.baseAddress, $0.count, off_t(start)) }
        guard count > 0 else { return "" }
        return String(decoding: bytes[0..<count], as: UTF8.self).split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    public func discard() {
        if mounted {
            do {
                try unmount()
            } catch {
                // The daemon is gone or stuck: detach so the directory can go.
                umount2(mountpoint, Int32(MNT_DETACH))
            }
        }
        for descriptor in descriptors where descriptor >= 0 { close(descriptor) }
        descriptors = []
        unlink(image)
        unlink(daemonLog)
        rmdir(mountpoint)
        rmdir(directory)
    }

    deinit { discard() }
}
