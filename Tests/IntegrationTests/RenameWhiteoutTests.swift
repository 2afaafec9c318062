import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// renameat2 RENAME_WHITEOUT through the mount (what overlayfs does on an extentfs upper
/// layer): the old name becomes a character device 0:0. It failed with EINVAL.
final class RenameWhiteoutTests: XCTestCase {
    private static let renameWhiteout: UInt32 = 4

    func testRenameWithWhiteout() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: 4096, imageSize: "64M")
        try volume.mount()
        let source = volume.path("upper")
        let target = volume.path("moved")
        try createFile(source, contents: Array("data".utf8))
        try sys("renameat2(RENAME_WHITEOUT)", Linux.renameat2(AT_FDCWD, source, AT_FDCWD, target, Self.renameWhiteout))
        XCTAssertEqual(try readWholeFile(target), Array("data".utf8))
        let whiteout = try fileStatus(source)
        XCTAssertEqual(whiteout.st_mode, S_IFCHR, "the old name is a character device of mode 0")
        XCTAssertEqual(whiteout.st_rdev, 0)
        XCTAssertErrno(EINVAL, "RENAME_WHITEOUT with RENAME_EXCHANGE") {
            Linux.renameat2(AT_FDCWD, target, AT_FDCWD, source, Self.renameWhiteout | Linux.renameExchange)
        }
        try volume.remountChecked("after a rename with whiteout")
        XCTAssertEqual(try fileStatus(source).st_mode, S_IFCHR)
        try volume.unmount()
    }
}
