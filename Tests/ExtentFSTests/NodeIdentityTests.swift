import XCTest
import SystemPackage
@testable import ExtentFS

/// What a FUSE file handle holds: the node id (the inode number) and the generation. The kernel
/// finds an inode it evicted by LOOKUP of "." in its number, a directory's parent by "..", and
/// compares the generation (FileHandleTests does all of this through a mount).
final class NodeIdentityTests: XCTestCase {
    func testDotFindsAnyInodeByNumberAndADeletedOneIsGone() throws {
        let volume = try TestVolume()
        let directory = try volume.fs.mkdir(parent: FileSystem.rootInode, name: Array("d".utf8), mode: 0o755, owner: .root)
        let file = try volume.create("f", in: directory.ino)
        let found = try volume.fs.lookup(parent: file, name: Array(".".utf8))
        XCTAssertEqual(found.ino, file)
        XCTAssertEqual(found.generation, try volume.fs.lookup(parent: directory.ino, name: Array("f".utf8)).generation)
        XCTAssertEqual(try volume.fs.lookup(parent: directory.ino, name: Array("..".utf8)).ino, FileSystem.rootInode)
        XCTAssertEqual(try volume.fs.lookup(parent: FileSystem.rootInode, name: Array(".".utf8)).generation, 0,
                       "the kernel wants the root's generation 0")
        try volume.fs.unlink(parent: directory.ino, name: Array("f".utf8))
        // The lookups above hold references: the inode stays until they are forgotten.
        XCTAssertEqual(errno { _ = try volume.fs.lookup(parent: file, name: Array(".".utf8)) }, .noSuchFileOrDirectory)
        volume.fs.forget(file, count: 4)
        XCTAssertEqual(errno { _ = try volume.fs.lookup(parent: file, name: Array(".".utf8)) }, .noSuchFileOrDirectory)
        // Generations are stored: the same after a remount.
        let kept = try volume.create("kept")
        let generation = try volume.fs.getattr(kept).generation
        try volume.remount()
        XCTAssertEqual(try volume.fs.lookup(parent: kept, name: Array(".".utf8)).generation, generation)
        try volume.unmountAndCheck()
    }

    /// Inode numbers are never reused, except that a crash loses the numbers given out since the
    /// last commit along with their files: the generation then tells a handle of the lost file
    /// from the file that gets its number after the crash.
    func testANumberReusedAfterACrashHasAnotherGeneration() throws {
        let volume = try TestVolume()
        let committed = try volume.create("committed")
        try volume.fs.fsync(committed, dataOnly: false)
        let lost = try volume.create("lost")
        let lostGeneration = try volume.fs.getattr(lost).generation
        try volume.withCrashedCopy { crashed in
            XCTAssertEqual(errno { _ = try crashed.lookup(parent: lost, name: Array(".".utf8)) }, .noSuchFileOrDirectory)
            let reused = try crashed.create(parent: FileSystem.rootInode, name: Array("new".utf8), mode: 0o644, flags: 0, owner: .root)
            XCTAssertEqual(reused.ino, lost, "the crash gave the number out again")
            XCTAssertNotEqual(UInt32(truncatingIfNeeded: reused.generation), UInt32(truncatingIfNeeded: lostGeneration),
                              "a handle of the lost file would open the new one")
            crashed.release(reused.ino)
        }
        try volume.unmountAndCheck()
    }
}
