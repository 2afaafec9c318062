import ExtentFSCore
import SystemPackage
import XCTest
@testable import ExtentFS

/// renameat2 RENAME_WHITEOUT (overlayfs's): the entry moves and its old name becomes a whiteout,
/// a character device 0:0 of mode 0 owned by the caller. It was refused with EINVAL.
final class RenameWhiteoutTests: XCTestCase {
    let root = FileSystem.rootInode
    func name(_ string: String) -> [UInt8] { Array(string.utf8) }

    func testRenameWithWhiteoutLeavesAWhiteoutBehind() throws {
        let volume = try TestVolume()
        let fs = volume.fs!
        let dir = try fs.mkdir(parent: root, name: name("d"), mode: 0o755, owner: .root)
        let file = try volume.create("upper")
        try volume.write(file, Array("data".utf8), at: 0)
        let user = Credentials(uid: 1000, gid: 1001)
        try fs.rename(parent: root, name: name("upper"), newParent: dir.ino, newName: name("moved"), flags: .whiteout, whiteoutOwner: user)

        XCTAssertEqual(try fs.lookup(parent: dir.ino, name: name("moved")).ino, file)
        let whiteout = try fs.lookup(parent: root, name: name("upper"))
        XCTAssertEqual(whiteout.mode, FileType.characterDevice.rawValue, "a whiteout is a character device of mode 0")
        XCTAssertEqual(whiteout.rdev, 0)
        XCTAssertEqual(whiteout.uid, 1000)
        XCTAssertEqual(whiteout.gid, 1001)
        XCTAssertNotEqual(whiteout.ino, file)

        // With RENAME_NOREPLACE onto an existing name: nothing changes.
        let other = try volume.create("other")
        XCTAssertEqual(errno { try fs.rename(parent: self.root, name: self.name("other"), newParent: dir.ino, newName: self.name("moved"),
                                             flags: [.whiteout, .noReplace]) }, .fileExists)
        XCTAssertEqual(try fs.lookup(parent: root, name: name("other")).ino, other)
        // Never with RENAME_EXCHANGE.
        XCTAssertEqual(errno { try fs.rename(parent: self.root, name: self.name("other"), newParent: dir.ino, newName: self.name("moved"),
                                             flags: [.whiteout, .exchange]) }, .invalidArgument)
        // Over an existing name, which goes.
        try fs.rename(parent: root, name: name("other"), newParent: dir.ino, newName: name("moved"), flags: .whiteout)
        XCTAssertEqual(try fs.lookup(parent: dir.ino, name: name("moved")).ino, other)
        XCTAssertEqual(try fs.lookup(parent: root, name: name("other")).mode, FileType.characterDevice.rawValue)

        try volume.remount()
        XCTAssertEqual(try volume.fs.lookup(parent: root, name: name("upper")).mode, FileType.characterDevice.rawValue)
        try volume.unmountAndCheck()
    }

    /// A whiteout the volume has no room for (no inode left) is refused before the rename
    /// changes anything (ENOSPC, both names as they were), in the shared rename as in the
    /// exclusive one; the whiteout's lookup count is none (the kernel holds no reference), so
    /// the whiteout lives on with its name alone.
    func testAWhiteoutWithNoRoomLeavesTheRenameUndone() throws {
        let volume = try TestVolume(blockSize: 4096, size: 8 << 20)
        let fs = volume.fs!
        let maxInodes = fs.geometry.maxInodes
        let dir = try fs.mkdir(parent: root, name: name("d"), mode: 0o755, owner: .root).ino
        let file = try volume.create("upper")
        // Fill the inode table but for one, then take that one too.
        var made = fs.metadata.withLock { fs.metadata.inodeCount }
        var fillers: [InodeNumber] = []
        while made < maxInodes {
            fillers.append(try volume.create("f\(fillers.count)", in: dir))
            made += 1
        }
        XCTAssertEqual(errno { try fs.rename(parent: self.root, name: self.name("upper"), newParent: dir, newName: self.name("moved"),
                                             flags: .whiteout) }, .noSpace)
        XCTAssertEqual(try fs.lookup(parent: root, name: name("upper")).ino, file)
        XCTAssertEqual(errno { _ = try fs.lookup(parent: dir, name: self.name("moved")) }, .noSuchFileOrDirectory)
        // With one inode freed it goes through.
        try fs.unlink(parent: dir, name: name("f0"))
        let freed = try XCTUnwrap(fillers.first)
        fs.release(freed)  // create's open and lookup
        fs.forget(freed, count: 1)
        try fs.rename(parent: root, name: name("upper"), newParent: dir, newName: name("moved"), flags: .whiteout)
        XCTAssertEqual(try fs.lookup(parent: dir, name: name("moved")).ino, file)
        let whiteout = try fs.lookup(parent: root, name: name("upper")).ino
        XCTAssertEqual(fs.metadata.inodes[whiteout]?.lookupCount, 1, "the lookup's reference alone")
        try volume.remount()
        XCTAssertEqual(try volume.fs.lookup(parent: root, name: name("upper")).mode, FileType.characterDevice.rawValue)
        try volume.unmountAndCheck()
    }
}
