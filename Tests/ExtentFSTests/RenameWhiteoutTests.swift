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
}
