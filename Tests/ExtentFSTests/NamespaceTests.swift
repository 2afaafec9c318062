import ExtentFSCore
import XCTest
import SystemPackage
@testable import ExtentFS

final class NamespaceTests: XCTestCase {
    let root = FileSystem.rootInode
    func name(_ string: String) -> [UInt8] { Array(string.utf8) }

    func testTreeLinksSymlinksXattrsSurviveRemount() throws {
        let volume = try TestVolume(blockSize: 1024)
        let fs = volume.fs!
        let dir = try fs.mkdir(parent: root, name: name("dir"), mode: 0o750, owner: Credentials(uid: 7, gid: 8))
        let sub = try fs.mkdir(parent: dir.ino, name: name("sub"), mode: 0o755, owner: .root)
        let file = try fs.create(parent: sub.ino, name: name("file"), mode: 0o640, flags: 0, owner: .root)
        try volume.write(file.ino, Array("hello".utf8), at: 0)
        _ = try fs.link(file.ino, newParent: root, newName: name("hard"))
        _ = try fs.symlink(parent: root, name: name("sym"), target: name("dir/sub/file"), owner: .root)
        try fs.setxattr(file.ino, name: name("user.color"), value: name("blue"), flags: [])
        try fs.rename(parent: root, name: name("dir"), newParent: root, newName: name("renamed"), flags: [])
        _ = try fs.setattr(file.ino, AttributeChanges(atime: .set(Timespec(seconds: 1000, nanoseconds: 123456789)),
                                                       mtime: .set(Timespec(seconds: 2000, nanoseconds: 987654321))))
        try volume.remount()
        let fs2 = volume.fs!
        let renamed = try fs2.lookup(parent: root, name: name("renamed"))
        XCTAssertEqual(renamed.mode & 0o7777, 0o750)
        XCTAssertEqual(renamed.uid, 7)
        XCTAssertEqual(renamed.nlink, 3)
        let sub2 = try fs2.lookup(parent: renamed.ino, name: name("sub"))
        let file2 = try fs2.lookup(parent: sub2.ino, name: name("file"))
        XCTAssertEqual(file2.nlink, 2)
        XCTAssertEqual(file2.mtime, Timespec(seconds: 2000, nanoseconds: 987654321))
        XCTAssertEqual(file2.atime, Timespec(seconds: 1000, nanoseconds: 123456789))
        XCTAssertEqual(try fs2.lookup(parent: root, name: name("hard")).ino, file2.ino)
        XCTAssertEqual(try volume.read(file2.ino, 100, at: 0), Array("hello".utf8))
        XCTAssertEqual(try fs2.readlink(try fs2.lookup(parent: root, name: name("sym")).ino), name("dir/sub/file"))
        XCTAssertEqual(try fs2.getxattr(file2.ino, name: name("user.color")), name("blue"))
        XCTAssertEqual(try fs2.listxattr(file2.ino), [name("user.color")])
        try volume.unmountAndCheck()
    }

