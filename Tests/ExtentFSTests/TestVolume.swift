import ExtentFSCore
import XCTest
@testable import ExtentFS

/// A fresh image in a temporary directory, mounted in-process.
final class TestVolume {
    let directory: String
    let image: String
    let blockSize: Int
    var fs: FileSystem!
    var options: MountOptions

    init(blockSize: Int = 4096, size: UInt64 = 64 << 20, cacheBytes: Int = 8 << 20) throws {
        var template = Array("/tmp/extentfs-test-XXXXXX".utf8CString)
        directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        image = directory + "/disk.img"
        self.blockSize = blockSize
        var format = FormatOptions()
        format.blockSize = blockSize
        format.size = size
        try Volume.format(image: image, options: format)
        options = MountOptions()
        options.cacheBytes = cacheBytes
        options.commitInterval = 3600
        fs = try FileSystem.mount(image: image, options: options)
    }

    /// A volume with one file of `bytes` written whole, committed and out of the cache
    /// (remounted).
    static func withFile(bytes: Int, seed: UInt64, blockSize: Int = 4096,
                         cacheBytes: Int = 8 << 20) throws -> (TestVolume, InodeNumber, [UInt8]) {
        let volume = try TestVolume(blockSize: blockSize, cacheBytes: cacheBytes)
        let ino = try volume.create("file")
        let data = pattern(bytes, seed: seed)
        _ = try volume.write(ino, data, at: 0)
        try volume.remount()
        XCTAssertEqual(volume.fs.cache.cachedPages, 0)
        return (volume, ino, data)
    }

    func remount() throws {
        try fs.unmount()
        fs = nil
        fs = try FileSystem.mount(image: image, options: options)
    }

    /// Remounts with `interceptor` seeing every read, write and flush from now on.
    func remount(intercepting interceptor: any BackingStoreInterceptor) throws {
        options.storeInterceptor = interceptor
        try remount()
    }

    func unmountAndCheck(file: StaticString = #filePath, line: UInt = #line) throws {
        // Every charge made pending was settled (Metadata.chargePending).
        XCTAssertEqual(fs.metadata.space.pendingBytes, 0, "metadata charges left pending", file: file, line: line)
        try fs.unmount()
        fs = nil
        let problems = try Volume.check(image: image)
        XCTAssertEqual(problems, [], "fsck found problems", file: file, line: line)
    }

    deinit {
        try? fs?.unmount()
        unlink(image)
        rmdir(directory)
    }

    // Conveniences over the engine API.
    func create(_ name: String, in parent: InodeNumber = FileSystem.rootInode, mode: UInt32 = 0o644) throws -> InodeNumber {
        let attributes = try fs.create(parent: parent, name: Array(name.utf8), mode: mode, flags: 0, owner: .root)
        return attributes.ino
    }

    @discardableResult
    func write(_ ino: InodeNumber, _ bytes: [UInt8], at offset: UInt64) throws -> Int {
        try bytes.withUnsafeBytes { try fs.write(ino, offset: offset, $0) }
    }

    func read(_ ino: InodeNumber, _ count: Int, at offset: UInt64) throws -> [UInt8] {
        var result: [UInt8] = []
        try fs.read(ino, offset: offset, count: count) { result = Array($0) }
        return result
    }

    func lookup(_ name: String, in parent: InodeNumber = FileSystem.rootInode) throws -> FileAttributes {
        try fs.lookup(parent: parent, name: Array(name.utf8))
    }
}

/// Deterministic bytes: the same seed gives the same data.
func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return UInt8(truncatingIfNeeded: state)
    }
}

extension TestVolume {
    /// A copy of the image as it is on disk now, as a power cut would leave it (what was not
    /// written back or logged yet is not in it).
    func crashCopy() throws -> String {
        let copy = directory + "/crash.img"
        unlink(copy)
        let source = try FileDescriptor.open(image, .readOnly)
        defer { try? source.close() }
        let target = try FileDescriptor.open(copy, .writeOnly, options: [.create, .truncate], permissions: .ownerReadWrite)
        defer { try? target.close() }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try source.read(into: $0) }
            if count == 0 { break }
            _ = try buffer.withUnsafeBytes { try target.writeAll(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
        return copy
    }

    /// Mounts a crash copy (fsck clean before and after) and runs `body` on it.
    func withCrashedCopy(file: StaticString = #filePath, line: UInt = #line, _ body: (FileSystem) throws -> Void) throws {
        let copy = try crashCopy()
        defer { unlink(copy) }
        XCTAssertEqual(try Volume.check(image: copy), [], "fsck of the crashed image", file: file, line: line)
        var options = MountOptions()
        options.commitInterval = 3600
        let crashed = try FileSystem.mount(image: copy, options: options)
        try body(crashed)
        try crashed.unmount()
        XCTAssertEqual(try Volume.check(image: copy), [], "fsck after mounting the crashed image", file: file, line: line)
    }
}

func errno(of body: () throws -> Void) -> Errno? {
    do {
        try body()
        return nil
    } catch let error as Errno {
        return error
    } catch {
        return nil
    }
}

import SystemPackage
