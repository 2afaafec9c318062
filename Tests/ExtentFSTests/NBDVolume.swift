import ExtentFSCore
import XCTest
import NBDTestServer
@testable import ExtentFS

/// A volume on an export of a real nbdkit, mounted in-process: the engine reaches it through the
/// NBD backing store only (the URI is all it is given). Stops the server and removes its
/// directory when done.
final class NBDVolume {
    let directory: String
    let server: NBDTestServer
    var uri: String { server.uri }
    var options: MountOptions
    var fs: FileSystem!

    /// `plugin`: nil is nbdkit's file plugin over `directory`/image.img.
    init(_ plugin: NBDTestServer.Plugin? = nil, transport: NBDTestServer.Transport, bytes: UInt64 = 64 << 20,
         blockSize: Int = 4096, timeout: Double = 30, filters: [String] = [], parameters: [String] = []) throws {
        var template = Array("/tmp/extentfs-nbd-test-XXXXXX".utf8CString)
        directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        server = try NBDTestServer(plugin ?? .file(path: directory + "/image.img", bytes: bytes), transport: transport,
                                   directory: directory, filters: filters, parameters: parameters)
        var format = FormatOptions()
        format.blockSize = blockSize
        format.store.nbdTimeout = timeout
        try Volume.format(image: server.uri, options: format)
        options = MountOptions()
        options.cacheBytes = 8 << 20
        options.commitInterval = 3600
        options.store.nbdTimeout = timeout
        fs = try FileSystem.mount(image: server.uri, options: options)
    }

    /// The file the file plugin serves.
    var imageFile: String { directory + "/image.img" }

    func remount() throws {
        try fs.unmount()
        fs = nil
        fs = try FileSystem.mount(image: uri, options: options)
    }

    func unmountAndCheck(file: StaticString = #filePath, line: UInt = #line) throws {
        try fs.unmount()
        fs = nil
        XCTAssertEqual(try Volume.check(image: uri, store: options.store), [], "fsck over NBD found problems", file: file, line: line)
    }

    deinit {
        try? fs?.unmount()
        fs = nil
        server.stop()
        if let names = try? FileManager.default.contentsOfDirectory(atPath: directory) {
            for name in names { unlink(directory + "/" + name) }
        }
        rmdir(directory)
    }

    func create(_ name: String) throws -> InodeNumber {
        try fs.create(parent: FileSystem.rootInode, name: Array(name.utf8), mode: 0o644, flags: 0, owner: .root).ino
    }

    func write(_ ino: InodeNumber, _ bytes: [UInt8], at offset: UInt64) throws {
        let written = try bytes.withUnsafeBytes { try fs.write(ino, offset: offset, $0) }
        XCTAssertEqual(written, bytes.count)
    }

    func read(_ ino: InodeNumber, _ count: Int, at offset: UInt64) throws -> [UInt8] {
        var result: [UInt8] = []
        try fs.read(ino, offset: offset, count: count) { result = Array($0) }
        return result
    }

    func lookup(_ name: String) throws -> InodeNumber {
        try fs.lookup(parent: FileSystem.rootInode, name: Array(name.utf8)).ino
    }
}
