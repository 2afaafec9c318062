import SystemPackage
import XCTest
@testable import ExtentFS

/// `-o ro`: a read-only volume refuses every change with EROFS and writes not one byte of its
/// image, even when its log holds records to replay; it can become writable while mounted
/// (`remount,rw`). Before, a read-only mount opened the image read-only but changed metadata
/// anyway: the first change failed its commit, shut the volume down, and unmount reported the
/// changes as lost.
final class ReadOnlyMountTests: XCTestCase {
    let root = FileSystem.rootInode
    func name(_ string: String) -> [UInt8] { Array(string.utf8) }

    func testReadOnlyVolumeRefusesEveryChangeAndWritesNothing() throws {
        let volume = try TestVolume(blockSize: 1024)
        let fs = volume.fs!
        let dir = try fs.mkdir(parent: root, name: name("dir"), mode: 0o755, owner: .root)
        let file = try volume.create("file")
        try volume.write(file, pattern(5000, seed: 1), at: 0)
        try fs.setxattr(file, name: name("user.k"), value: name("v"), flags: [])
        let other = try volume.create("other")
        try volume.write(other, pattern(5000, seed: 1), at: 0)
        // Logged but not checkpointed: the read-only mount must replay it, in memory only.
        try fs.sync()
        let crashed = volume.directory + "/crashed.img"
        try copyFile(volume.image, to: crashed)
        defer { unlink(crashed) }
        let before = try contents(of: crashed)

        var options = MountOptions()
        options.commitInterval = 0.05  // a background commit, were one started, would write at once
        options.readOnly = true
        let readOnly = try FileSystem.mount(image: crashed, options: options)
        XCTAssertTrue(readOnly.isReadOnly)
        let refused: [(String, () throws -> Void)] = [
            ("create", { _ = try readOnly.create(parent: self.root, name: self.name("new"), mode: 0o644, flags: 0, owner: .root) }),
            ("mkdir", { _ = try readOnly.mkdir(parent: self.root, name: self.name("newdir"), mode: 0o755, owner: .root) }),
            ("mknod", { _ = try readOnly.mknod(parent: self.root, name: self.name("fifo"), mode: 0o010644, rdev: 0, owner: .root) }),
            ("symlink", { _ = try readOnly.symlink(parent: self.root, name: self.name("sym"), target: self.name("file"), owner: .root) }),
            ("link", { _ = try readOnly.link(file, newParent: self.root, newName: self.name("hard")) }),
            ("unlink", { try readOnly.unlink(parent: self.root, name: self.name("file")) }),
            ("rmdir", { try readOnly.rmdir(parent: self.root, name: self.name("dir")) }),
            ("rename", { try readOnly.rename(parent: self.root, name: self.name("file"), newParent: dir.ino, newName: self.name("f"), flags: []) }),
            ("chmod", { _ = try readOnly.setattr(file, AttributeChanges(mode: 0o600)) }),
            ("truncate", { _ = try readOnly.setattr(file, AttributeChanges(size: 0)) }),
            ("utimens", { _ = try readOnly.setattr(file, AttributeChanges(atime: .now)) }),
            ("write", { _ = try [UInt8](repeating: 1, count: 10).withUnsafeBytes { try readOnly.write(file, offset: 0, $0) } }),
            ("direct write", { _ = try [UInt8](repeating: 1, count: 1024).withUnsafeBytes { try readOnly.write(file, offset: 0, direct: true, $0) } }),
            ("fallocate", { try readOnly.fallocate(file, offset: 0, length: 8192, mode: .keepSize) }),
            ("punch", { try readOnly.fallocate(file, offset: 0, length: 1024, mode: [.punchHole, .keepSize]) }),
            ("clone", { _ = try readOnly.clone(from: file, sourceOffset: 0, to: other, destinationOffset: 0, length: 1024) }),
            ("dedupe", { _ = try readOnly.dedupe(from: file, sourceOffset: 0, length: 1024, to: other, destinationOffset: 0) }),
            ("copy_file_range", { _ = try readOnly.copyFileRange(from: file, sourceOffset: 0, to: other, destinationOffset: 0, length: 10) }),
            ("setxattr", { try readOnly.setxattr(file, name: self.name("user.x"), value: [], flags: []) }),
            ("removexattr", { try readOnly.removexattr(file, name: self.name("user.k")) }),
            ("open for writing", { try readOnly.open(file, flags: O_RDWR) }),
            ("open with O_TRUNC", { try readOnly.open(file, flags: O_RDONLY | O_TRUNC) }),
        ]
        for (operation, body) in refused {
            XCTAssertEqual(errno(of: body), .readOnlyFileSystem, operation)
        }

        // Everything reads as the log left it.
        let found = try readOnly.lookup(parent: root, name: name("file"))
        XCTAssertEqual(found.size, 5000)
        try readOnly.open(file, flags: O_RDONLY)
        var data: [UInt8] = []
        try readOnly.read(file, offset: 0, count: 5000) { data = Array($0) }
        XCTAssertEqual(data, pattern(5000, seed: 1))
        readOnly.release(file)
        XCTAssertEqual(try readOnly.getxattr(file, name: name("user.k")), name("v"))
        var names: [String] = []
        try readOnly.readdir(root, after: 0, plus: false) { entry, _ in
            names.append(String(decoding: entry.name, as: UTF8.self))
            return true
        }
        XCTAssertEqual(Set(names), [".", "..", "dir", "file", "other"])
        XCTAssertFalse(try readOnly.extentMap(file, offset: 0, length: 5000).isEmpty)
        try readOnly.fsync(file, dataOnly: false)
        try readOnly.sync()
        usleep(200_000)  // room for a background commit to run, if one had been started
        try readOnly.unmount()

        XCTAssertEqual(try contents(of: crashed), before, "a read-only mount and unmount changed the image")
        XCTAssertEqual(try Volume.check(image: crashed), [])
        try volume.unmountAndCheck()
    }