    func testErrors() throws {
        let volume = try TestVolume()
        let fs = volume.fs!
        let dir = try fs.mkdir(parent: root, name: name("d"), mode: 0o755, owner: .root)
        let file = try fs.create(parent: dir.ino, name: name("f"), mode: 0o644, flags: 0, owner: .root)
        XCTAssertEqual(errno { _ = try fs.mkdir(parent: root, name: name("d"), mode: 0o755, owner: .root) }, .fileExists)
        XCTAssertEqual(errno { _ = try fs.create(parent: root, name: [UInt8](repeating: 0x61, count: 256), mode: 0o644, flags: 0, owner: .root) }, .fileNameTooLong)
        XCTAssertEqual(errno { try fs.rmdir(parent: root, name: name("d")) }, .directoryNotEmpty)
        XCTAssertEqual(errno { try fs.unlink(parent: root, name: name("d")) }, .isDirectory)
        XCTAssertEqual(errno { _ = try fs.lookup(parent: file.ino, name: name("x")) }, .notDirectory)
        XCTAssertEqual(errno { _ = try fs.link(file.ino, newParent: dir.ino, newName: name("f")) }, .fileExists)
        XCTAssertEqual(errno { _ = try fs.link(dir.ino, newParent: root, newName: name("dl")) }, .notPermitted)
        XCTAssertEqual(errno { try fs.rename(parent: root, name: name("d"), newParent: dir.ino, newName: name("inside"), flags: []) }, .invalidArgument)
        XCTAssertEqual(errno { _ = try fs.setattr(file.ino, AttributeChanges(size: 1 << 51)) }, .fileTooLarge)
        XCTAssertEqual(errno { _ = try fs.getxattr(file.ino, name: name("user.none")) }, .noData)
        XCTAssertEqual(errno { try fs.setxattr(file.ino, name: name("bogus.x"), value: [], flags: []) }, .notSupported)
        XCTAssertEqual(errno { _ = try fs.read(dir.ino, offset: 0, count: 1) { _ in } }, .isDirectory)

        // RENAME_NOREPLACE and RENAME_EXCHANGE.
        let other = try fs.create(parent: root, name: name("g"), mode: 0o644, flags: 0, owner: .root)
        XCTAssertEqual(errno { try fs.rename(parent: root, name: name("g"), newParent: dir.ino, newName: name("f"), flags: .noReplace) }, .fileExists)
        try fs.rename(parent: root, name: name("g"), newParent: dir.ino, newName: name("f"), flags: .exchange)
        XCTAssertEqual(try fs.lookup(parent: dir.ino, name: name("f")).ino, other.ino)
        XCTAssertEqual(try fs.lookup(parent: root, name: name("g")).ino, file.ino)
        // Replacing a file by rename frees the replaced one.
        try fs.rename(parent: root, name: name("g"), newParent: dir.ino, newName: name("f"), flags: [])
        XCTAssertEqual(errno { _ = try fs.lookup(parent: root, name: name("g")) }, .noSuchFileOrDirectory)
        try volume.unmountAndCheck()
    }

    func testReaddirResumesAndScales() throws {
        let volume = try TestVolume(size: 256 << 20)
        let fs = volume.fs!
        let dir = try fs.mkdir(parent: root, name: name("many"), mode: 0o755, owner: .root)
        let count = 20_000
        for index in 0..<count {
            _ = try fs.mknod(parent: dir.ino, name: name("entry-\(index)"), mode: ExtentFSCore.FileType.regular.rawValue | 0o644, rdev: 0, owner: .root)
        }
        for index in stride(from: 0, to: count, by: 2) { try fs.unlink(parent: dir.ino, name: name("entry-\(index)")) }
        var seen = Set<String>()
        var cookie: UInt64 = 0
        var batches = 0
        while true {
            var emitted = 0
            try fs.readdir(dir.ino, after: cookie, plus: false) { entry, _ in
                guard emitted < 100 else { return false }
                emitted += 1
                cookie = entry.nextCookie
                seen.insert(String(decoding: entry.name, as: UTF8.self))
                return true
            }
            batches += 1
            if emitted == 0 { break }
        }
        XCTAssertEqual(seen.count, count / 2 + 2)
        XCTAssertTrue(seen.contains("entry-1") && !seen.contains("entry-0"))
        try volume.unmountAndCheck()
    }

    func testUnlinkedOpenFileLivesUntilRelease() throws {
        let volume = try TestVolume()
        let fs = volume.fs!
        let file = try fs.create(parent: root, name: name("tmp"), mode: 0o644, flags: 0, owner: .root)
        try volume.write(file.ino, pattern(50_000, seed: 1), at: 0)
        try fs.unlink(parent: root, name: name("tmp"))
        XCTAssertEqual(try volume.read(file.ino, 50_000, at: 0), pattern(50_000, seed: 1))
        fs.forget(file.ino, count: 1)
        fs.release(file.ino)
        XCTAssertEqual(errno { _ = try fs.getattr(file.ino) }, .noSuchFileOrDirectory)
        try volume.unmountAndCheck()
    }
}