    /// remount,rw: the same volume takes changes from then on, and they reach the image.
    func testReadOnlyVolumeBecomesWritable() throws {
        let volume = try TestVolume(blockSize: 4096)
        let file = try volume.create("file")
        try volume.write(file, pattern(9000, seed: 2), at: 0)
        try volume.fs.unmount()

        volume.options.readOnly = true
        volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
        let fs = volume.fs!
        XCTAssertEqual(errno { _ = try fs.create(parent: self.root, name: self.name("new"), mode: 0o644, flags: 0, owner: .root) },
                       .readOnlyFileSystem)
        try fs.makeWritable()
        XCTAssertFalse(fs.isReadOnly)
        try fs.makeWritable()  // a second remount,rw changes nothing
        let new = try volume.create("new")
        try volume.write(new, pattern(3000, seed: 3), at: 0)
        try fs.unlink(parent: root, name: name("file"))

        volume.options.readOnly = false
        try volume.unmountAndCheck()
        volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
        let remounted = try volume.lookup("new")
        XCTAssertEqual(try volume.read(remounted.ino, 3000, at: 0), pattern(3000, seed: 3))
        XCTAssertEqual(errno { _ = try volume.lookup("file") }, .noSuchFileOrDirectory)
        try volume.unmountAndCheck()
    }

    private func contents(of path: String) throws -> [UInt8] {
        let descriptor = try FileDescriptor.open(path, .readOnly)
        defer { try? descriptor.close() }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try chunk.withUnsafeMutableBytes { try descriptor.read(into: $0) }
            if count == 0 { return bytes }
            bytes += chunk[..<count]
        }
    }

    private func copyFile(_ source: String, to target: String) throws {
        let bytes = try contents(of: source)
        let descriptor = try FileDescriptor.open(target, .writeOnly, options: [.create, .truncate], permissions: .ownerReadWrite)
        defer { try? descriptor.close() }
        _ = try descriptor.writeAll(bytes)
    }
}
